// The composer page: validate as you type, preview with repo2docker, save, build, import.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("composer-data").textContent);
  const $ = (id) => document.getElementById(id);
  let spec = data.spec; // null until the first save
  let validateTimer = null;
  let previewTimer = null;
  let previewRunning = false;
  let previewAgain = false;
  let lastProblems = [];

  const textareas = () => Array.from(document.querySelectorAll("textarea.rees-code"));

  function sections() {
    const result = {};
    for (const area of textareas()) result[area.name] = area.value;
    return result;
  }

  function lineCount(text) {
    return Math.max(1, text.split("\n").length - (text.endsWith("\n") ? 1 : 0));
  }

  // Line numbers beside each text area; lines with problems are marked.
  function renderGutter(area) {
    const gutter = $("gutter-" + area.name);
    const marks = {};
    for (const p of lastProblems) {
      if (p.section === area.name && p.line) {
        marks[p.line] = p.severity === "error" || marks[p.line] === "rees-bad" ? "rees-bad" : "rees-warn";
      }
    }
    const lines = Math.max(lineCount(area.value), area.rows);
    gutter.textContent = "";
    for (let n = 1; n <= lines; n++) {
      const span = document.createElement("span");
      span.textContent = String(n) + "\n";
      if (marks[n]) span.className = marks[n];
      gutter.appendChild(span);
    }
    gutter.scrollTop = area.scrollTop;
  }

  function fitRows(area) {
    area.rows = Math.min(Math.max(lineCount(area.value) + 1, 4), 24);
  }

  function describe(p) {
    return p.file + (p.line ? " line " + p.line : "") + ": " + p.message;
  }

  function renderProblems(problems) {
    lastProblems = problems || [];
    for (const area of textareas()) {
      const id = area.name;
      const list = $("problems-" + id);
      const mine = lastProblems.filter((p) => p.section === id);
      list.textContent = "";
      for (const p of mine) {
        const li = document.createElement("li");
        li.className = "rees-" + p.severity;
        li.textContent = (p.severity === "error" ? "✗ " : "⚠ ") + describe(p);
        list.appendChild(li);
      }
      const errors = mine.filter((p) => p.severity === "error").length;
      const badge = $("status-" + id);
      const section = $("section-" + id);
      section.classList.toggle("rees-ignored", mine.some((p) => p.message.startsWith("ignored")));
      area.classList.toggle("is-invalid", errors > 0);
      area.setAttribute("aria-invalid", errors > 0 ? "true" : "false");
      if (errors) {
        badge.className = "badge rounded-pill ms-auto rees-status text-bg-danger";
        badge.textContent = errors + (errors === 1 ? " error" : " errors");
      } else if (mine.length) {
        badge.className = "badge rounded-pill ms-auto rees-status text-bg-warning";
        badge.textContent = "note";
      } else if (area.value.trim()) {
        badge.className = "badge rounded-pill ms-auto rees-status text-bg-success";
        badge.textContent = "ok";
      } else {
        badge.className = "badge rounded-pill ms-auto rees-status";
        badge.textContent = "";
      }
      renderGutter(area);
    }
  }

  function hasErrors() {
    return lastProblems.some((p) => p.severity === "error");
  }

  function message(elementId, text, kind) {
    const el = $(elementId);
    if (!el) return;
    el.className = text ? "alert py-2 small alert-" + (kind || "info") : "";
    el.textContent = text || "";
  }

  async function validate() {
    try {
      const body = { sections: sections() };
      if (spec) body.spec = spec.name;
      const result = await rees.api("specs/validate", { method: "POST", body });
      renderProblems(result.problems);
      if (result.valid) schedulePreview(800);
    } catch (e) {
      message("composer-message", "Validation failed: " + e.error, "danger");
    }
  }

  function scheduleValidate() {
    clearTimeout(validateTimer);
    validateTimer = setTimeout(validate, 400);
  }

  function schedulePreview(delay) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, delay);
  }

  function renderPreview(result) {
    $("preview-empty").hidden = true;
    $("preview").hidden = false;
    $("preview-buildpack").textContent = result.buildpack_label || result.buildpack || "none";
    const error = $("preview-error");
    error.hidden = !result.error;
    error.textContent = result.error
      ? (result.stage === "render"
        ? "repo2docker picked this build pack but could not write its Dockerfile here: "
        : "repo2docker cannot build this: ") + result.error
      : "";
    const messages = $("preview-messages");
    messages.textContent = "";
    for (const text of result.messages || []) {
      const li = document.createElement("li");
      li.textContent = text;
      messages.appendChild(li);
    }
    $("preview-dockerfile").textContent = result.dockerfile || "";
    $("preview-dockerfile").hidden = !result.dockerfile;
  }

  async function preview() {
    if (!data.can_build) return;
    if (previewRunning) { previewAgain = true; return; }
    previewRunning = true;
    $("preview-title").setAttribute("aria-busy", "true");
    try {
      const body = { sections: sections() };
      if (spec) body.spec = spec.name;
      renderPreview(await rees.api("specs/preview", { method: "POST", body }));
    } catch (e) {
      renderPreview({ error: e.error, stage: "detect" });
    } finally {
      previewRunning = false;
      $("preview-title").removeAttribute("aria-busy");
      if (previewAgain) { previewAgain = false; schedulePreview(0); }
    }
  }

  function pageUrl(name) {
    return rees.prefix + "composer/" + encodeURIComponent(name);
  }

  async function save(event) {
    event.preventDefault();
    const body = {
      sections: sections(),
      display_name: $("spec-display-name").value,
      description: $("spec-description").value,
    };
    const note = $("save-message").value.trim();
    if (note) body.message = note;
    $("save-button").disabled = true;
    try {
      let result;
      if (spec) {
        body.base_version = spec.newest_version;
        result = await rees.api("specs/" + encodeURIComponent(spec.name), { method: "PUT", body });
      } else {
        body.name = $("spec-name").value.trim();
        result = await rees.api("specs", { method: "POST", body });
      }
      renderProblems(result.problems);
      const created = !spec;
      spec = result;
      if (created) {
        window.location.assign(pageUrl(spec.name) + "?saved=" + spec.version);
        return;
      }
      message("composer-message", "Saved version " + spec.version.slice(0, 12) + ".", "success");
      $("spec-version").textContent = spec.version.slice(0, 12);
      $("zip-link").href = spec.links.zip;
      $("save-message").value = "";
      loadVersions();
    } catch (e) {
      if (e.status === 422) validate(); // shows each problem at its line
      message("composer-message", "Not saved: " + e.error, "danger");
    } finally {
      $("save-button").disabled = false;
    }
  }

  async function loadVersions() {
    const list = $("versions");
    if (!list || !spec) return;
    const result = await rees.api("specs/" + encodeURIComponent(spec.name) + "/versions");
    list.textContent = "";
    for (const v of result.versions) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = pageUrl(spec.name) + "?version=" + v.version;
      link.textContent = v.version.slice(0, 12);
      if (v.version === spec.version) link.className = "fw-bold";
      li.appendChild(link);
      li.appendChild(document.createTextNode(" · " + v.author + " · " +
        v.created.replace("T", " ").slice(0, 16) + " · " + v.message));
      list.appendChild(li);
    }
  }

  async function build() {
    const status = $("build-status");
    const body = { version: spec.version, environment: $("build-environment").value.trim() };
    if ($("build-profile")) body.profile = $("build-profile").value;
    $("build-button").disabled = true;
    try {
      let result = await rees.api("specs/" + encodeURIComponent(spec.name) + "/builds",
        { method: "POST", body });
      status.textContent = "Build " + result.id + ": " + result.status;
      while (result.status === "queued" || result.status === "running") {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        result = await rees.api("builds/" + result.id);
        status.textContent = "Build " + result.id + ": " + result.status;
      }
      if (result.status === "built") {
        status.textContent = "Environment " + result.environment + " is built from version " +
          spec.version.slice(0, 12) + ".";
      } else if (result.error) {
        status.textContent += " — " + result.error;
      }
    } catch (e) {
      status.textContent = "Build not started: " + e.error;
    } finally {
      $("build-button").disabled = false;
    }
  }

  function newName() {
    const name = $("new-name").value.trim();
    if (!name) {
      message("start-message", "Give the new spec a name first.", "warning");
      $("new-name").focus();
    }
    return name;
  }

  async function startFrom(body) {
    try {
      const result = await rees.api("specs", { method: "POST", body });
      window.location.assign(pageUrl(result.name));
    } catch (e) {
      message("start-message", "Not created: " + e.error, "danger");
    }
  }

  // Imports go as a zip body or a multipart folder; rees.api only speaks JSON.
  async function upload(name, body, contentType) {
    const headers = { "X-XSRFToken": rees.xsrf };
    if (contentType) headers["Content-Type"] = contentType;
    const response = await fetch(rees.prefix + "api/specs/import?name=" + encodeURIComponent(name),
      { method: "POST", body, headers, credentials: "same-origin" });
    const result = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) {
      message("start-message", "Not imported: " + result.error, "danger");
      return;
    }
    window.location.assign(pageUrl(result.name));
  }

  function wire() {
    for (const area of textareas()) {
      fitRows(area);
      renderGutter(area);
      area.addEventListener("input", () => {
        fitRows(area);
        renderGutter(area);
        message("composer-message", "");
        scheduleValidate();
      });
      area.addEventListener("scroll", () => { $("gutter-" + area.name).scrollTop = area.scrollTop; });
    }
    if (spec) {
      renderProblems(spec.problems);
      loadVersions();
      const saved = new URLSearchParams(window.location.search).get("saved");
      if (saved) message("composer-message", "Saved version " + saved.slice(0, 12) + ".", "success");
    }
    if (!data.can_build) {
      if (spec) { // readers see repo2docker's view of the saved version
        rees.api("specs/" + encodeURIComponent(spec.name) + "/preview?version=" + spec.version)
          .then(renderPreview, (e) => renderPreview({ error: e.error, stage: "detect" }));
      }
      return;
    }
    $("composer-form").addEventListener("submit", save);
    $("preview-button").addEventListener("click", () => schedulePreview(0));
    if ($("build-button")) $("build-button").addEventListener("click", build);
    if ($("fork-environment-button")) {
      $("fork-environment-button").addEventListener("click", () => {
        const name = newName();
        if (name) startFrom({ name, from_environment: $("fork-environment").value });
      });
    }
    if ($("fork-spec-button")) {
      $("fork-spec-button").addEventListener("click", () => {
        const name = newName();
        if (name) startFrom({ name, from_spec: spec.name, from_version: spec.version });
      });
    }
    $("import-zip").addEventListener("change", (event) => {
      const file = event.target.files[0];
      const name = newName();
      if (file && name) upload(name, file, "application/zip");
    });
    $("import-folder").addEventListener("change", (event) => {
      const name = newName();
      if (!name || !event.target.files.length) return;
      const form = new FormData();
      for (const file of event.target.files) {
        form.append("file", file, file.name);
        form.append("path", file.webkitRelativePath || file.name);
      }
      upload(name, form, null);
    });
    if (spec) schedulePreview(0);
  }

  wire();
})();
