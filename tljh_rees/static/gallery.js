// The gallery list: narrow the cards of this page as the reader types; pressing Enter,
// "Filter" or choosing a repository or package searches every environment (the server
// pages the results, so the form works without this script too).
"use strict";

(function () {
  const form = document.getElementById("gallery-filters");
  const cards = Array.from(document.querySelectorAll(".gallery-card"));
  if (!form) return;
  const query = document.getElementById("gallery-q");
  const count = document.getElementById("gallery-count");
  const none = document.getElementById("gallery-none");
  const initial = count ? count.textContent : "";

  function narrow() {
    const words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const card of cards) {
      const match = words.every((w) => card.dataset.search.includes(w));
      card.hidden = !match;
      if (match) shown += 1;
    }
    if (count) {
      count.textContent = words.length ? `${shown} of ${cards.length} on this page — press Enter to search all`
                                       : initial;
    }
    if (none) none.hidden = shown > 0 || !cards.length;
  }

  query.addEventListener("input", narrow);
  for (const id of ["gallery-repo", "gallery-package"]) {
    document.getElementById(id).addEventListener("change", () => form.submit());
  }
})();
