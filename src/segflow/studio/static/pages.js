// Login, project list and project page.
"use strict";

const loginForm = document.getElementById("login-form");
if (loginForm) loginForm.addEventListener("submit", guard(async (ev) => {
  ev.preventDefault();
  await api("POST", "/api/auth/login", {
    username: document.getElementById("username").value,
    password: document.getElementById("password").value,
  });
  location.href = "/";
}));

// ---- home -----------------------------------------------------------------------------------
async function loadHome() {
  const ul = document.getElementById("projects");
  ul.replaceChildren();
  for (const p of await api("GET", "/api/projects")) {
    ul.append(el("li", {}, el("a", { href: `/projects/${p.id}` }, p.name),
      ` — ${p.task_type}, ${p.images} images, target ${p.target_metric} ≥ ${p.target_threshold}`));
  }
  const users = document.getElementById("users");
  if (users) {
    users.replaceChildren();
    for (const u of await api("GET", "/api/users")) {
      const toggle = el("button", { type: "button", class: "u-active", on: { click: guard(async () => {
        await api("PATCH", `/api/users/${u.id}`, { active: !u.active });
        flash(`${u.username} ${u.active ? "deactivated" : "reactivated"}`, "ok"); loadHome();
      }) } }, u.active ? "deactivate" : "reactivate");
      const reset = el("button", { type: "button", class: "u-reset", on: { click: guard(async () => {
        const pw = prompt(`New password for ${u.username} (10+ characters, hard to guess)`);
        if (!pw) return;
        await api("POST", `/api/users/${u.id}/password`, { new_password: pw });
        flash(`password of ${u.username} reset; their sessions and tokens are revoked`, "ok");
      }) } }, "reset password");
      users.append(el("li", { dataset: { user: u.username } }, `${u.username} (${u.role})${u.active ? "" : " — deactivated"} `,
        toggle, " ", reset));
    }
  }
}

function classRow(c = {}) {
  const tr = el("tr", {},
    el("td", {}, el("input", { class: "c-id", type: "number", min: 0, value: c.id ?? "" })),
    el("td", {}, el("input", { class: "c-name", value: c.name ?? "" })),
    el("td", {}, el("input", { class: "c-color", type: "color", value: c.color ?? "#e04040" })),
    el("td", {}, el("input", { class: "c-thing", type: "checkbox", checked: c.isthing ?? false })),
    el("td", {}, el("input", { class: "c-key", maxlength: 1, size: 2, value: c.hotkey ?? "" })),
    el("td", {}, el("button", { type: "button", on: { click: () => tr.remove() } }, "×")));
  document.querySelector("#classes tbody").append(tr);
}

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

const newProject = document.getElementById("new-project");
if (newProject) {
  classRow({ id: 1, name: "background", color: "#808080", hotkey: "1" });
  classRow({ id: 2, name: "object", color: "#e04040", isthing: true, hotkey: "2" });
  document.getElementById("add-class").addEventListener("click", () => {
    const n = document.querySelectorAll("#classes tbody tr").length + 1;
    classRow({ id: n, name: "", hotkey: String(n % 10) });
  });
  newProject.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const schema = [...document.querySelectorAll("#classes tbody tr")].map((tr) => ({
      id: Number(tr.querySelector(".c-id").value), name: tr.querySelector(".c-name").value,
      color: hex(tr.querySelector(".c-color").value), isthing: tr.querySelector(".c-thing").checked,
      hotkey: tr.querySelector(".c-key").value || null,
    }));
    const p = await api("POST", "/api/projects", {
      name: document.getElementById("p-name").value,
      task_type: document.getElementById("p-type").value,
      goals: document.getElementById("p-goals").value,
      target_metric: document.getElementById("p-metric").value,
      target_threshold: Number(document.getElementById("p-threshold").value),
      image_count: Number(document.getElementById("p-count").value),
      domains: document.getElementById("p-domains").value.split(",").map((s) => s.trim()).filter(Boolean),
      schema,
    });
    location.href = `/projects/${p.id}`;
  }));
}
const newUser = document.getElementById("new-user");
if (newUser) newUser.addEventListener("submit", guard(async (ev) => {
  ev.preventDefault();
  await api("POST", "/api/users", {
    username: document.getElementById("u-name").value, password: document.getElementById("u-pass").value,
    role: document.getElementById("u-role").value,
  });
  newUser.reset();
  flash("user created", "ok");
  loadHome();
}));
if (document.getElementById("projects")) guard(loadHome)();

