// The Environments page: the table, adding/rebuilding/cancelling/deleting, the live log.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("environments-data").textContent);
  const $ = (id) => document.getElementById(id);
  const el = rees.el;
  const FINAL = ["built", "failed", "cancelled"];
  const ACTIVE = ["queued", "running"];
  const POLL_MS = 3000;

  const PAGE = 50;
  let environments = [];
  const listing = { q: "", offset: 0, total: 0 }; // the page of the catalog shown
  const rows = new Map(); // name -> {key, tr}: rows are replaced only when they change
  let pollTimer = null;

  // -- messages ----------------------------------------------------------------------------
  const notice = rees.notice;

  const pageError = rees.pageError;

  // -- the table ---------------------------------------------------------------------------
  function mayManage(env) {
    return data.can_build && (data.is_admin || env.owner === rees.user);
  }

  function limitsText(env) {
    const profile = data.profiles.find((p) => p.name === env.profile);
    if (profile) {
      return [profile.cpu ? `${profile.cpu} CPU` : "", profile.memory_text || ""]
        .filter(Boolean).join(", ") || profile.label;
    }
    const { cpu, memory } = env.limits || {};
    const parts = [];
    if (cpu) parts.push(`${cpu} CPU`);
    if (memory) parts.push(`${(memory / 2 ** 30).toFixed(1)} GiB`);
    return parts.join(", ") || "none";
  }

  function statusCell(env) {
    const build = env.last_build;
    const detail = env.status === "queued" && build && build.queue_position
      ? `(#${build.queue_position})` : "";
    const badge = rees.statusBadge(env.status, detail);
    if (env.status === "failed" && build && build.error) badge.title = build.error;
    return badge;
  }

  function actionButton(label, action, env, cls = "btn-outline-secondary", extra = {}) {
    return el("button", { type: "button", class: `btn btn-sm ${cls}`,
                          dataset: { action, env: env.name },
                          "aria-label": `${label} ${env.display_name}`, ...extra }, label);
  }

  function actions(env) {
    const buttons = [];
    if (env.image) {
      buttons.push(el("a", { class: "btn btn-sm btn-jupyter", href: `${rees.prefix}launch/${env.name}`,
                             dataset: { action: "launch", env: env.name },
                             "aria-label": `Launch ${env.display_name}` }, "Launch"));
    }
    if (env.last_build) buttons.push(actionButton("Log", "log", env));
    if (mayManage(env)) {
      const build = env.last_build;
      if (build && ACTIVE.includes(build.status)) {
        buttons.push(actionButton("Cancel", "cancel", env, "btn-outline-warning"));
      } else if (env.spec_name) {
        buttons.push(el("a", { class: "btn btn-sm btn-outline-secondary",
                               href: `${rees.prefix}composer/${env.spec_name}`,
                               dataset: { action: "edit", env: env.name } }, "Edit spec"));
      } else {
        buttons.push(actionButton("Rebuild", "rebuild", env));
      }
      buttons.push(actionButton("Delete", "delete", env, "btn-outline-danger"));
    }
    if (env.image) {
      const item = (child) => el("li", {}, child);
      const link = (href, text) => item(el("a", { class: "dropdown-item", href }, text));
      const more = [
        link(`${rees.prefix}gallery/${env.name}`, "Gallery page"),
        link(`${rees.prefix}servers?environment=${env.name}`, "New server…"),
        link(`${rees.prefix}environments/${env.name}/export`, "Export for HPC"),
        item(el("button", { type: "button", class: "dropdown-item",
                            dataset: { action: "share", env: env.name } },
                "Share…")),
      ];
      buttons.push(el("div", { class: "dropdown d-inline-block" },
        el("button", { type: "button", class: "btn btn-sm btn-outline-secondary dropdown-toggle",
                       "data-bs-toggle": "dropdown", "aria-expanded": "false",
                       "aria-label": `More for ${env.display_name}` }, "More"),
        el("ul", { class: "dropdown-menu dropdown-menu-end" }, more)));
    }
    return el("div", { class: "rees-actions d-flex flex-wrap flex-xl-nowrap gap-1 justify-content-lg-end" },
              buttons);
  }

  function row(env) {
    const name = el("td", { "data-label": "Name", class: "text-break" },
      el("div", {},
        el("strong", {}, env.display_name),
        env.public ? null : el("span", { class: "badge text-bg-secondary ms-1" }, "private")),
      env.display_name !== env.name ? el("code", { class: "small" }, env.name) : null,
      env.description ? el("div", { class: "small text-muted rees-clamp" }, env.description)
        : null);
    // A failed first build has no image yet, but its commit is known.
    const commit = env.commit || (env.last_build && env.last_build.commit);
    const repo = el("td", { "data-label": "Repository", class: "rees-repo" },
      rees.repoLink(env.repo),
      commit ? [" @ ", el("code", { title: commit, class: "text-nowrap" },
                          rees.shortCommit(commit))] : null,
      env.ref && env.ref !== "HEAD" && env.ref !== commit ? el("div", { class: "small text-muted" }, `ref ${env.ref}`)
        : null);
    return el("tr", { dataset: { env: env.name } },
      name, repo,
      el("td", { "data-label": "Status" }, statusCell(env)),
      el("td", { "data-label": "Owner" }, env.owner || ""),
      el("td", { "data-label": "Created" },
         el("time", { datetime: env.created, title: rees.formatDate(env.created) },
            rees.formatDay(env.created))),
      el("td", { "data-label": "Image size" }, rees.formatBytes(env.image_size)),
      el("td", { "data-label": "Limits" }, limitsText(env)),
      el("td", { "data-label": "" }, actions(env)));
  }

  function render() {
    const body = $("environments-body");
    const focused = document.activeElement;
    const focusKey = focused && focused.dataset && focused.dataset.action
      ? [focused.dataset.action, focused.dataset.env] : null;
    const seen = new Set();
    let previous = null;
    for (const env of environments) {
      seen.add(env.name);
      const key = JSON.stringify(env);
      let entry = rows.get(env.name);
      if (!entry || entry.key !== key) {
        const tr = row(env);
        if (entry) entry.tr.replaceWith(tr);
        entry = { key, tr };
        rows.set(env.name, entry);
      }
      if (previous ? previous.nextSibling !== entry.tr : body.firstChild !== entry.tr) {
        if (previous) previous.after(entry.tr); else body.prepend(entry.tr);
      }
      previous = entry.tr;
    }
    for (const [name, entry] of rows) {
      if (!seen.has(name)) { entry.tr.remove(); rows.delete(name); }
    }
    for (const child of Array.from(body.children)) {
      if (!child.dataset.env) child.remove(); // the "Loading…" row
    }
    const searching = Boolean(listing.q);
    $("environments").classList.toggle("d-none", !environments.length);
    $("environments-empty").classList.toggle("d-none", environments.length > 0 || searching);
    $("environments-none").classList.toggle("d-none", environments.length > 0 || !searching);
    const last = listing.offset + environments.length;
    $("environments-count").textContent = listing.total > environments.length
      ? `${listing.offset + 1}–${last} of ${listing.total}` : "";
    $("environments-pages").classList.toggle("d-none", listing.total <= PAGE);
    $("environments-previous").disabled = listing.offset === 0;
    $("environments-next").disabled = last >= listing.total;
    if (focusKey && !document.body.contains(focused)) {
      const again = body.querySelector(
        `[data-action="${focusKey[0]}"][data-env="${CSS.escape(focusKey[1])}"]`);
      if (again) again.focus();
    }
  }

  async function load() {
    clearTimeout(pollTimer);
    try {
      const query = new URLSearchParams({ offset: listing.offset, limit: PAGE });
      if (listing.q) query.set("q", listing.q);
      const page = await rees.api(`environments?${query}`);
      environments = page.environments;
      listing.total = page.total;
      render();
    } catch (err) {
      pageError(err);
    }
    // Queue positions and states change on their own while builds are under way.
    if (environments.some((e) => ACTIVE.includes(e.status)
                                 || (e.last_build && ACTIVE.includes(e.last_build.status)))) {
      pollTimer = setTimeout(load, POLL_MS);
    }
  }

  const byName = (name) => environments.find((e) => e.name === name);

  // -- the log panel -----------------------------------------------------------------------
  const log = { build: null, source: null, status: null };

  function logStatus(status, detail) {
    log.status = status;
    $("log-status").replaceChildren(rees.statusBadge(status, detail));
    const cancel = $("log-cancel");
    if (cancel) cancel.classList.toggle("d-none", FINAL.includes(status) || !log.mayCancel);
  }

  // Lines are added once per frame, so a long log replays without a layout per line.
  let pendingLines = [];

  function flushLog() {
    const pre = $("log-text");
    const lines = document.createDocumentFragment();
    let text = "";
    for (const line of pendingLines) {
      if (typeof line === "string") { text += line; continue; }
      if (text) { lines.append(text); text = ""; }
      lines.append(line);
    }
    if (text) lines.append(text);
    pre.append(lines);
    pendingLines = [];
    if ($("log-follow").checked) pre.scrollTop = pre.scrollHeight;
  }

  function appendLog(event) {
    if (!pendingLines.length) requestAnimationFrame(flushLog);
    if (event.type === "phase") {
      const text = `[${event.phase}] ${event.message || ""}`.trimEnd() + "\n";
      pendingLines.push(el("span", { class: `rees-phase rees-phase-${event.phase}` }, text));
      logStatus(event.phase);
    } else {
      const text = event.message || "";
      pendingLines.push(text.endsWith("\n") ? text : text + "\n");
    }
  }

  function closeStream() {
    if (log.source) log.source.close();
    log.source = null;
  }

  function openLog(build, env) {
    closeStream();
    log.build = build;
    log.mayCancel = mayManage(env);
    $("log-title").textContent = `Build log: ${env.display_name}` +
      (build.commit ? ` @ ${rees.shortCommit(build.commit)}` : "");
    $("log-text").replaceChildren();
    pendingLines = [];
    $("log-download").href = `${rees.prefix}api/builds/${build.id}/log`;
    $("log-download").setAttribute("download", `${build.environment}-${build.id}.log`);
    $("log-panel").classList.remove("d-none");
    $("log-follow").checked = true;
    logStatus(build.status, build.status === "queued" && build.queue_position
      ? `(#${build.queue_position})` : "");
    // EventSource cannot send headers: the Hub's XSRF check takes the token as ?_xsrf=.
    const source = new EventSource(`${rees.prefix}api/builds/${build.id}/events` +
                                   `?_xsrf=${encodeURIComponent(rees.xsrf)}`);
    log.source = source;
    const onEvent = (message) => {
      const event = JSON.parse(message.data);
      appendLog(event);
      if (event.type === "phase") {
        load();
        if (FINAL.includes(event.phase)) closeStream();
      }
    };
    source.addEventListener("log", onEvent);
    source.addEventListener("phase", onEvent);
    // The browser reconnects by itself (resuming with Last-Event-ID); stop only when
    // the build is over, e.g. a stream that ended without a final phase.
    source.addEventListener("error", async () => {
      try {
        const now = await rees.api(`builds/${build.id}`);
        if (FINAL.includes(now.status) && log.source === source) {
          closeStream();
          logStatus(now.status);
        }
      } catch (err) {
        if (log.source === source) closeStream();
      }
    });
    $("log-panel").scrollIntoView({ block: "nearest" });
  }

  function showLog(name) {
    const env = byName(name);
    if (env && env.last_build) {
      openLog(env.last_build, env);
      $("log-title").focus();
    }
  }

  $("log-text").addEventListener("scroll", () => {
    const pre = $("log-text");
    $("log-follow").checked = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  });
  $("log-follow").addEventListener("change", () => {
    const pre = $("log-text");
    if ($("log-follow").checked) pre.scrollTop = pre.scrollHeight;
  });
  $("log-close").addEventListener("click", () => {
    closeStream();
    log.build = null;
    $("log-panel").classList.add("d-none");
  });
  $("log-copy").addEventListener("click", () => copyText($("log-text").textContent,
                                                         $("log-copy")));
  if ($("log-cancel")) {
    $("log-cancel").addEventListener("click", () => log.build && cancelBuild(log.build.id));
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) {
      // No clipboard API (a Hub on plain http): copy a selection the old way.
      const area = el("textarea", { class: "visually-hidden", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      ok = document.execCommand("copy");
      area.remove();
    }
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  // -- actions -----------------------------------------------------------------------------
  async function rebuild(name) {
    const env = byName(name);
    const body = { repo: env.repo, ref: env.ref || "", name: env.name, public: env.public };
    if (env.profile) body.profile = env.profile;
    try {
      const build = await rees.api("builds", { method: "POST", body });
      notice(build.cache_hit
        ? `${env.display_name} is up to date: commit ${rees.shortCommit(build.commit)} is built.`
        : `Started a rebuild of ${env.display_name} from commit ` +
          `${rees.shortCommit(build.commit)}.`);
      await load();
      openLog(build, byName(name) || env);
    } catch (err) {
      pageError(err);
    }
  }

  async function cancelBuild(buildId) {
    try {
      await rees.api(`builds/${buildId}`, { method: "DELETE" });
      await load();
    } catch (err) {
      pageError(err);
    }
  }

  $("environments-body").addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target || target.tagName === "A") return;
    const name = target.dataset.env;
    const env = byName(name);
    if (!env) return;
    switch (target.dataset.action) {
      case "log": showLog(name); break;
      case "rebuild": rebuild(name); break;
      case "cancel": cancelBuild(env.last_build.id); break;
      case "delete": openDelete(env, target); break;
      case "share": openShare(env); break;
    }
  });

  // -- the "Share" dialog: links and badges ------------------------------------------------
  let sharing = null;

  function shareLinks(env, file) {
    const base = new URL(rees.prefix, location.href).href;
    const launch = new URL(`launch/${env.name}`, base);
    if (file) launch.searchParams.set("urlpath", `lab/tree/${file}`);
    let binder = null;
    if (/^https?:\/\//.test(env.repo) && env.commit) {
      binder = new URL(`v2/git/${encodeURIComponent(env.repo)}/${env.commit}`, base);
      if (file) binder.searchParams.set("labpath", file);
    }
    const target = (binder || launch).href;
    const badge = new URL("badge_logo.svg", base).href;
    return { launch: launch.href, binder: binder && binder.href, badge,
             markdown: `[![Binder](${badge})](${target})`,
             rst: `.. image:: ${badge}\n :target: ${target}` };
  }

  function renderShare() {
    const links = shareLinks(sharing, $("share-file").value.trim().replace(/^\/+/, ""));
    $("share-link").value = links.launch;
    $("share-binder").value = links.binder || "";
    $("share-binder-group").classList.toggle("d-none", !links.binder);
    $("share-markdown").value = links.markdown;
    $("share-rst").value = links.rst;
    $("share-badge").src = links.badge;
  }

  function openShare(env) {
    sharing = env;
    $("share-name").textContent = env.display_name;
    $("share-file").value = "";
    renderShare();
    bootstrap.Modal.getOrCreateInstance($("share-dialog")).show();
  }

  $("share-file").addEventListener("input", renderShare);
  $("share-dialog").addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (button) copyText($(button.dataset.copy).value, button);
  });

  // -- the "Add environment" dialog --------------------------------------------------------
  const addForm = $("add-form");
  if (addForm) {
    const dialog = bootstrap.Modal.getOrCreateInstance($("add-dialog"));
    $("add-open").addEventListener("click", () => dialog.show());
    $("add-dialog").addEventListener("shown.bs.modal", () => $("add-repo").focus());
    $("add-dialog").addEventListener("hidden.bs.modal", () => $("add-open").focus());

    addForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      rees.clearErrors(addForm);
      const field = (name) => addForm.elements[name].value.trim();
      if (!field("repo")) {
        rees.showError(addForm, { field: "repo", error: "Enter the repository's URL." });
        return;
      }
      const body = { repo: field("repo"), public: addForm.elements.public.checked };
      for (const name of ["ref", "name", "display_name", "description", "profile"]) {
        if (field(name)) body[name] = field(name);
      }
      const password = $("add-password").value;
      const username = $("add-username").value.trim();
      if (password || username) body.credentials = { username, password };
      $("add-submit").disabled = true;
      $("add-progress").classList.remove("d-none");
      try {
        const build = await rees.api("builds", { method: "POST", body });
        dialog.hide();
        addForm.reset();
        $("add-credentials").open = false;
        notice(build.cache_hit ? `${build.environment} is already built.`
                               : `Started a build of ${build.environment}.`);
        await load();
        const env = byName(build.environment);
        if (env) openLog(build, env);
      } catch (err) {
        rees.showError(addForm, err);
      } finally {
        $("add-submit").disabled = false;
        $("add-progress").classList.add("d-none");
        $("add-password").value = "";
      }
    });
  }

  // -- the delete confirmation -------------------------------------------------------------
  const deleteForm = $("delete-form");
  let deleting = null;

  function openDelete(env, trigger) {
    deleting = { env, force: false, trigger };
    rees.clearErrors(deleteForm);
    $("delete-name").textContent = env.display_name;
    $("delete-submit").textContent = "Delete";
    bootstrap.Modal.getOrCreateInstance($("delete-dialog")).show();
  }

  if (deleteForm) {
    $("delete-dialog").addEventListener("shown.bs.modal", () => $("delete-submit").focus());
    $("delete-dialog").addEventListener("hidden.bs.modal", () => {
      if (deleting && document.body.contains(deleting.trigger)) deleting.trigger.focus();
    });
    deleteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { env, force } = deleting;
      rees.clearErrors(deleteForm);
      $("delete-submit").disabled = true;
      try {
        await rees.api(`environments/${env.name}${force ? "?force=true" : ""}`,
                       { method: "DELETE" });
        bootstrap.Modal.getOrCreateInstance($("delete-dialog")).hide();
        if (log.build && log.build.environment === env.name) $("log-close").click();
        notice(`Deleted ${env.display_name}.`);
        $("main").focus();
        await load();
      } catch (err) {
        rees.showError(deleteForm, err);
        if (err.status === 409) {
          // Servers still run from it: they keep running; the image goes when they stop.
          deleting.force = true;
          $("delete-submit").textContent = "Delete anyway";
        }
      } finally {
        $("delete-submit").disabled = false;
      }
    });
  }

  // -- searching and paging -----------------------------------------------------------------
  let searchTimer = null;
  $("environments-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      listing.q = $("environments-q").value.trim();
      listing.offset = 0;
      load();
    }, 250);
  });
  $("environments-search").addEventListener("submit", (event) => event.preventDefault());
  $("environments-previous").addEventListener("click", () => {
    listing.offset = Math.max(0, listing.offset - PAGE);
    load();
  });
  $("environments-next").addEventListener("click", () => {
    listing.offset += PAGE;
    load();
  });

  load();
})();
