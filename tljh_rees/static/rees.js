// Shared helpers for tljh-rees pages: calling the service's JSON API.
"use strict";

const rees = {
  prefix: document.body.dataset.servicePrefix,
  xsrf: document.body.dataset.xsrf,

  // Call the API; resolves to the parsed JSON, rejects with {error, status, field}.
  async api(path, options = {}) {
    const headers = { "X-XSRFToken": rees.xsrf, ...(options.headers || {}) };
    if (options.body && typeof options.body !== "string") {
      headers["Content-Type"] = "application/json";
      options = { ...options, body: JSON.stringify(options.body) };
    }
    const response = await fetch(rees.prefix + "api/" + path, {
      credentials: "same-origin", ...options, headers,
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    if (!response.ok) {
      throw { status: response.status, error: (data && data.error) || response.statusText,
              field: data && data.field };
    }
    return data;
  },
};
