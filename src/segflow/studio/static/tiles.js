// segflow studio: the tiled viewer of a huge georeferenced raster (and its review view).
//
// The browser never loads the raster: it asks for the image tiles of the pyramid level that
// fits the zoom (services/tiles.py; level L is the raster at 1/2^L), only those in view, and
// for the full-resolution label tiles in view from 50% zoom on. A brush stroke is applied to
// every label tile it crosses, each tile with the 2-D editor's edits (labelmap.js, through
// large.js); one undo step is the stroke on all of them; a save sends the tiles changed.
"use strict";

(function () {
  const L = segflowLarge, page = L.page("tiles");
  if (!page) return;
  const { REVIEW, tid, canvas, ctx, viewport, status } = page;
  const { decodeRuns, encodeRuns } = segflowRuns;
  const EDIT_SCALE = 0.5;

  const S = {  // viewer state, exposed as window.studio for tests and the console
    task: null, project: null, info: null, segments: [], version: 0, classes: new Map(),
    tool: REVIEW ? "pan" : "brush", size: 24, opacity: 0.5, category: null, current: 0,
    dirty: false, scale: 1, ox: 0, oy: 0, level: 0, ready: false,
    stats: { tiles: 0, pixels: 0, levels: {} }, // image tiles fetched: how many, their pixels
  };
  window.studio = S;
  const classes = S.classes;
  const images = new Map(); // "L/tx/ty" -> {img, ready}
  const labels = new Map(); // "tx_ty" -> label tile {tx, ty, x0, y0, W, H, labels, edits, ov, ...}
  let undoGroups = [], redoGroups = [];

  // ---- image tiles -------------------------------------------------------------------------
  function imageTile(level, tx, ty) {
    const key = `${level}/${tx}/${ty}`;
    let t = images.get(key);
    if (!t) {
      t = { img: new Image(), ready: false };
      t.img.onload = () => {
        t.ready = true;
        S.stats.tiles++; S.stats.pixels += t.img.width * t.img.height;
        S.stats.levels[level] = (S.stats.levels[level] || 0) + 1;
        requestDraw();
      };
      t.img.onerror = () => flash(`tile ${key} could not be loaded`);
      t.img.src = `/api/tasks/${tid}/raster/tiles/${key}.png`;
      images.set(key, t);
    }
    return t;
  }
  const levelFor = (scale) => Math.max(0, Math.min(S.info.levels - 1, Math.floor(Math.log2(1 / scale))));

  // the tiles of a grid with cells of `span` raster pixels that the view shows
  function visible(span, nx, ny) {
    const r = viewport.getBoundingClientRect();
    const x0 = -S.ox / S.scale, y0 = -S.oy / S.scale;
    const x1 = (r.width - S.ox) / S.scale, y1 = (r.height - S.oy) / S.scale;
    const out = [];
    for (let ty = Math.max(0, Math.floor(y0 / span)); ty <= Math.min(ny - 1, Math.floor(y1 / span)); ty++)
      for (let tx = Math.max(0, Math.floor(x0 / span)); tx <= Math.min(nx - 1, Math.floor(x1 / span)); tx++) out.push([tx, ty]);
    return out;
  }

  // ---- label tiles -------------------------------------------------------------------------
  const pending = new Set();
  function labelTile(tx, ty) {
    const key = `${tx}_${ty}`;
    if (labels.has(key) || pending.has(key)) return labels.get(key);
    pending.add(key);
    const v = REVIEW ? `?version=${S.version}` : "";
    api("GET", `/api/tasks/${tid}/raster/labels/${tx}/${ty}${v}`).then((d) => {
      const C = S.info.label_tile;
      const t = { tx, ty, x0: tx * C, y0: ty * C, W: d.width, H: d.height, dirty: false,
        labels: decodeRuns(d.runs, d.width * d.height) };
      t.ov = new OffscreenCanvas(t.W, t.H); t.ovCtx = t.ov.getContext("2d");
      t.ovData = t.ovCtx.createImageData(t.W, t.H);
      t.edits = L.chunkEdits(S, classes, t, {
        redraw: () => redrawTile(t),
        changed: () => { t.dirty = true; refreshLists(); requestDraw(); },
      });
      redrawTile(t);
      labels.set(key, t); pending.delete(key); refreshLists(); requestDraw();
    }).catch((e) => { pending.delete(key); flash(e.message); });
    return undefined;
  }
  function redrawTile(t) { L.paint(S, classes, t.labels, t.ovData); t.ovCtx.putImageData(t.ovData, 0, 0); }

  // ---- drawing -----------------------------------------------------------------------------
  function draw() {
    const r = viewport.getBoundingClientRect();
    if (canvas.width !== Math.floor(r.width) || canvas.height !== Math.floor(r.height)) {
      canvas.width = Math.floor(r.width); canvas.height = Math.floor(r.height);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#111"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!S.info) return;
    const { width: W, height: H, tile: T, levels } = S.info;
    ctx.setTransform(S.scale, 0, 0, S.scale, S.ox, S.oy);
    ctx.imageSmoothingEnabled = S.scale < 1;
    S.level = levelFor(S.scale);
    // the coarsest level first, as a backdrop while the tiles of this level arrive
    for (const lv of S.level === levels - 1 ? [S.level] : [levels - 1, S.level]) {
      const span = T << lv;
      for (const [tx, ty] of visible(span, Math.ceil(W / span), Math.ceil(H / span))) {
        const t = imageTile(lv, tx, ty);
        if (t.ready) ctx.drawImage(t.img, tx * span, ty * span, t.img.width << lv, t.img.height << lv);
      }
    }
    const C = S.info.label_tile, [nx, ny] = S.info.label_tiles;
    const wanted = S.scale >= EDIT_SCALE ? visible(C, nx, ny) : [];
    for (const [tx, ty] of wanted) labelTile(tx, ty);
    ctx.globalAlpha = S.opacity;
    for (const t of labels.values()) ctx.drawImage(t.ov, t.x0, t.y0);
    ctx.globalAlpha = 1;
    if (hover && !REVIEW && S.scale >= EDIT_SCALE && (S.tool === "brush" || S.tool === "eraser")) {
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 / S.scale; ctx.beginPath();
      ctx.arc(hover[0], hover[1], S.size / 2, 0, 2 * Math.PI); ctx.stroke();
    }
    status.textContent = `${S.task.image.filename} · ${W}×${H} · level ${S.level} of ${levels - 1} · ` +
      `${Math.round(S.scale * 1000) / 10}%${S.scale < EDIT_SCALE && !REVIEW ? " · zoom in to 50% to paint" : ""} · v${S.version}`;
  }
  let drawPending = false;
  const requestDraw = () => { if (!drawPending) { drawPending = true; requestAnimationFrame(() => { drawPending = false; draw(); }); } };
  function fit() {
    const r = viewport.getBoundingClientRect();
    S.scale = Math.min(r.width / S.info.width, r.height / S.info.height) * 0.98;
    S.ox = (r.width - S.info.width * S.scale) / 2; S.oy = (r.height - S.info.height * S.scale) / 2;
    requestDraw();
  }
  function zoomAt(ns, mx, my) {
    ns = Math.min(16, Math.max(0.001, ns));
    S.ox = mx - (mx - S.ox) * ns / S.scale; S.oy = my - (my - S.oy) * ns / S.scale; S.scale = ns;
    requestDraw();
  }
  // centre raster point (x, y) at zoom `scale`
  S.zoomTo = (scale, x, y) => {
    const r = viewport.getBoundingClientRect();
    S.scale = scale; S.ox = r.width / 2 - x * scale; S.oy = r.height / 2 - y * scale; requestDraw();
  };
  const toImage = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left - S.ox) / S.scale, (ev.clientY - r.top - S.oy) / S.scale];
  };
  S.toScreen = (x, y) => {
    const r = canvas.getBoundingClientRect();
    return [r.left + S.ox + x * S.scale, r.top + S.oy + y * S.scale];
  };
  S.labelsReady = () => {
    const C = S.info.label_tile, [nx, ny] = S.info.label_tiles;
    return visible(C, nx, ny).every(([tx, ty]) => labels.has(`${tx}_${ty}`));
  };
  S.labelRuns = async (tx, ty) => {
    const t = labels.get(`${tx}_${ty}`);
    if (t) return encodeRuns(t.labels);
    const v = REVIEW ? `?version=${S.version}` : "";
    return (await api("GET", `/api/tasks/${tid}/raster/labels/${tx}/${ty}${v}`)).runs;
  };

  // ---- painting across tiles ---------------------------------------------------------------
  let drag = null, hover = null, spaceDown = false;
  function strokeTiles(a, b, v) {
    const r = S.size / 2 + 1, C = S.info.label_tile;
    const x0 = Math.min(a[0], b[0]) - r, x1 = Math.max(a[0], b[0]) + r;
    const y0 = Math.min(a[1], b[1]) - r, y1 = Math.max(a[1], b[1]) + r;
    for (let ty = Math.max(0, Math.floor(y0 / C)); ty <= Math.floor(y1 / C); ty++) {
      for (let tx = Math.max(0, Math.floor(x0 / C)); tx <= Math.floor(x1 / C); tx++) {
        const t = labels.get(`${tx}_${ty}`);
        if (!t) continue; // outside the raster, or not loaded (it is loaded when in view)
        if (!drag.tiles.has(t)) { drag.tiles.add(t); t.edits.begin(); }
        t.edits.strokeTo([a[0] - t.x0, a[1] - t.y0], [b[0] - t.x0, b[1] - t.y0], v);
        redrawTile(t);
      }
    }
  }
  canvas.addEventListener("pointerdown", (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = toImage(ev);
    if (ev.button === 1 || spaceDown || REVIEW || S.tool === "pan" || S.scale < EDIT_SCALE) {
      if (!REVIEW && S.tool !== "pan" && S.scale < EDIT_SCALE) flash("zoom in to 50% or more to paint", "ok");
      drag = { pan: true, sx: ev.clientX, sy: ev.clientY, ox: S.ox, oy: S.oy }; return;
    }
    const C = S.info.label_tile, first = labels.get(`${Math.floor(p[0] / C)}_${Math.floor(p[1] / C)}`);
    if (!first) return;
    drag = { tiles: new Set([first]), last: p };
    first.edits.begin(); // before targetSegment(): a segment it creates is part of this step
    drag.v = S.tool === "eraser" ? 0 : first.edits.targetSegment();
    strokeTiles(p, p, drag.v);
    requestDraw();
  });
  canvas.addEventListener("pointermove", (ev) => {
    const p = toImage(ev);
    hover = p;
    if (drag && drag.pan) { S.ox = drag.ox + ev.clientX - drag.sx; S.oy = drag.oy + ev.clientY - drag.sy; }
    else if (drag) { strokeTiles(drag.last, p, drag.v); drag.last = p; }
    requestDraw();
  });
  canvas.addEventListener("pointerup", () => {
    if (drag && drag.tiles) {
      const group = [];
      for (const t of drag.tiles) { t.own.dirty = false; t.edits.commit(); if (t.own.dirty) group.push(t); }
      if (group.length) { undoGroups.push(group); redoGroups = []; }
    }
    drag = null; requestDraw();
  });
  function undo() { const g = undoGroups.pop(); if (g) { g.forEach((t) => t.edits.undo()); redoGroups.push(g); } }
  function redo() { const g = redoGroups.pop(); if (g) { g.forEach((t) => t.edits.redo()); undoGroups.push(g); } }
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(S.scale * Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  const zoomCentre = (f) => { const r = viewport.getBoundingClientRect(); zoomAt(S.scale * f, r.width / 2, r.height / 2); };

  document.addEventListener("keydown", guard(async (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const k = ev.key.toLowerCase();
    if (ev.key === " ") { spaceDown = true; ev.preventDefault(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "s") { ev.preventDefault(); if (!REVIEW) await save(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "z" && !REVIEW) { ev.preventDefault(); ev.shiftKey ? redo() : undo(); return; }
    if (ev.key === "+" || ev.key === "=") { zoomCentre(2); return; }
    if (ev.key === "-") { zoomCentre(0.5); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || REVIEW) return;
    const tools = { b: "brush", e: "eraser" };
    if (tools[k]) { setTool(tools[k]); return; }
    for (const c of classes.values()) if (c.hotkey && c.hotkey.toLowerCase() === k) { L.setCategory(S, classes, c.id); return; }
  }));
  document.addEventListener("keyup", (ev) => { if (ev.key === " ") spaceDown = false; });
  function setTool(t) { L.setTool(S, t); requestDraw(); }
  function refreshLists() {
    const counts = new Map();
    for (const t of labels.values()) L.count(counts, t.labels);
    L.lists(S, classes, counts, "in loaded tiles");
  }
  S.refreshLists = refreshLists;

  // ---- load and save -----------------------------------------------------------------------
  const exports = (v) => [["export-tif", `/api/tasks/${tid}/raster/export.tif?version=${v}`],
    ["export-geojson", `/api/tasks/${tid}/raster/export.geojson?version=${v}`]];
  const dirtyTiles = () => [...labels.values()].filter((t) => t.dirty);
  async function save() {
    const dirty = dirtyTiles();
    const r = await L.put(`/api/tasks/${tid}/raster/labels`, {
      base_version: S.version, segments: S.segments,
      tiles: dirty.map((t) => ({ tx: t.tx, ty: t.ty, runs: encodeRuns(t.labels) })) });
    if (!r) return false;
    S.version = r.version;
    dirty.forEach((t) => { t.dirty = false; });
    flash(`saved version ${S.version} (${r.chunks_written} tiles stored)`, "ok");
    await L.side(S, tid, exports);
    requestDraw();
    return true;
  }
  S.save = save;

  async function load() {
    await L.start(S, tid, `/api/tasks/${tid}/raster`);
    const g = S.info;
    document.getElementById("georef").textContent = g.crs
      ? `${g.epsg ? `EPSG:${g.epsg}` : "CRS (WKT)"} · pixel ${Math.abs(g.transform[0])} × ${Math.abs(g.transform[4])} · origin ${g.transform[2]}, ${g.transform[5]}`
      : "no CRS: pixel coordinates";
    fit(); refreshLists();
    await L.side(S, tid, exports);
    S.ready = true;
  }

  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  on("size", "input", (ev) => { S.size = Number(ev.target.value); requestDraw(); });
  on("opacity", "input", (ev) => { S.opacity = Number(ev.target.value) / 100; requestDraw(); });
  on("undo", "click", undo);
  on("zoom-in", "click", () => zoomCentre(2));
  on("zoom-out", "click", () => zoomCentre(0.5));
  on("zoom-fit", "click", fit);
  L.wire(S, tid, save, () => !REVIEW && dirtyTiles().length > 0);
  window.addEventListener("resize", requestDraw);
  setTool(S.tool);
  guard(load)();
})();
