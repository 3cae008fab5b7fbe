// segflow studio: shared helpers. Every page talks to the REST API through api().
"use strict";

function cookie(name) {
  const m = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return m ? decodeURIComponent(m.split("=")[1]) : "";
}

async function api(method, url, body, opts = {}) {
  const headers = { "X-CSRF-Token": cookie("segflow_csrf") };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  if (opts.raw) return r;
  const data = r.headers.get("content-type", "").includes("json") ? await r.json() : null;
  if (!r.ok) {
    const err = new Error((data && data.detail) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return data;
}

// Work that may outlive its request (pre-labels, imports, exports) answers 202 with a job:
// poll it, showing its progress, and return its result as if the request had waited.
async function apiJob(method, url, body) {
  let d = await api(method, url, body);
  while (d && d.job && (d.job.state === "queued" || d.job.state === "running")) {
    flash(`${d.job.kind}: ${d.job.done} of ${d.job.total || "?"} done…`, "ok");
    await new Promise((res) => setTimeout(res, 700));
    d = { job: await api("GET", d.job.url) };
  }
  if (d && d.job && (d.job.state === "failed" || d.job.state === "cancelled")) throw new Error(d.job.error);
  return d && d.job && d.job.state === "done" ? d.job.result : d;
}

function flash(msg, kind = "error") {
  const el = document.getElementById("flash");
  if (!el) return;
  el.textContent = msg; // textContent: never HTML
  el.className = kind;
  if (kind !== "error") setTimeout(() => { if (el.textContent === msg) el.textContent = ""; }, 4000);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c); // strings become text
  return e;
}

function guard(fn) {
  return async (...args) => {
    try { return await fn(...args); } catch (e) { flash(e.message); console.error(e); }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", guard(async () => {
    await api("POST", "/api/auth/logout");
    location.href = "/login";
  }));
});
