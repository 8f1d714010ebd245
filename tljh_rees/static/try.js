// "Try it" links: launch an anonymous template (no login, no cookies), wait until its
// server is ready, then open it with the token the launch returned, as Binder does.
"use strict";

(function () {
  const box = document.getElementById("try");
  const status = document.getElementById("try-status");
  const failure = document.getElementById("try-error");
  const api = box.dataset.api;
  const started = Date.now();

  function fail(message) {
    failure.textContent = message;
    failure.hidden = false;
    status.textContent = "Not started.";
    box.querySelector(".progress").hidden = true;
  }

  async function call(url, options) {
    const response = await fetch(url, { credentials: "omit", ...options });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const retry = response.headers.get("Retry-After");
      const when = retry ? ` Try again in ${Math.ceil(Number(retry) / 60)} min.` : "";
      throw new Error((data.error || response.statusText) + when);
    }
    return data;
  }

  function open(app) {
    status.textContent = "Ready: opening…";
    const url = new URL(app.location + box.dataset.urlpath, window.location.href);
    url.searchParams.set("token", app.token);
    window.location.replace(url.toString());
  }

  async function follow(app) {
    const headers = { Authorization: `token ${app.token}` };
    for (;;) {
      const seconds = Math.round((Date.now() - started) / 1000);
      status.textContent = `Starting your server… ${seconds} s`;
      const now = await call(`${api}/${encodeURIComponent(app.id)}`, { headers });
      if (now.ready) return open(app);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  call(api, { method: "POST" })
    .then((app) => (app.ready ? open(app) : follow(app)))
    .catch((e) => fail(e.message));
})();
