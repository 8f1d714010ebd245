// The Templates page: the templates the caller may see, registering one (builders and
// admins), and the warm pools of anonymous templates (admins). Every name and message
// from the API is set as text (rees.el, textContent), never parsed as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const el = rees.el;
  const data = JSON.parse($("templates-data").textContent);
  const POOLS_MS = 3000;
  const form = $("register-form");

  let templates = [];
  let pools = [];
  let poolTimer = null;

  const pageError = rees.pageError;

  const notice = rees.notice;

  const mayManage = (t) => data.is_admin || (data.can_build && t.owner === rees.user);

  // 600 -> "10 min", 5400 -> "1 h 30 min", 0 -> "none"
  function duration(seconds) {
    if (!seconds) return "none";
    const parts = [];
    let rest = seconds;
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
      if (rest >= size) {
        parts.push(`${Math.floor(rest / size)} ${unit}`);
        rest %= size;
      }
    }
    return parts.slice(0, 2).join(" ");
  }

  function limitsText(limits) {
    const parts = [];
    if (limits && limits.memory) parts.push(limits.memory);
    if (limits && limits.cpu) parts.push(`${limits.cpu} CPU${limits.cpu === 1 ? "" : "s"}`);
    return parts.join(", ") || "default";
  }

  const TEMPLATE_STATUS = { completed: "text-bg-success", pending: "text-bg-info",
                            failed: "text-bg-danger" };

  function templateRow(t) {
    const users = t["allowed-users"] || [];
    const actions = mayManage(t)
      ? el("button", { type: "button", class: "btn btn-sm btn-outline-danger",
                       dataset: { action: "delete-template", name: t.name },
                       "aria-label": `Delete template ${t.name}` }, "Delete")
      : null;
    return el("tr", { dataset: { template: t.name } },
      el("td", { "data-label": "Name", "data-col": "name" }, el("strong", {}, t.name)),
      el("td", { "data-label": "Environment", "data-col": "environment" },
         el("code", {}, t["image-name"])),
      el("td", { "data-label": "Status", "data-col": "status" },
         el("span", { class: `badge rees-status ${TEMPLATE_STATUS[t.status] || ""}`,
                      dataset: { status: t.status } }, t.status)),
      el("td", { "data-label": "Limits", "data-col": "limits" }, limitsText(t.limits)),
      el("td", { "data-label": "Timeout", "data-col": "cull-timeout" },
         duration(t["cull-timeout"])),
      el("td", { "data-label": "Max age", "data-col": "max-age" }, duration(t["max-age"])),
      el("td", { "data-label": "Anonymous", "data-col": "anonymous" },
         t.anonymous ? "yes" : "no"),
      el("td", { "data-label": "Users", "data-col": "allowed-users" },
         users.length ? users.join(", ") : el("span", { class: "text-muted" }, "everyone")),
      el("td", { "data-label": "Owner", "data-col": "owner" }, t.owner),
      el("td", { "data-label": "" },
         el("div", { class: "d-flex justify-content-lg-end" }, actions)));
  }

  function renderTemplates() {
    $("templates-body").replaceChildren(...templates.map(templateRow));
    $("templates").classList.toggle("d-none", !templates.length);
    $("templates-empty").classList.toggle("d-none", templates.length > 0);
    $("templates-empty").textContent = "No templates you may see yet.";
  }

  async function loadTemplates() {
    try {
      templates = (await rees.api("templates")).templates;
      renderTemplates();
      if (data.is_admin) renderPools();
    } catch (err) {
      pageError(err);
    }
  }

  // -- registering -----------------------------------------------------------------------

  async function loadEnvironments() {
    const select = $("register-environment");
    try {
      const envs = (await rees.api("environments?built=true&limit=200")).environments;
      select.replaceChildren(...envs.map((e) => el("option", { value: e.name },
        e.display_name && e.display_name !== e.name ? `${e.display_name} (${e.name})`
                                                    : e.name)));
      if (!envs.length) {
        select.append(el("option", { value: "" }, "No environment is built yet"));
      }
    } catch (err) {
      rees.showError(form, err);
    }
  }

  // The API's message names its field ("limits.memory: expected …"): shown as it is,
  // beside the field when the form has one, else above the form.
  function formError(err) {
    let message = (err && err.error) || String(err);
    if (err && err.field && !message.startsWith(`${err.field}: `)) {
      message = `${err.field}: ${message}`;
    }
    const box = err && err.field
      ? form.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`) : null;
    const target = box || form.querySelector('[data-error-for=""]');
    target.textContent = message;
    target.classList.add("d-block");
    target.classList.remove("d-none");
    const input = box
      ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
    if (input) {
      input.classList.add("is-invalid");
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      target.focus();
    }
  }

  function registerBody() {
    const f = form.elements;
    const body = { "image-name": f["image-name"].value, anonymous: f.anonymous.checked };
    const name = f.name.value.trim();
    if (name) body.name = name;
    const limits = {};
    const memory = f["limits.memory"].value.trim();
    if (memory) limits.memory = memory;
    const cpu = f["limits.cpu"].value.trim();
    if (cpu) limits.cpu = Number(cpu);
    if (Object.keys(limits).length) body.limits = limits;
    const cull = f["cull-timeout"].value.trim();
    if (cull) body["cull-timeout"] = Math.round(Number(cull) * 60);
    return body;
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      rees.clearErrors(form);
      $("register-error").classList.add("d-none");
      const body = registerBody();
      $("register-submit").disabled = true;
      try {
        const made = await rees.api("templates", { method: "POST", body });
        notice(`Registered template ${made.name}.`);
        form.elements.name.value = "";
        await loadTemplates();
      } catch (err) {
        formError(err);
      }
      $("register-submit").disabled = false;
    });
    loadEnvironments();
  }

  // -- deleting --------------------------------------------------------------------------

  async function deleteTemplate(name) {
    if (!confirm(`Delete template ${name}? Its pool and visitors' servers go with it.`)) {
      return;
    }
    try {
      await rees.api(`templates/${encodeURIComponent(name)}`, { method: "DELETE" });
      notice(`Deleted template ${name}.`);
    } catch (err) {
      pageError(err);
    }
    await loadTemplates();
    if (data.is_admin) loadPools();
  }

  $("templates-body").addEventListener("click", (event) => {
    const target = event.target.closest('button[data-action="delete-template"]');
    if (target) deleteTemplate(target.dataset.name);
  });

  // -- pools (admins) --------------------------------------------------------------------

  function poolsError(err) {
    const box = $("pools-error");
    box.textContent = err ? ((err && err.error) || String(err)) : "";
    box.classList.toggle("d-none", !err);
    if (err) box.focus();
  }

  // One row per anonymous template and per pool, updated in place, so that a size being
  // typed and the focus survive the refresh.
  function poolRow(name) {
    const cell = (col, label, ...children) =>
      el("td", { "data-label": label, "data-col": col }, ...children);
    const bar = el("div", { class: "progress-bar bg-success", dataset: { bar: "" } });
    return el("tr", { dataset: { pool: name } },
      cell("template", "Template", el("strong", {}, name)),
      cell("size", "Size"),
      cell("available", "Available",
           el("span", { dataset: { value: "" } }),
           el("div", { class: "progress mt-1 rees-pool-bar", role: "progressbar",
                       "aria-label": `Available servers of ${name}`, "aria-valuemin": "0",
                       dataset: { progress: "" } }, bar)),
      cell("running", "Running"),
      cell("starting", "Starting"),
      cell("claimed-last-hour", "Claims/hour"),
      cell("error", "Error"),
      cell("set", "Set size",
           el("div", { class: "input-group input-group-sm rees-pool-size" },
              el("input", { class: "form-control", type: "number", min: "0", step: "1",
                            "aria-label": `Pool size of ${name}`,
                            dataset: { poolSize: name } }),
              el("button", { type: "button", class: "btn btn-outline-secondary",
                             dataset: { action: "set-pool", name } }, "Set"))),
      el("td", { "data-label": "" },
         el("button", { type: "button", class: "btn btn-sm btn-outline-danger",
                        dataset: { action: "delete-pool", name },
                        "aria-label": `Delete pool of ${name}` }, "Delete pool")));
  }

  function updatePoolRow(row, name, pool) {
    const set = (col, text) => {
      const td = row.querySelector(`[data-col="${col}"]`);
      if (td.textContent !== String(text)) td.textContent = text;
    };
    const size = pool ? pool.size : 0;
    const available = pool ? pool.available : 0;
    set("size", pool ? size : "no pool");
    row.querySelector("[data-value]").textContent = pool ? `${available} of ${size}` : "";
    const progress = row.querySelector("[data-progress]");
    progress.classList.toggle("d-none", !pool);
    progress.setAttribute("aria-valuemax", String(size));
    progress.setAttribute("aria-valuenow", String(available));
    progress.querySelector("[data-bar]").style.width =
      `${size ? Math.min(100, (100 * available) / size) : 0}%`;
    set("running", pool ? pool.running : "");
    set("starting", pool ? pool.starting : "");
    set("claimed-last-hour", pool ? pool["claimed-last-hour"] : "");
    set("error", pool && pool.error ? pool.error : "");
    row.querySelector('[data-col="error"]').classList.toggle("text-danger",
                                                             Boolean(pool && pool.error));
    const input = row.querySelector("[data-pool-size]");
    if (document.activeElement !== input && !input.dataset.edited) {
      input.value = String(size);
    }
    row.querySelector('[data-action="delete-pool"]').classList.toggle("d-none", !pool);
  }

  function renderPools() {
    const byName = Object.fromEntries(pools.map((p) => [p.template, p]));
    const names = Array.from(new Set([
      ...templates.filter((t) => t.anonymous).map((t) => t.name),
      ...pools.map((p) => p.template)])).sort();
    const body = $("pools-body");
    const existing = Object.fromEntries(
      Array.from(body.children).map((row) => [row.dataset.pool, row]));
    names.forEach((name, i) => {
      const row = existing[name] || poolRow(name);
      delete existing[name];
      updatePoolRow(row, name, byName[name]);
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    for (const row of Object.values(existing)) row.remove();
    $("pools").classList.toggle("d-none", !names.length);
    $("pools-empty").classList.toggle("d-none", names.length > 0);
    $("pools-empty").textContent =
      "No anonymous templates: a pool is for a template visitors may launch anonymously.";
  }

  async function loadPools() {
    clearTimeout(poolTimer);
    poolTimer = null;
    try {
      pools = (await rees.api("pools")).pools;
      renderPools();
    } catch (err) {
      poolsError(err);
    }
    if (document.visibilityState === "visible") {
      clearTimeout(poolTimer);
      poolTimer = setTimeout(loadPools, POOLS_MS);
    }
  }

  async function setPool(name, input) {
    const size = Number(input.value);
    if (input.value.trim() === "" || !Number.isInteger(size) || size < 0) {
      poolsError({ error: `Pool size of ${name}: expected a whole number from 0.` });
      input.focus();
      return;
    }
    try {
      await rees.api(`pools/${encodeURIComponent(name)}`, { method: "POST", body: { size } });
      delete input.dataset.edited;
      poolsError(null);
      notice(`The pool of ${name} is set to ${size}.`);
    } catch (err) {
      poolsError(err);
    }
    loadPools();
  }

  async function deletePool(name) {
    if (!confirm(`Delete the pool of ${name}? Its unclaimed servers are stopped.`)) return;
    try {
      await rees.api(`pools/${encodeURIComponent(name)}`, { method: "DELETE" });
      poolsError(null);
      notice(`Deleted the pool of ${name}.`);
    } catch (err) {
      poolsError(err);
    }
    const input = document.querySelector(`[data-pool-size="${CSS.escape(name)}"]`);
    if (input) delete input.dataset.edited;
    loadPools();
  }

  if (data.is_admin) {
    const body = $("pools-body");
    body.addEventListener("click", (event) => {
      const target = event.target.closest("button[data-action]");
      if (!target) return;
      const name = target.dataset.name;
      if (target.dataset.action === "set-pool") {
        setPool(name, body.querySelector(`[data-pool-size="${CSS.escape(name)}"]`));
      } else if (target.dataset.action === "delete-pool") {
        deletePool(name);
      }
    });
    body.addEventListener("input", (event) => {
      if (event.target.dataset.poolSize) event.target.dataset.edited = "1";
    });
    body.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.dataset.poolSize) {
        event.preventDefault();
        setPool(event.target.dataset.poolSize, event.target);
      }
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") loadPools();
      else { clearTimeout(poolTimer); poolTimer = null; }
    });
  }

  loadTemplates().then(() => { if (data.is_admin) loadPools(); });
})();
