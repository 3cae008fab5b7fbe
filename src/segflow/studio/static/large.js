// segflow studio: what the viewers of large items (volume.js: slices; tiles.js: raster tiles)
// share. A large item's labels are 2-D chunks, each its own label map with the 2-D editor's
// edits and undo (labelmap.js); the lists, history and review buttons are the same for both.
"use strict";

const segflowLarge = {
  // the page's viewer element (id), its mode and the elements every viewer uses; null elsewhere
  page(id) {
    const root = document.getElementById(id);
    if (!root) return null;
    const canvas = document.getElementById("canvas");
    return { root, REVIEW: root.dataset.review === "1", tid: Number(root.dataset.tid), canvas,
      ctx: canvas.getContext("2d"), viewport: document.getElementById("viewport"),
      status: document.getElementById("status") };
  },

  // labelmap.js edits on one chunk: labels, W, H and dirty are the chunk's, the rest (segments,
  // size, category, current, project) the viewer state S's
  chunkEdits(S, classes, chunk, hooks) {
    chunk.own = { labels: chunk.labels, W: chunk.W, H: chunk.H, dirty: false };
    const view = new Proxy(chunk.own, {
      get: (t, k) => (k in t ? t[k] : S[k]),
      set: (t, k, v) => { if (k in t) t[k] = v; else S[k] = v; return true; },
    });
    return segflowLabelEdits(view, classes, hooks);
  },

  colorOf(S, classes, id) {
    const s = S.segments.find((q) => q.id === id), c = s && classes.get(s.category_id);
    return c ? c.color : [255, 0, 255];
  },

  // paint a chunk's labels into its ImageData (opaque colours; the canvas applies the opacity)
  paint(S, classes, labels, data) {
    const d = data.data, cache = new Map();
    for (let i = 0; i < labels.length; i++) {
      const id = labels[i], o = i * 4;
      if (id === 0) { d[o + 3] = 0; continue; }
      let c = cache.get(id);
      if (!c) { c = segflowLarge.colorOf(S, classes, id); cache.set(id, c); }
      d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
    }
  },

  lists(S, classes, counts, where) {
    document.getElementById("labels").replaceChildren(...[...classes.values()].map((c) => el("li", {
      class: c.id === S.category ? "active" : "", dataset: { category: c.id },
      on: { click: () => segflowLarge.setCategory(S, classes, c.id) } },
      el("i", { style: `background: rgb(${c.color.join(",")})` }), `${c.name}${c.hotkey ? ` [${c.hotkey}]` : ""}`)));
    document.getElementById("instances").replaceChildren(...S.segments.map((s) => el("li", {
      class: s.id === S.current ? "active" : "", dataset: { segment: s.id },
      on: { click: () => { S.current = s.id; S.category = s.category_id; segflowLarge.lists(S, classes, counts, where); } } },
      el("i", { style: `background: rgb(${segflowLarge.colorOf(S, classes, s.id).join(",")})` }),
      `#${s.id} ${(classes.get(s.category_id) || {}).name || "?"}: ${counts.get(s.id) || 0} px ${where}`)));
  },

  setTool(S, t) {
    S.tool = t;
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === t));
  },

  // add the pixels per segment id of `labels` to the Map `counts`
  count(counts, labels) {
    for (let i = 0; i < labels.length; i++) if (labels[i]) counts.set(labels[i], (counts.get(labels[i]) || 0) + 1);
    return counts;
  },

  setCategory(S, classes, cid) {
    S.category = cid;
    const cur = S.segments.find((s) => s.id === S.current);
    if (!cur || cur.category_id !== cid) S.current = 0;
    if (S.refreshLists) S.refreshLists();
  },

  async start(S, tid, info) {
    S.task = await api("GET", `/api/tasks/${tid}`);
    S.project = await api("GET", `/api/projects/${S.task.project_id}`);
    S.info = await api("GET", info);
    for (const c of S.project.schema) S.classes.set(c.id, c);
    S.category = (S.project.schema.find((c) => c.isthing) || S.project.schema[0]).id;
    S.segments = S.info.segments.map(({ id, category_id, iscrowd }) => ({ id, category_id, iscrowd }));
    S.version = S.info.version;
  },

  // comments and history; exports(v) gives [[element id, url], ...] for version v
  async side(S, tid, exports) {
    const cs = await api("GET", `/api/tasks/${tid}/comments`);
    document.getElementById("comments").replaceChildren(...cs.map((c) => el("li", {}, el("b", {}, c.author), ` (v${c.version}): `, c.text)));
    const hist = await api("GET", `/api/tasks/${tid}/history`);
    document.getElementById("history").replaceChildren(...hist.map((h) => el("li", {},
      el("a", { href: exports(h.version)[0][1] }, `v${h.version}`),
      ` ${h.kind} by ${h.author || "pre-label"}, ${h.segments} segments, ${h.created_at.slice(0, 16).replace("T", " ")}`)));
    for (const [id, url] of exports(S.version)) document.getElementById(id).href = url;
  },

  // save, submit, accept and reject buttons; save() returns true when saved
  wire(S, tid, save, dirty) {
    const on = (id, fn) => { const e = document.getElementById(id); if (e) e.addEventListener("click", guard(fn)); };
    on("save", save);
    on("submit", async () => {
      if (dirty() || S.version === 0) { if (!(await save())) return; }
      await api("POST", `/api/tasks/${tid}/submit`);
      flash("submitted for review", "ok");
      location.href = `/projects/${S.task.project_id}`;
    });
    const decide = (decision) => async () => {
      const t = document.getElementById("comment-text").value.trim();
      await api("POST", `/api/tasks/${tid}/review`, { decision, comments: t ? [{ text: t }] : [] });
      flash(decision === "accept" ? "accepted" : "rejected: back to the annotator", "ok");
      location.href = `/projects/${S.task.project_id}`;
    };
    on("accept", decide("accept"));
    on("reject", decide("reject"));
    window.addEventListener("beforeunload", (ev) => { if (dirty()) { ev.preventDefault(); ev.returnValue = ""; } });
  },

  async put(url, body) {
    try {
      return await api("PUT", url, body);
    } catch (e) {
      if (e.status === 409) { flash(e.message + " — your edits are still here."); return null; }
      throw e;
    }
  },
};
