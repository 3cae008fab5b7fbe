// segflow studio: the Training page (start, progress, cancel, logs, models) and the
// Assessment page of one model (targets, verdict, next images, promote to pre-labeller).
"use strict";

const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
const when = (t) => (t ? new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ") : "");
const eta = (s) => (s === null || s === undefined ? "–" : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

const tp = document.getElementById("training-page");
if (tp) {
  const pid = tp.dataset.pid;
  let logJob = null;

  const showLog = guard(async (jid) => {
    logJob = jid;
    document.getElementById("t-log-id").textContent = jid.slice(0, 8);
    document.getElementById("t-log").textContent = (await api("GET", `/api/jobs/${jid}/log`)).log;
  });

  const loadRuns = guard(async () => {
    const runs = await api("GET", `/api/projects/${pid}/training`);
    const rows = runs.map((j) => {
      const p = j.progress || {};
      const live = j.state === "queued" || j.state === "running";
      const bar = el("progress", { max: j.total || 1, value: j.done || 0 });
      const result = j.result || {};
      return el("tr", { dataset: { job: j.id, state: j.state } },
        el("td", {}, when(j.created_at)),
        el("td", {}, `${j.params.model} (${j.params.preset})`),
        el("td", { class: `state state-${j.state}` }, j.state + (j.error && j.state !== "done" ? `: ${j.error}` : "")),
        el("td", {}, bar, ` ${j.done} / ${j.total || "?"}`),
        el("td", {}, fmt(p.loss, 4)),
        el("td", {}, p.metric_name ? `${p.metric_name} ${fmt(p.metric)}` : "–"),
        el("td", {}, live ? eta(p.eta_s) : ""),
        el("td", {},
          live ? el("button", { type: "button", class: "t-cancel", on: { click: guard(async () => {
            await api("POST", `/api/jobs/${j.id}/cancel`); loadRuns();
          }) } }, "Cancel") : null,
          el("button", { type: "button", class: "t-showlog", on: { click: () => showLog(j.id) } }, "Log"),
          result.model_id ? el("a", { href: `/models/${result.model_id}`, class: "t-assess" }, "Assessment") : null));
    });
    document.querySelector("#t-runs tbody").replaceChildren(...rows);
    if (logJob) showLog(logJob);
    const models = await api("GET", `/api/models?project_id=${pid}`);
    document.querySelector("#t-models tbody").replaceChildren(...models.map((m) => el("tr", {},
      el("td", {}, el("a", { href: `/models/${m.id}` }, m.id)), el("td", {}, m.created_at),
      el("td", {}, (m.metrics && m.metrics.verdict) || ""), el("td", {}, m.prelabeller ? "yes" : ""))));
    if (runs.some((j) => j.state === "queued" || j.state === "running")) setTimeout(loadRuns, 700);
  });

  guard(async () => {
    const info = await api("GET", "/api/training/presets");
    const project = await api("GET", `/api/projects/${pid}`);
    const task = project.task_type === "instance" ? "instance" : "semantic";
    document.getElementById("t-model").replaceChildren(...Object.entries(info.models)
      .filter(([, t]) => t === task).map(([n]) => el("option", { value: n }, n)));
    document.getElementById("t-preset").replaceChildren(...Object.entries(info.presets)
      .map(([n, p]) => el("option", { value: n }, `${n}: ${p.about}`)));
    loadRuns();
  })();

  document.getElementById("t-form").addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const body = { model: document.getElementById("t-model").value,
      preset: document.getElementById("t-preset").value };
    const steps = document.getElementById("t-steps").value;
    if (steps) body.max_steps = Number(steps);
    const r = await api("POST", `/api/projects/${pid}/training`, body);
    flash(`training started (job ${r.job.id.slice(0, 8)})`, "ok");
    loadRuns();
  }));
}

const mp = document.getElementById("model-page");
if (mp) {
  const mid = mp.dataset.mid;
  const load = guard(async () => {
    const m = await api("GET", `/api/models/${mid}`);
    const a = m.assessment || {};
    document.getElementById("m-id").textContent = m.id;
    document.getElementById("m-back").href = `/projects/${m.project_id}/training`;
    document.getElementById("m-verdict").textContent = a.verdict || "(not assessed)";
    document.getElementById("m-reasons").replaceChildren(...(a.reasons || []).map((r) => el("li", {}, r)));
    document.querySelector("#m-targets tbody").replaceChildren(...(a.targets || []).map((t) => el("tr",
      { class: t.met ? "met" : "unmet" }, el("td", {}, t.text || `${t.metric} ${t.op} ${t.threshold}`),
      el("td", {}, fmt(t.value)), el("td", {}, t.ci ? `${fmt(t.ci[0])} – ${fmt(t.ci[1])}` : "–"),
      el("td", {}, t.met ? "met" : "not met"))));
    document.getElementById("m-next").replaceChildren(...(a.next_images || []).map((n) => el("li", {},
      `image ${n.image_id ?? n.path} (uncertainty ${fmt(n.uncertainty)})`)));
    const dl = document.getElementById("m-lineage");
    const ds = m.dataset || {};
    dl.replaceChildren(...[["model", m.model], ["task", m.task], ["started by", m.started_by],
      ["parent", m.parent || "none"], ["training images", ds.n_images],
      ["dataset hash", ds.hash], ["annotation versions", (ds.annotations || []).length],
      ["segflow", (m.versions || {}).segflow]].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v ?? ""))]));
    document.getElementById("m-prelabeller").textContent = m.prelabeller ? "this model pre-labels new tasks" : "";
    const rep = document.getElementById("m-report");
    if (m.report) { rep.href = m.report; rep.hidden = false; }
  });
  document.getElementById("m-promote").addEventListener("click", guard(async () => {
    const m = await api("GET", `/api/models/${mid}`);
    await apiJob("PUT", `/api/projects/${m.project_id}/prelabeller`, { model_id: mid });
    flash("pre-labeller set: new tasks get this model's labels", "ok");
    load();
  }));
  load();
}
