// The Binder launch page: follow the link's build/launch stream, then open the server.
"use strict";

(function () {
  const box = document.getElementById("binder");
  const log = document.getElementById("binder-log");
  const phaseBadge = document.getElementById("binder-phase");
  const message = document.getElementById("binder-message");
  const errorBox = document.getElementById("binder-error");
  const BADGES = { waiting: "secondary", fetching: "info", building: "info", built: "success",
                   launching: "primary", ready: "success", failed: "danger" };

  function showPhase(phase) {
    phaseBadge.replaceChildren(rees.el("span", {
      class: `badge text-bg-${BADGES[phase] || "secondary"}`, "data-phase": phase }, phase));
  }

  // the Hub's XSRF token lets the page's login cookie authenticate the stream
  const source = new EventSource(`${box.dataset.buildUrl}?_xsrf=${encodeURIComponent(rees.xsrf)}`);
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.message) log.append(data.message);
    log.scrollTop = log.scrollHeight;
    if (data.phase && data.phase !== "building") {
      showPhase(data.phase);
      message.textContent = (data.message || "").trim();
    }
    if (data.phase === "ready") {
      source.close();
      // same origin: the Hub's login opens the server; the token is for other pages
      location.href = new URL(box.dataset.landingPath, data.url).href;
    } else if (data.phase === "failed") {
      source.close();
      errorBox.textContent = (data.message || "The launch failed.").trim();
      errorBox.classList.remove("d-none");
      errorBox.focus();
    }
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    source.close();
    showPhase("failed");
    errorBox.textContent = "The connection to the Hub was lost; reload the page to try again.";
    errorBox.classList.remove("d-none");
  };
})();
