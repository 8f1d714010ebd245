// The Servers page: the user's servers from environments, and starting new ones.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const el = rees.el;
  const POLL_MS = 2000;
  const form = $("new-form");
  const wanted = new URLSearchParams(location.search).get("environment");

  let applications = [];
  let names = {}; // environment name -> display name
  let pollTimer = null;
  const stopping = new Set();

  const pageError = rees.pageError;

  const notice = rees.notice;

  // The Hub's own page for a starting server: progress, then on into the server.
  const pendingUrl = (app) =>
    `${rees.hubPrefix}spawn-pending/${encodeURIComponent(rees.user)}/${encodeURIComponent(app.id)}`;

  function status(app) {
    if (stopping.has(app.id) || app.pending === "stop") return "stopping";
    if (app.ready) return "ready";
    return "starting";
  }

  function row(app) {
    const state = status(app);
    const actions = [];
    if (state === "ready") {
      actions.push(el("a", { class: "btn btn-sm btn-jupyter", href: app.location,
                             dataset: { action: "open", id: app.id },
                             "aria-label": `Open ${app.id}` }, "Open"));
    } else if (state === "starting") {
      actions.push(el("a", { class: "btn btn-sm btn-outline-secondary", href: pendingUrl(app),
                             dataset: { action: "progress", id: app.id } }, "Progress"));
    }
    if (state !== "stopping") {
      actions.push(el("button", { type: "button", class: "btn btn-sm btn-outline-danger",
                                  dataset: { action: "stop", id: app.id },
                                  "aria-label": `Stop ${app.id}` }, "Stop"));
    }
    const label = state === "ready" ? "running" : state;
    const badge = rees.statusBadge(state);
    badge.textContent = label;
    return el("tr", { dataset: { server: app.id } },
      el("td", { "data-label": "Server" }, el("strong", {}, app.id)),
      el("td", { "data-label": "Environment" }, names[app.environment] || app.environment,
         names[app.environment] && names[app.environment] !== app.environment
           ? el("div", {}, el("code", { class: "small" }, app.environment)) : null),
      el("td", { "data-label": "Status" }, badge),
      el("td", { "data-label": "Started" },
         el("time", { datetime: app.started }, rees.formatDate(app.started))),
      el("td", { "data-label": "" },
         el("div", { class: "d-flex flex-wrap gap-1 justify-content-lg-end" }, actions)));
  }

  function render() {
    const focused = document.activeElement;
    const focusKey = focused && focused.dataset && focused.dataset.action
      ? [focused.dataset.action, focused.dataset.id] : null;
    $("servers-body").replaceChildren(...applications.map(row));
    $("servers").classList.toggle("d-none", !applications.length);
    $("servers-empty").classList.toggle("d-none", applications.length > 0);
    $("servers-empty").textContent = "You have no servers running from environments.";
    if (focusKey) {
      const again = $("servers-body").querySelector(
        `[data-action="${focusKey[0]}"][data-id="${CSS.escape(focusKey[1])}"]`)
        || $("servers-body").querySelector(`[data-id="${CSS.escape(focusKey[1])}"]`);
      if (again) again.focus();
      else if (!document.body.contains(focused)) $("main").focus();
    }
  }

  function renderChoices(environments) {
    const select = $("new-environment");
    const built = environments.filter((e) => e.status === "built" || e.image);
    const current = select.value || wanted;
    select.replaceChildren(...built.map((e) => el("option", { value: e.name },
      e.display_name !== e.name ? `${e.display_name} (${e.name})` : e.name)));
    if (!built.length) {
      select.append(el("option", { value: "" }, "No environment is built yet"));
    }
    if (current && built.some((e) => e.name === current)) select.value = current;
    $("new-submit").disabled = !built.length;
  }

  async function load() {
    clearTimeout(pollTimer);
    try {
      // the first 200 built environments by name (the Environments page searches them all)
      const [apps, envs] = await Promise.all([rees.api("applications"),
                                              rees.api("environments?built=true&limit=200")]);
      names = Object.fromEntries(envs.environments.map((e) => [e.name, e.display_name]));
      applications = apps.applications;
      for (const id of Array.from(stopping)) {
        if (!applications.some((a) => a.id === id)) stopping.delete(id);
      }
      render();
      renderChoices(envs.environments);
    } catch (err) {
      pageError(err);
    }
    if (applications.some((a) => !a.ready || a.pending) || stopping.size) {
      pollTimer = setTimeout(load, POLL_MS);
    }
  }

  async function stop(id) {
    stopping.add(id);
    render();
    try {
      await rees.api(`servers/${encodeURIComponent(id)}`, { method: "DELETE" });
      notice(`Stopping ${id}.`);
    } catch (err) {
      stopping.delete(id);
      pageError(err);
    }
    load();
  }

  $("servers-body").addEventListener("click", (event) => {
    const target = event.target.closest('button[data-action="stop"]');
    if (target) stop(target.dataset.id);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    rees.clearErrors(form);
    const body = { environment: form.elements.environment.value };
    if (!body.environment) {
      rees.showError(form, { field: "environment", error: "Choose a built environment." });
      return;
    }
    const serverName = form.elements.server_name.value.trim();
    if (serverName) body.server_name = serverName;
    if (form.elements.profile.value) body.profile = form.elements.profile.value;
    $("new-submit").disabled = true;
    try {
      const app = await rees.api("applications", { method: "POST", body });
      location.assign(pendingUrl(app));
    } catch (err) {
      rees.showError(form, err);
      $("new-submit").disabled = false;
    }
  });

  load();
})();