// ---- project page ---------------------------------------------------------------------------
const projEl = document.getElementById("project");
if (projEl) {
  const pid = Number(projEl.dataset.pid);
  const role = projEl.dataset.role;
  const manage = role === "admin" || role === "manager";
  let project = null, users = [];

  async function loadProject() {
    project = await api("GET", `/api/projects/${pid}`);
    document.getElementById("p-title").textContent = project.name;
    const dl = document.getElementById("brief");
    dl.replaceChildren();
    for (const [k, v] of [["task type", project.task_type], ["goals", project.goals],
      ["requirement", (project.targets || [`${project.target_metric} >= ${project.target_threshold}`]).join("; ")],
      ["data needs", `${project.image_count} images (${project.images} imported)` +
        (project.domains.length ? `; domains: ${project.domains.join(", ")}` : "")]]) {
      dl.append(el("dt", {}, k), el("dd", {}, v));
    }
    const sv = document.getElementById("schema-view");
    sv.replaceChildren(...project.schema.map((c) => el("span", { class: "chip" },
      el("i", { style: `background: rgb(${c.color.join(",")})` }),
      `${c.name}${c.isthing ? " (thing)" : ""}${c.hotkey ? ` [${c.hotkey}]` : ""}`)));
    const pl = document.getElementById("pl-state");
    if (pl) pl.textContent = project.prelabel.mode === "none" ? "" :
      `now: ${project.prelabel.mode} ${project.prelabel.pipeline || project.prelabel.checkpoint || ""} ${project.prelabel.reason ? "— " + project.prelabel.reason : ""}`;
    const ml = document.getElementById("member-list");
    if (manage) users = await api("GET", "/api/users"); // also used by the task table
    if (ml) {
      const names = Object.fromEntries(users.map((u) => [u.id, `${u.username} (${u.role})`]));
      ml.textContent = "members: " + project.members.map((m) => names[m]).join(", ");
      const sel = document.getElementById("m-user");
      sel.replaceChildren(...users.filter((u) => !project.members.includes(u.id))
        .map((u) => el("option", { value: u.id }, names[u.id])));
    }
  }

  async function loadGuidelines() {
    const gs = await api("GET", `/api/projects/${pid}/guidelines`);
    const box = document.getElementById("guideline");
    const ack = document.getElementById("ack");
    if (!gs.length) { box.textContent = "No guidelines yet."; return; }
    const g = gs[0];
    document.getElementById("g-version").textContent = `v${g.version}`;
    box.innerHTML = g.html; // rendered server-side by markdown-it with raw HTML disabled
    const ex = document.getElementById("g-examples");
    ex.replaceChildren(...g.examples.map((e) => el("figure", { class: e.kind },
      el("img", { src: `/api/images/${e.image_id}`, alt: e.caption }), el("figcaption", {}, `${e.kind}: ${e.caption}`))));
    if (!g.acknowledged && (role === "annotator" || role === "reviewer")) {
      ack.hidden = false;
      document.getElementById("ack-v").textContent = g.version;
      ack.onclick = guard(async () => {
        await api("POST", `/api/projects/${pid}/guidelines/${g.version}/ack`);
        ack.hidden = true;
        flash(`guidelines v${g.version} acknowledged`, "ok");
      });
    } else ack.hidden = true;
  }

  async function loadTasks() {
    const tb = document.querySelector("#tasks tbody");
    tb.replaceChildren();
    const queue = role === "reviewer" ? await api("GET", `/api/projects/${pid}/review-queue`) : null;
    const mayReview = new Set((queue || []).map((t) => t.id));
    const tasks = await api("GET", `/api/projects/${pid}/tasks`);
    const annotators = users.filter((u) => u.role === "annotator" && project.members.includes(u.id));
    const gx = document.getElementById("gx-image");
    if (gx) gx.replaceChildren(...tasks.map((t) => el("option", { value: t.image.id }, `${t.image.id}: ${t.image.filename}`)));
    for (const t of tasks) {
      const links = [];
      if (role === "annotator" && (t.state === "assigned" || t.state === "rejected"))
        links.push(el("a", { href: `/tasks/${t.id}/edit`, class: "edit-link" }, "annotate"));
      if (mayReview.has(t.id)) links.push(el("a", { href: `/tasks/${t.id}/review`, class: "review-link" }, "review"));
      if (manage) links.push(el("a", { href: `/tasks/${t.id}/review` }, "view"));
      if (manage && annotators.length && !["submitted", "accepted"].includes(t.state)) {
        const sel = el("select", { class: "assign-to" }, ...annotators.map((u) =>
          el("option", { value: u.id, selected: u.id === t.assignee_id }, u.username)));
        links.push(" ", sel, el("button", { type: "button", class: "assign-one", on: { click: guard(async () => {
          await api("POST", `/api/projects/${pid}/assign`, { mode: "manual", user_ids: [Number(sel.value)], task_ids: [t.id] });
          flash(`task ${t.id} assigned`, "ok"); loadTasks();
        }) } }, "assign"));
      }
      tb.append(el("tr", { dataset: { task: t.id, state: t.state } }, el("td", {}, String(t.id)),
        el("td", {}, t.image.filename), el("td", { class: "state" }, t.state,
          t.untouched_prelabel && ["submitted", "accepted"].includes(t.state)
            ? el("span", { class: "chip untouched", title: "the pre-labels, saved with no human edit" }, "unedited pre-labels") : null),
        el("td", {}, t.assignee || "—"), el("td", {}, String(t.version)), el("td", {}, ...links)));
    }
  }

  async function loadStats() {
    const s = document.getElementById("stats");
    if (!s) return;
    const d = await api("GET", `/api/projects/${pid}/dashboard`);
    s.replaceChildren(...Object.entries(d.states).map(([k, v]) => el("span", { class: "chip" }, `${k}: ${v}`)),
      el("span", { class: "chip" }, `accepted ${(100 * d.progress).toFixed(0)}%`),
      el("span", { class: "chip" }, `rejection rate ${d.rejection_rate === null ? "—" : (100 * d.rejection_rate).toFixed(0) + "%"}`),
      el("span", { class: "chip" }, `time per task ${d.mean_seconds_per_task === null ? "—" : d.mean_seconds_per_task.toFixed(0) + " s"}`));
    document.getElementById("chart").src = `/api/projects/${pid}/dashboard.png?t=${Date.now()}`;
  }

  async function loadExports() {
    const ul = document.getElementById("exports");
    if (!ul) return;
    ul.replaceChildren(...(await api("GET", `/api/projects/${pid}/exports`)).map((d) =>
      el("li", {}, el("a", { href: d.download }, `${d.format} — ${d.n_images} images — ${d.content_hash.slice(0, 12)}`))));
  }

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  const examples = [];
  on("gx-add", "click", () => {
    const sel = document.getElementById("gx-image");
    if (!sel.value) return;
    examples.push({ image_id: Number(sel.value), kind: document.getElementById("gx-kind").value,
      caption: document.getElementById("gx-caption").value });
    document.getElementById("gx-list").replaceChildren(...examples.map((e) =>
      el("li", {}, `${e.kind}: image ${e.image_id} — ${e.caption}`)));
    document.getElementById("gx-caption").value = "";
  });
  on("g-form", "submit", async (ev) => {
    ev.preventDefault();
    await api("POST", `/api/projects/${pid}/guidelines`, { markdown: document.getElementById("g-text").value,
      examples: examples.splice(0) });
    document.getElementById("gx-list").replaceChildren();
    document.getElementById("g-text").value = "";
    flash("guidelines published", "ok");
    loadGuidelines(); loadProject();
  });
  on("upload", "submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData();
    for (const f of document.getElementById("files").files) fd.append("files", f);
    const r = await api("POST", `/api/projects/${pid}/images`, fd);
    const bad = r.failed.length ? `; not added: ${r.failed.slice(0, 3).map((f) => f.error).join(", ")}` : "";
    flash(`${r.added} images added${r.skipped_duplicates ? `, ${r.skipped_duplicates} duplicates skipped` : ""}${bad}` +
          (r.prelabel_job ? "; pre-labelling them in the background" : ""), r.failed.length ? "error" : "ok");
    loadProject(); loadTasks(); loadStats();
  });
  on("import", "submit", async (ev) => {
    ev.preventDefault();
    const r = await apiJob("POST", `/api/projects/${pid}/import`, { path: document.getElementById("import-path").value });
    const bad = r.failed.length ? `; ${r.failed.length} could not be read: ${r.failed.slice(0, 3).map((f) => f.error).join(", ")}` : "";
    flash(`${r.added} images imported (${r.format})${bad}`, r.failed.length ? "error" : "ok");
    loadProject(); loadTasks(); loadStats();
  });
  on("large-kind", "change", () => {
    const raster = document.getElementById("large-kind").value === "raster";
    document.getElementById("large-bands").hidden = !raster;
    document.getElementById("large-path").placeholder = raster ? "/data/maps/scene.tif" : "/data/ct/case01.nii.gz";
  });
  on("add-large", "submit", async (ev) => {
    ev.preventDefault();
    const kind = document.getElementById("large-kind").value;
    const body = { path: document.getElementById("large-path").value.trim() };
    if (kind === "volume") {
      const r = await api("POST", `/api/projects/${pid}/volumes`, body);
      flash(`volume added as task ${r.task_id} (${r.shape.join(" x ")} voxels)`, "ok");
    } else {
      const bands = document.getElementById("large-bands").value.trim();
      if (bands) {
        body.bands = bands.split(/[\s,]+/).filter(Boolean).map(Number);
        if (body.bands.some((b) => !Number.isInteger(b) || b < 1)) {
          flash("bands: give 1 or 3 band numbers from 1, e.g. 4,3,2", "error");
          return;
        }
      }
      const r = await apiJob("POST", `/api/projects/${pid}/rasters`, body);
      const notes = r.notes && r.notes.length ? `; ${r.notes.join("; ")}` : "";
      flash(`raster added as task ${r.task_id} (${r.width} x ${r.height} px, ${r.crs || "no CRS"})${notes}`, "ok");
    }
    document.getElementById("large-path").value = "";
    loadProject(); loadTasks(); loadStats();
  });
  on("prelabel", "submit", async (ev) => {
    ev.preventDefault();
    const mode = document.getElementById("pl-mode").value, arg = document.getElementById("pl-arg").value;
    const body = { mode };
    if (mode === "pipeline") body.pipeline = arg || "auto";
    if (mode === "checkpoint") body.checkpoint = arg;
    const r = await apiJob("PUT", `/api/projects/${pid}/prelabel`, body);
    flash(`pre-labels: ${r.prelabelled} tasks labelled`, "ok");
    loadProject(); loadTasks();
  });
  on("members", "submit", async (ev) => {
    ev.preventDefault();
    await api("POST", `/api/projects/${pid}/members`, { user_ids: [Number(document.getElementById("m-user").value)] });
    loadProject();
  });
  on("assign", "click", async () => {
    const r = await api("POST", `/api/projects/${pid}/assign`, { mode: "balanced" });
    flash(`${r.assigned} tasks assigned`, "ok");
    loadTasks(); loadStats();
  });
  on("next-task", "click", async () => {
    const t = await api("GET", `/api/projects/${pid}/next-task`);
    location.href = `/tasks/${t.id}/edit`;
  });
  on("export", "click", async () => {
    const d = await apiJob("POST", `/api/projects/${pid}/export`, { format: document.getElementById("x-format").value });
    flash(`exported ${d.n_images} images as ${d.format} (${d.content_hash.slice(0, 12)})`, "ok");
    loadExports();
  });
  guard(async () => { await loadProject(); await loadGuidelines(); await loadTasks(); await loadStats(); await loadExports(); })();
}

// ---- audit log (admins) ---------------------------------------------------------------------
const auditEl = document.getElementById("audit-page");
if (auditEl) {
  const KINDS = ["login_ok", "login_failed", "login_rate_limited", "logout", "token_created", "token_revoked",
    "password_changed", "password_reset", "user_created", "user_deactivated", "user_activated"];
  const sel = document.getElementById("a-kind");
  sel.append(...KINDS.map((k) => el("option", { value: k }, k)));
  let latest = 0; // a slower earlier answer must not overwrite the one for the current filter
  const loadAudit = guard(async () => {
    const q = sel.value ? `?kind=${encodeURIComponent(sel.value)}` : "";
    const mine = ++latest;
    const rows = await api("GET", `/api/audit${q}`);
    if (mine !== latest) return;
    document.querySelector("#audit tbody").replaceChildren(...rows.map((e) => el("tr", { dataset: { kind: e.kind } },
      el("td", {}, e.at.slice(0, 19).replace("T", " ")), el("td", { class: "kind" }, e.kind),
      el("td", {}, e.username || "—"), el("td", {}, e.actor || "—"), el("td", {}, e.ip || "—"),
      el("td", {}, e.detail))));
  });
  sel.addEventListener("change", loadAudit);
  loadAudit();
}
