// segflow studio: the quality page. Annotators: their qualification (scores, per-class
// figures and the error map over the image). Managers: gold images, the qualification,
// honeypot and overlap settings, and the per-annotator quality dashboard.
"use strict";

(function () {
  const root = document.getElementById("quality");
  if (!root) return;
  const pid = Number(root.dataset.pid);
  const role = root.dataset.role;
  const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
  const num = (v) => (v === null || v === undefined ? "—" : v.toFixed(2));

  // a score's error map laid over its task's image (legend: missed, over-painted, wrong class)
  async function scoreCard(s) {
    const t = await api("GET", `/api/tasks/${s.task_id}`);
    const fig = el("figure", { class: "heat", dataset: { score: s.id } },
      el("img", { src: t.image.url, alt: t.image.filename }),
      s.heatmap ? el("img", { src: s.heatmap, class: "over", alt: "error map" }) : null);
    const classes = Object.entries((s.detail || {}).per_class || {}).map(([n, c]) =>
      `${n}: IoU ${num(c.iou)}, boundary F1 ${num(c.boundary_f1)}`).join("; ");
    const px = (s.detail || {}).pixels || {};
    return el("div", { class: "attempt-task" }, fig, el("p", { class: "small" },
      el("b", {}, `${s.kind} ${s.attempt ? `attempt ${s.attempt}` : ""}: ${num(s.score)}`), ` — ${classes}`,
      el("br"), el("span", { class: "legend missed" }, `missed ${px.missed || 0} px`), " ",
      el("span", { class: "legend over" }, `over-painted ${px.overpainted || 0} px`), " ",
      el("span", { class: "legend wrong" }, `wrong class ${px.wrong_class || 0} px`)));
  }

  async function attempts(q, box) {
    const byAttempt = new Map();
    for (const s of q.scores) {
      if (!byAttempt.has(s.attempt)) byAttempt.set(s.attempt, []);
      byAttempt.get(s.attempt).push(s);
    }
    const parts = [];
    for (const [n, ss] of [...byAttempt.entries()].sort((a, b) => b[0] - a[0])) {
      const mean = ss.reduce((m, s) => m + s.score, 0) / ss.length;
      parts.push(el("h3", {}, `${q.username}: attempt ${n} — mean ${num(mean)} (pass mark ${num(q.pass_mark)})`));
      parts.push(el("div", { class: "attempt" }, ...(await Promise.all(ss.map(scoreCard)))));
    }
    box.replaceChildren(...parts);
  }

  async function loadMine() {
    const [q] = await api("GET", `/api/projects/${pid}/qualification`);
    if (!q) return;
    const st = document.getElementById("q-state");
    st.dataset.status = q.status;
    st.textContent = !q.required ? "This project has no qualification: you can work right away."
      : q.status === "passed" ? `Passed (best ${num(q.best)}): you receive real tasks.`
      : q.status === "failed" ? `Not passed after ${q.attempts_allowed} attempts (best ${num(q.best)}); a manager can let you try again.`
      : q.status === "paused" ? "A manager paused your work here."
      : `Label the gold images as the guidelines say: a mean ${q.metric} of ${num(q.pass_mark)} passes (attempt ${q.next_attempt} of ${q.attempts_allowed}).`;
    await attempts(q, document.getElementById("q-attempts"));
  }

  let settings = null;
  async function loadManager() {
    settings = await api("GET", `/api/projects/${pid}/quality/settings`);
    const gold = await api("GET", `/api/projects/${pid}/gold`);
    document.getElementById("gold-list").replaceChildren(...gold.map((g) => el("li", { dataset: { image: g.image_id } },
      `${g.filename} (image ${g.image_id}, ${g.segments} segments, from ${g.source}) `,
      el("button", { type: "button", class: "del", on: { click: guard(async () => {
        await api("DELETE", `/api/projects/${pid}/gold/${g.image_id}`); await loadManager();
      }) } }, "unmark"))));
    const tasks = await api("GET", `/api/projects/${pid}/tasks?state=accepted`);
    const isGold = new Set(gold.map((g) => g.image_id));
    document.getElementById("gold-task").replaceChildren(...tasks.filter((t) => !isGold.has(t.image.id))
      .map((t) => el("option", { value: t.id, dataset: { image: t.image.id } }, `task ${t.id}: ${t.image.filename}`)));
    const q = settings.qualification;
    document.getElementById("q-images").replaceChildren(el("span", {}, "Gold images in the qualification: "),
      ...gold.map((g) => el("label", { class: "inline" }, el("input", { type: "checkbox", value: g.image_id,
        class: "q-image", checked: q.image_ids.includes(g.image_id) }), ` ${g.filename}`)));
    document.getElementById("q-metric").value = q.metric;
    document.getElementById("q-pass").value = q.pass_mark;
    document.getElementById("q-attempts-n").value = q.attempts;
    document.getElementById("q-honeypot").value = settings.honeypot_rate;
    document.getElementById("q-overlap").value = settings.overlap.rate;
    document.getElementById("q-k").value = settings.overlap.k;
    document.getElementById("q-threshold").value = settings.overlap.threshold;
    await loadDashboard();
  }

  async function loadDashboard() {
    const d = await api("GET", `/api/projects/${pid}/quality`);
    document.querySelector("#q-people tbody").replaceChildren(...d.annotators.map((a) => el("tr",
      { dataset: { user: a.username }, class: a.below_mark ? "below" : "" },
      el("td", {}, a.username), el("td", { class: "q-status" }, a.qualification.status,
        a.qualification.attempts ? ` (${a.qualification.attempts} attempts)` : ""),
      el("td", {}, num(a.qualification.best)),
      el("td", { class: "q-honeypots" }, a.honeypots.length ? `${a.honeypots.length}: mean ${num(a.honeypot_mean)}` : "—",
        a.below_mark ? el("span", { class: "chip warn" }, "below the mark") : null),
      el("td", {}, a.overlap_tasks ? `${num(a.agreement_mean)} (${a.overlap_tasks})` : "—"),
      el("td", {}, pct(a.rejection_rate)), el("td", {}, pct(a.reviewer_edit_rate)),
      el("td", {}, pct(a.prelabel_edit_rate)),
      el("td", {}, ...[["paused", "pause"], ["pending", "re-qualify"]].map(([status, label]) =>
        el("button", { type: "button", on: { click: guard(async () => {
          await api("PUT", `/api/projects/${pid}/qualification/${a.user_id}`, { status });
          flash(`${a.username}: ${label}`, "ok"); await loadDashboard();
        }) } }, label))))));
    document.querySelector("#q-prelabels tbody").replaceChildren(...d.prelabels.map((p) => el("tr", {},
      el("td", {}, p.source), el("td", {}, String(p.tasks)), el("td", {}, pct(p.edit_rate_mean)),
      el("td", {}, pct(p.edit_rate_median)), el("td", {}, String(p.untouched)),
      el("td", {}, String(p.objects_added)), el("td", {}, String(p.objects_removed)),
      el("td", {}, String(p.objects_relabelled)),
      el("td", { class: "small" }, Object.entries(p.per_class).map(([n, v]) => `${n} ${pct(v)}`).join(", ")))));
    document.getElementById("q-flags").replaceChildren(...d.overlap_flags.map((f) => el("li", {},
      el("a", { href: `/tasks/${f.task_id}/review` }, `task ${f.task_id}`), ` mIoU ${num(f.miou)}`)));
    document.getElementById("q-chart").src = `/api/projects/${pid}/quality.png?t=${Date.now()}`;
    const box = document.getElementById("q-all-attempts");
    const all = await api("GET", `/api/projects/${pid}/qualification`);
    const parts = [];
    for (const q of all.filter((x) => x.scores.length)) {
      const div = el("div", {});
      await attempts(q, div);
      parts.push(div);
    }
    box.replaceChildren(...parts);
  }

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  on("q-continue", "click", async () => {
    const t = await api("GET", `/api/projects/${pid}/next-task`);
    location.href = `/tasks/${t.id}/edit`;
  });
  on("gold-add", "click", async () => {
    const opt = document.getElementById("gold-task").selectedOptions[0];
    if (!opt) return;
    await api("POST", `/api/projects/${pid}/gold`, { image_id: Number(opt.dataset.image), task_id: Number(opt.value) });
    flash("marked gold", "ok");
    await loadManager();
  });
  on("q-form", "submit", async (ev) => {
    ev.preventDefault();
    const val = (id) => Number(document.getElementById(id).value);
    settings = await api("PUT", `/api/projects/${pid}/quality/settings`, {
      qualification: { image_ids: [...document.querySelectorAll(".q-image:checked")].map((c) => Number(c.value)),
        metric: document.getElementById("q-metric").value, pass_mark: val("q-pass"), attempts: val("q-attempts-n") },
      honeypot_rate: val("q-honeypot"),
      overlap: { rate: val("q-overlap"), k: val("q-k"), threshold: val("q-threshold") },
    });
    flash("settings saved", "ok");
    await loadDashboard();
  });
  guard(async () => {
    if (role === "annotator") await loadMine();
    if (role === "admin" || role === "manager") await loadManager();
    root.dataset.ready = "1";
  })();
})();
