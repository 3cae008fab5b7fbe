// segflow studio: the label editor (and the read-only review view): the canvas and its
// overlay, load and save. By concern, as labelmap.js (the label map and its edits): the tools,
// pointer and keys in editor-tools.js, the label and object lists in editor-objects.js, the
// review's pins and decision in editor-review.js; each adds its functions to the shared E.
// Only the changed rectangle of the overlay is redrawn, which keeps a 4000x3000 image
// responsive.
"use strict";

(function () {
  const root = document.getElementById("editor") || document.getElementById("review");
  if (!root) return;
  const REVIEW = root.id === "review";
  const TOOL_KEYS = JSON.parse(root.dataset.toolKeys || "{}");
  const tid = Number(root.dataset.tid);
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const viewport = document.getElementById("viewport");
  const status = document.getElementById("status");

  const S = {  // editor state, exposed as window.studio for tests and the console
    task: null, project: null, W: 0, H: 0, labels: null, segments: [], version: 0,
    tool: "brush", size: 12, opacity: 0.55, category: null, current: 0, dirty: false,
    scale: 1, ox: 0, oy: 0, showUnlabelled: false, pins: [], pending: [],
  };
  window.studio = S;
  let img = null, ov = null, ovCtx = null, ovData = null;
  // what the modules share: state, the view, the edits; each module adds its functions
  const E = { S, REVIEW, TOOL_KEYS, tid, canvas, viewport, status, ui: { poly: [], hover: null, boxDrag: null } };
  let activeSince = performance.now(), activeSeconds = 0;
  const classes = new Map();

  // ---- colours and the overlay -------------------------------------------------------------
  const segById = (id) => S.segments.find((s) => s.id === id);
  function colorOf(id) {
    const s = segById(id);
    if (!s) return [0, 0, 0];
    const c = classes.get(s.category_id);
    const base = c ? c.color : [255, 0, 255];
    if (!c || !c.isthing) return base;
    const k = ((id * 2654435761) >>> 0) % 7 - 3; // instances of a class: slightly different shades
    return base.map((v) => Math.max(0, Math.min(255, v + k * 18)));
  }

  let drawnCurrent = null; // the segment drawn opaque; when it changes, the whole overlay is
  function redrawOverlay(x0 = 0, y0 = 0, x1 = S.W, y1 = S.H) {
    if (S.current !== drawnCurrent) { // redrawn, or its old pixels keep a stale alpha outside the rectangle
      drawnCurrent = S.current; x0 = 0; y0 = 0; x1 = S.W; y1 = S.H;
    }
    x0 = Math.max(0, Math.floor(x0)); y0 = Math.max(0, Math.floor(y0));
    x1 = Math.min(S.W, Math.ceil(x1)); y1 = Math.min(S.H, Math.ceil(y1));
    if (x1 <= x0 || y1 <= y0) return;
    const cache = new Map();
    const d = ovData.data, L = S.labels, W = S.W;
    for (let y = y0; y < y1; y++) {
      for (let x = x0, i = y * W + x0; x < x1; x++, i++) {
        const id = L[i], o = i * 4;
        if (id === 0) {
          if (S.showUnlabelled) { d[o] = 255; d[o + 1] = 0; d[o + 2] = 255; d[o + 3] = 255; }
          else d[o + 3] = 0;
          continue;
        }
        let c = cache.get(id);
        if (!c) { c = colorOf(id); cache.set(id, c); }
        d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2];
        d[o + 3] = id === S.current ? 255 : 215;
      }
    }
    ovCtx.putImageData(ovData, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  function draw() {
    const r = viewport.getBoundingClientRect();
    if (canvas.width !== Math.floor(r.width) || canvas.height !== Math.floor(r.height)) {
      canvas.width = Math.floor(r.width); canvas.height = Math.floor(r.height);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#222"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!img) return;
    ctx.setTransform(S.scale, 0, 0, S.scale, S.ox, S.oy);
    ctx.imageSmoothingEnabled = S.scale < 2;
    ctx.drawImage(img, 0, 0);
    ctx.globalAlpha = S.opacity;
    ctx.drawImage(ov, 0, 0);
    ctx.globalAlpha = 1;
    const lw = 1.5 / S.scale, { poly, hover, boxDrag } = E.ui;
    if (poly.length) {
      ctx.strokeStyle = "#ff0"; ctx.lineWidth = lw; ctx.beginPath();
      poly.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (hover) ctx.lineTo(hover[0], hover[1]);
      ctx.stroke();
    }
    if (boxDrag) {
      ctx.strokeStyle = "#0ff"; ctx.lineWidth = lw;
      ctx.strokeRect(boxDrag.x0, boxDrag.y0, boxDrag.x1 - boxDrag.x0, boxDrag.y1 - boxDrag.y0);
    }
    for (const p of [...S.pins, ...S.pending]) {
      ctx.fillStyle = p.pending ? "#0cf" : "#f33";
      ctx.beginPath(); ctx.arc(p.x, p.y, 7 / S.scale, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#fff"; ctx.font = `${12 / S.scale}px sans-serif`;
      ctx.fillText(String(p.n), p.x + 8 / S.scale, p.y - 8 / S.scale);
    }
    if (hover && !REVIEW && (S.tool === "brush" || S.tool === "eraser")) {
      ctx.strokeStyle = "#fff"; ctx.lineWidth = lw; ctx.beginPath();
      ctx.arc(hover[0], hover[1], S.size / 2, 0, 2 * Math.PI); ctx.stroke();
    }
  }
  let pending = false;
  const requestDraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } };

  function fit() {
    const r = viewport.getBoundingClientRect();
    S.scale = Math.min(r.width / S.W, r.height / S.H) * 0.98;
    S.ox = (r.width - S.W * S.scale) / 2; S.oy = (r.height - S.H * S.scale) / 2;
    requestDraw();
  }
  const toImage = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left - S.ox) / S.scale, (ev.clientY - r.top - S.oy) / S.scale];
  };

  // ---- edits (labelmap.js): pixels, undo/redo, raster tools, the runs codec ----------------
  const { decodeRuns, encodeRuns } = segflowRuns;
  const { begin, set, grow, commit, undo, redo, targetSegment, newSegment, stamp, strokeTo,
    fillPolygon, bucket } = segflowLabelEdits(S, classes, {
    redraw: (x0, y0, x1, y1) => redrawOverlay(x0, y0, x1, y1),
    changed: () => { E.refreshLists(); requestDraw(); },
  });
  Object.assign(E, { classes, segById, colorOf, redrawOverlay, requestDraw, fit, toImage, decodeRuns,
    begin, set, grow, commit, undo, redo, targetSegment, newSegment, stamp, strokeTo, fillPolygon, bucket });
  segflowObjectList(E); // editor-objects.js: the label and object lists
  segflowEditorTools(E); // editor-tools.js: pointer, keys, tools, assist
  segflowReviewPins(E); // editor-review.js: pinned comments and the decision
  S.encodeRuns = () => encodeRuns(S.labels);
  S.overlayPixel = (x, y) => Array.from(ovData.data.subarray((y * S.W + x) * 4, (y * S.W + x) * 4 + 4));

  // ---- load, save, submit, review -----------------------------------------------------------
  async function loadSide() {
    const cs = await api("GET", `/api/tasks/${tid}/comments`);
    S.pins = cs.filter((c) => c.x !== null).map((c, k) => ({ x: c.x, y: c.y, n: k + 1 }));
    const ol = document.getElementById("comments");
    ol.replaceChildren(...cs.map((c) => el("li", {}, el("b", {}, c.author), ` (v${c.version})`,
      c.x !== null ? ` at ${Math.round(c.x)}, ${Math.round(c.y)}` : "", ": ", c.text)));
    const hist = await api("GET", `/api/tasks/${tid}/history`);
    const diffImg = document.getElementById("diff");
    document.getElementById("history").replaceChildren(...hist.map((h) => el("li", {},
      el("a", { href: "#", on: { click: (ev) => {
        ev.preventDefault();
        if (diffImg) { diffImg.hidden = false; diffImg.src = `/api/tasks/${tid}/diff.png?a=${h.version - 1}&b=${h.version}`; }
        else window.open(`/api/tasks/${tid}/diff.png?a=${h.version - 1}&b=${h.version}`);
      } } }, `v${h.version}`), ` ${h.kind} by ${h.author || "pre-label"}, ${h.segments} segments, ${h.created_at.slice(0, 16).replace("T", " ")}`)));
    const g = document.getElementById("guideline");
    if (g && !REVIEW) {
      const gs = await api("GET", `/api/projects/${S.task.project_id}/guidelines`);
      if (gs.length) {
        g.innerHTML = gs[0].html; // markdown-it output with raw HTML disabled
        g.append(...gs[0].examples.map((e) => el("figure", { class: e.kind },
          el("img", { src: `/api/images/${e.image_id}`, alt: e.caption }),
          el("figcaption", {}, `${e.kind}: ${e.caption}`))));
      }
    }
    requestDraw();
  }

  async function load() {
    S.task = await api("GET", `/api/tasks/${tid}`);
    S.project = await api("GET", `/api/projects/${S.task.project_id}`);
    for (const c of S.project.schema) classes.set(c.id, c);
    S.category = (S.project.schema.find((c) => c.isthing) || S.project.schema[0]).id;
    const a = await api("GET", `/api/tasks/${tid}/annotation`);
    S.W = a.width; S.H = a.height; S.version = a.version;
    S.labels = decodeRuns(a.runs, S.W * S.H);
    S.segments = a.segments;
    ov = new OffscreenCanvas(S.W, S.H); ovCtx = ov.getContext("2d");
    ovData = ovCtx.createImageData(S.W, S.H);
    img = new Image();
    img.src = S.task.image.url;
    await img.decode();
    redrawOverlay(); fit(); E.refreshLists();
    const untouched = document.getElementById("untouched");
    if (untouched) untouched.hidden = !S.task.untouched_prelabel;
    status.textContent = `task ${tid} · ${S.task.image.filename} · ${S.W}×${S.H} · v${S.version}${a.kind === "prelabel" ? " (pre-labels)" : ""}${S.task.qualification ? " · qualification: scored against the reference on submit" : ""}`;
    await loadSide();
    S.ready = true;
  }

  async function save() {
    const seconds = activeSeconds + (performance.now() - activeSince) / 1000;
    try {
      const r = await api("PUT", `/api/tasks/${tid}/annotation`, {
        base_version: S.version, width: S.W, height: S.H, runs: encodeRuns(S.labels),
        segments: S.segments, seconds: Math.min(seconds, 86400),
      });
      S.version = r.version; S.dirty = false; activeSeconds = 0; activeSince = performance.now();
      status.textContent = `saved v${S.version} (${r.segments} segments)`;
      flash(`saved version ${S.version}`, "ok");
      await loadSide();
      return true;
    } catch (e) {
      if (e.status === 409) flash(e.message + " — your edits are still here; copy what you need, then reload.");
      else if (e.status === 403 && /guidelines version \d+/.test(e.message)) await guidelineGate();
      else throw e;
      return false;
    }
  }

  // New guidelines were published while editing: the save is refused until they are read.
  // Show them here, acknowledge in place, then save the edits kept in memory.
  async function guidelineGate() {
    const gate = document.getElementById("g-gate");
    const gs = await api("GET", `/api/projects/${S.task.project_id}/guidelines`);
    if (!gate || !gs.length) return;
    const g = gs[0];
    document.querySelectorAll(".g-gate-v").forEach((e) => { e.textContent = g.version; });
    const body = document.getElementById("g-gate-body");
    body.innerHTML = g.html; // markdown-it output with raw HTML disabled
    body.append(...g.examples.map((e) => el("figure", { class: e.kind },
      el("img", { src: `/api/images/${e.image_id}`, alt: e.caption }), el("figcaption", {}, `${e.kind}: ${e.caption}`))));
    gate.hidden = false;
    flash(`guidelines version ${g.version} were published while you worked: read them, then acknowledge to save your edits (they are kept)`);
    document.getElementById("g-gate-ack").onclick = guard(async () => {
      await api("POST", `/api/projects/${S.task.project_id}/guidelines/${g.version}/ack`);
      gate.hidden = true;
      await save();
    });
  }
  E.save = save;

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  on("opacity", "input", (ev) => { S.opacity = Number(ev.target.value) / 100; requestDraw(); });
  on("undo", "click", undo);
  on("redo", "click", redo);
  on("zoom-fit", "click", fit);
  on("show-unlabelled", "click", () => { S.showUnlabelled = !S.showUnlabelled; redrawOverlay(); E.refreshLists(); requestDraw(); });
  on("save", "click", save);
  on("submit", "click", async () => {
    if (S.dirty || S.version === 0) { if (!(await save())) return; }
    if (root.dataset.role !== "annotator") { // a reviewer's fix: saved as their version, then accepted
      await api("POST", `/api/tasks/${tid}/review`, { decision: "accept", comments: [] });
      location.href = `/projects/${S.task.project_id}`;
      return;
    }
    const r = await api("POST", `/api/tasks/${tid}/submit`);
    if (r.feedback) { location.href = `/projects/${S.task.project_id}/quality`; return; } // the score and error map
    flash("submitted for review", "ok");
    location.href = `/projects/${S.task.project_id}`;
  });
  window.addEventListener("resize", requestDraw);
  window.addEventListener("beforeunload", (ev) => { if (S.dirty && !REVIEW) { ev.preventDefault(); ev.returnValue = ""; } });
  E.setTool(REVIEW ? "pan" : "brush");
  guard(load)();
})();
