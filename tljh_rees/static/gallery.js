// The gallery list: filter the cards as the reader types (the form works without this).
"use strict";

(function () {
  const form = document.getElementById("gallery-filters");
  const cards = Array.from(document.querySelectorAll(".gallery-card"));
  if (!form || !cards.length) return;
  const query = document.getElementById("gallery-q");
  const repo = document.getElementById("gallery-repo");
  const pkg = document.getElementById("gallery-package");
  const count = document.getElementById("gallery-count");
  const none = document.getElementById("gallery-none");

  // Package names compare as pip compares them: case and runs of -_. don't matter.
  const normalize = (name) => name.toLowerCase().replace(/[-_.]+/g, "-");

  function apply() {
    const words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
    const wanted = pkg.value ? normalize(pkg.value) : "";
    let shown = 0;
    for (const card of cards) {
      const d = card.dataset;
      const match = words.every((w) => d.search.includes(w)) &&
        (!repo.value || d.repo === repo.value) &&
        (!wanted || d.packages.split(" ").includes(wanted));
      card.hidden = !match;
      if (match) shown += 1;
    }
    count.textContent = `${shown} of ${cards.length} environments`;
    none.hidden = shown > 0;
    const params = new URLSearchParams();
    for (const [key, el] of [["q", query], ["repo", repo], ["package", pkg]]) {
      if (el.value.trim()) params.set(key, el.value.trim());
    }
    const search = params.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  query.addEventListener("input", apply);
  repo.addEventListener("change", apply);
  pkg.addEventListener("change", apply);
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
})();
