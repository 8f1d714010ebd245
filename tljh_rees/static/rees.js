// Shared helpers for tljh-rees pages: the service's JSON API, errors next to form
// fields, and small formatting and DOM helpers (no framework, no bundler).
"use strict";

const rees = {
  prefix: document.body.dataset.servicePrefix,
  hubPrefix: document.body.dataset.hubPrefix,
  user: document.body.dataset.user,
  xsrf: document.body.dataset.xsrf,

  // Call the API; resolves to the parsed JSON, rejects with {error, status, field}.
  async api(path, options = {}) {
    const headers = { "X-XSRFToken": rees.xsrf, ...(options.headers || {}) };
    if (options.body && typeof options.body !== "string") {
      headers["Content-Type"] = "application/json";
      options = { ...options, body: JSON.stringify(options.body) };
    }
    let response;
    try {
      response = await fetch(rees.prefix + "api/" + path, {
        credentials: "same-origin", ...options, headers,
      });
    } catch (e) {
      throw { status: 0, error: "The Hub could not be reached; check your connection." };
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    if (!response.ok) {
      throw { status: response.status, error: (data && data.error) || response.statusText,
              field: data && data.field };
    }
    return data;
  },

  // Make an element: rees.el("a", {href: "…", class: "x"}, "text", child, …).
  // Text is always set as text, never parsed as HTML.
  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  },

  // -- the page's own message lines (#page-notice, #page-error) ------------------------
  notice(text) {
    document.getElementById("page-error").classList.add("d-none");
    const line = document.getElementById("page-notice");
    line.textContent = text;
    line.classList.toggle("d-none", !text);
  },

  pageError(err) {
    document.getElementById("page-notice").classList.add("d-none");
    const line = document.getElementById("page-error");
    line.textContent = (err && err.error) || String(err);
    line.classList.remove("d-none");
    line.focus();
  },

  // -- errors next to the fields they concern ------------------------------------------
  // A form marks where each field's message goes with data-error-for="<API field>";
  // the inputs it concerns carry name="<field>" or data-field="<field>".
  clearErrors(form) {
    for (const input of form.querySelectorAll(".is-invalid")) {
      input.classList.remove("is-invalid");
      input.removeAttribute("aria-invalid");
    }
    for (const box of form.querySelectorAll("[data-error-for]")) {
      box.textContent = "";
      box.classList.remove("d-block");
    }
  },

  // Show an API error next to its field, or in the form's general alert; focus it.
  showError(form, err) {
    const message = (err && err.error) || String(err);
    const box = err && err.field
      ? form.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`) : null;
    if (box) {
      // Beside its field, the API's "field: " prefix says nothing new.
      const text = message.startsWith(`${err.field}: `)
        ? message.slice(err.field.length + 2) : message;
      box.textContent = text.charAt(0).toUpperCase() + text.slice(1);
      box.classList.add("d-block");
      const inputs = form.querySelectorAll(
        `[name="${CSS.escape(err.field)}"], [data-field="${CSS.escape(err.field)}"]`);
      for (const input of inputs) {
        input.classList.add("is-invalid");
        input.setAttribute("aria-invalid", "true");
      }
      if (inputs.length) inputs[0].focus();
      return;
    }
    const general = form.querySelector('[data-error-for=""]');
    general.textContent = err && err.field ? `${err.field}: ${message}` : message;
    general.classList.add("d-block");
    general.focus();
  },

  // -- formatting ------------------------------------------------------------------------
  formatBytes(bytes) {
    if (bytes === null || bytes === undefined) return "";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
  },

  formatDate(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  },

  formatDay(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleDateString(undefined, {
      year: "numeric", month: "short", day: "numeric",
    });
  },

  shortCommit(commit) {
    return commit ? commit.slice(0, 7) : "";
  },

  // A repository URL as a link when the browser can follow it, else as text.
  repoLink(repo) {
    return /^https?:\/\//.test(repo)
      ? rees.el("a", { href: repo, rel: "noopener noreferrer" }, repo)
      : rees.el("span", {}, repo);
  },

  STATUS_STYLES: {
    built: "text-bg-success", running: "text-bg-info", building: "text-bg-info",
    queued: "text-bg-secondary",
    failed: "text-bg-danger", cancelled: "text-bg-warning", missing: "text-bg-light border",
    ready: "text-bg-success", starting: "text-bg-info", stopping: "text-bg-warning",
  },

  statusBadge(status, detail) {
    const text = detail ? `${status} ${detail}` : status;
    return rees.el("span", { class: `badge rees-status ${rees.STATUS_STYLES[status] || ""}`,
                             dataset: { status } }, text);
  },
};
