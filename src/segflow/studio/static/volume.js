// segflow studio: the slice viewer of a 3-D volume (and its review view).
//
// The server cuts the volume into planes (axial, coronal, sagittal) for the screen, image and
// labels alike (services/volumes.py), so this page works on one 2-D plane at a time: each plane
// loaded is a label map with its own edits and undo (labelmap.js, the 2-D editor's brush, fill
// and undo), and a save sends the planes edited since the last save. Propagation: "copy to next
// slice" copies the labels of this plane onto the next one; "interpolate" asks the server for
// the planes between the last two painted planes and fills their unlabelled pixels.
"use strict";

(function () {
  const L = segflowLarge, page = L.page("volume");
  if (!page) return;
  const { REVIEW, tid, canvas, ctx, viewport, status } = page;
  const { decodeRuns, encodeRuns } = segflowRuns;

  const S = {  // viewer state, exposed as window.studio for tests and the console
    task: null, project: null, info: null, axis: 2, index: 0, W: 0, H: 0, labels: null,
    segments: [], version: 0, tool: REVIEW ? "pan" : "brush", size: 8, opacity: 0.5,
    category: null, current: 0, dirty: false, scale: 1, ox: 0, oy: 0, aspect: 1,
    window: null, painted: [], ready: false, classes: new Map(),
  };
  window.studio = S;
  const classes = S.classes;
  const planes = new Map(); // `${axis}:${index}` -> {axis, index, W, H, labels, edits, dirty}
  let plane = null, img = null, ov = null, ovCtx = null, ovData = null;
  let activeSince = performance.now();

  // ---- planes: loading, and edits through labelmap.js --------------------------------------
  function editsFor(p) {
    return L.chunkEdits(S, classes, p, {
      redraw: () => { if (plane === p) redrawOverlay(); },
      changed: () => {
        p.dirty = true;
        S.painted = S.painted.filter((k) => k !== p.index).concat(p.index);
        if (plane === p) { refreshLists(); requestDraw(); }
      },
    });
  }
  async function getPlane(axis, index) {
    const key = `${axis}:${index}`;
    if (!planes.has(key)) {
      const v = REVIEW ? `?version=${S.version}` : "";
      const d = await api("GET", `/api/tasks/${tid}/volume/labels/${axis}/${index}${v}`);
      const p = { axis, index, W: d.width, H: d.height, labels: decodeRuns(d.runs, d.width * d.height), dirty: false };
      p.edits = editsFor(p);
      planes.set(key, p);
    }
    return planes.get(key);
  }
  const planeUrl = (axis, index) => {
    const [lv, wd] = S.window;
    return `/api/tasks/${tid}/volume/planes/${axis}/${index}.png?level=${lv}&width=${wd}`;
  };

  async function go(axis, index) {
    const info = S.info.planes[axis];
    index = Math.max(0, Math.min(info.slices - 1, index));
    if (axis !== S.axis && planes.size) {
      // planes of another axis cross every plane of this one: save, then start afresh
      if (dirtyPlanes().length && !(await save())) return;
      planes.clear(); S.painted = [];
    }
    const p = await getPlane(axis, index);
    const im = new Image();
    im.src = planeUrl(axis, index);
    await im.decode();
    const resized = !plane || p.W !== plane.W || p.H !== plane.H;
    S.axis = axis; S.index = index; plane = p; img = im;
    S.labels = p.labels; S.W = p.W; S.H = p.H;
    S.aspect = info.spacing[0] / info.spacing[1];
    if (resized) {
      ov = new OffscreenCanvas(p.W, p.H); ovCtx = ov.getContext("2d");
      ovData = ovCtx.createImageData(p.W, p.H);
      fit();
    }
    redrawOverlay();
    const sl = document.getElementById("slice");
    sl.max = info.slices - 1; sl.value = index;
    document.getElementById("slice-v").textContent = `${info.name} ${index + 1} / ${info.slices}`;
    document.querySelectorAll("[data-axis]").forEach((b) => b.classList.toggle("active", Number(b.dataset.axis) === axis));
    refreshLists(); requestDraw();
  }
  S.go = go;
  S.planeRuns = async (axis, index) => encodeRuns((await getPlane(axis, index)).labels);

  // ---- drawing -----------------------------------------------------------------------------
  function redrawOverlay() {
    if (!ovData) return;
    L.paint(S, classes, S.labels, ovData);
    ovCtx.putImageData(ovData, 0, 0);
  }
  S.overlayPixel = (x, y) => Array.from(ovData.data.subarray((y * S.W + x) * 4, (y * S.W + x) * 4 + 4));

  function draw() {
    const r = viewport.getBoundingClientRect();
    if (canvas.width !== Math.floor(r.width) || canvas.height !== Math.floor(r.height)) {
      canvas.width = Math.floor(r.width); canvas.height = Math.floor(r.height);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#111"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!img) return;
    ctx.setTransform(S.scale, 0, 0, S.scale * S.aspect, S.ox, S.oy);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0);
    ctx.globalAlpha = S.opacity; ctx.drawImage(ov, 0, 0); ctx.globalAlpha = 1;
    if (hover && !REVIEW && (S.tool === "brush" || S.tool === "eraser")) {
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 / S.scale; ctx.beginPath();
      ctx.arc(hover[0], hover[1], S.size / 2, 0, 2 * Math.PI); ctx.stroke();
    }
  }
  let pending = false;
  const requestDraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } };
  function fit() {
    const r = viewport.getBoundingClientRect();
    S.scale = Math.min(r.width / S.W, r.height / (S.H * S.aspect)) * 0.98;
    S.ox = (r.width - S.W * S.scale) / 2; S.oy = (r.height - S.H * S.scale * S.aspect) / 2;
    requestDraw();
  }
  const toImage = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left - S.ox) / S.scale, (ev.clientY - r.top - S.oy) / (S.scale * S.aspect)];
  };
  S.toScreen = (x, y) => {
    const r = canvas.getBoundingClientRect();
    return [r.left + S.ox + x * S.scale, r.top + S.oy + y * S.scale * S.aspect];
  };

  // ---- pointer and keys --------------------------------------------------------------------
  let drag = null, hover = null, spaceDown = false;
  canvas.addEventListener("pointerdown", guard(async (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = toImage(ev);
    if (ev.button === 1 || spaceDown || REVIEW || S.tool === "pan") {
      drag = { pan: true, sx: ev.clientX, sy: ev.clientY, ox: S.ox, oy: S.oy }; return;
    }
    if (p[0] < 0 || p[1] < 0 || p[0] >= S.W || p[1] >= S.H) return;
    const e = plane.edits;
    if (S.tool === "fill") { e.begin(); e.bucket(Math.floor(p[0]), Math.floor(p[1]), e.targetSegment()); e.commit(); return; }
    e.begin(); // before targetSegment(): a segment it creates is part of this undo step
    const v = S.tool === "eraser" ? 0 : e.targetSegment();
    e.stamp(p[0], p[1], v); redrawOverlay();
    drag = { paint: v, last: p }; requestDraw();
  }));
  canvas.addEventListener("pointermove", (ev) => {
    const p = toImage(ev);
    hover = p;
    if (drag && drag.pan) { S.ox = drag.ox + ev.clientX - drag.sx; S.oy = drag.oy + ev.clientY - drag.sy; }
    else if (drag) { plane.edits.strokeTo(drag.last, p, drag.paint); drag.last = p; redrawOverlay(); }
    requestDraw();
  });
  canvas.addEventListener("pointerup", () => {
    if (drag && drag.paint !== undefined) plane.edits.commit();
    drag = null; requestDraw();
  });
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("wheel", guard(async (ev) => {
    ev.preventDefault();
    if (ev.ctrlKey) { // zoom about the cursor
      const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      const ns = Math.min(64, Math.max(0.05, S.scale * Math.exp(-ev.deltaY * 0.0015)));
      S.ox = mx - (mx - S.ox) * ns / S.scale; S.oy = my - (my - S.oy) * ns / S.scale; S.scale = ns;
      requestDraw(); return;
    }
    await go(S.axis, S.index + (ev.deltaY > 0 ? 1 : -1)); // the wheel scrolls through slices
  }), { passive: false });

  document.addEventListener("keydown", guard(async (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const k = ev.key.toLowerCase();
    if (ev.key === " ") { spaceDown = true; ev.preventDefault(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "s") { ev.preventDefault(); if (!REVIEW) await save(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "z" && !REVIEW) { ev.preventDefault(); ev.shiftKey ? plane.edits.redo() : plane.edits.undo(); return; }
    if (ev.key === "ArrowUp" || ev.key === "PageUp") { ev.preventDefault(); await go(S.axis, S.index + 1); return; }
    if (ev.key === "ArrowDown" || ev.key === "PageDown") { ev.preventDefault(); await go(S.axis, S.index - 1); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || REVIEW) return;
    const tools = { b: "brush", e: "eraser", f: "fill" };
    if (tools[k]) { setTool(tools[k]); return; }
    if (k === "c") { await copyNext(); return; }
    if (k === "i") { await interpolate(); return; }
    for (const c of classes.values()) if (c.hotkey && c.hotkey.toLowerCase() === k) { L.setCategory(S, classes, c.id); return; }
  }));
  document.addEventListener("keyup", (ev) => { if (ev.key === " ") spaceDown = false; });

  function setTool(t) { L.setTool(S, t); requestDraw(); }
  function refreshLists() {
    L.lists(S, classes, S.labels ? L.count(new Map(), S.labels) : new Map(), "in this slice");
  }
  S.refreshLists = refreshLists;

  // ---- propagation -------------------------------------------------------------------------
  async function copyNext() {
    const src = plane, next = S.index + 1;
    if (next >= S.info.planes[S.axis].slices) { flash("this is the last slice"); return; }
    const dst = await getPlane(S.axis, next);
    dst.edits.begin();
    for (let i = 0; i < src.labels.length; i++) if (src.labels[i]) dst.edits.set(i, src.labels[i]);
    dst.edits.grow(0, 0, dst.W, dst.H);
    dst.edits.commit();
    await go(S.axis, next);
    flash(`copied slice ${src.index + 1} to ${next + 1}`, "ok");
  }
  async function interpolate() {
    const [a, b] = S.painted.slice(-2);
    if (b === undefined || Math.abs(a - b) < 2) { flash("paint two slices of this view with unpainted slices between them, then interpolate"); return; }
    const pa = await getPlane(S.axis, a), pb = await getPlane(S.axis, b);
    const r = await api("POST", `/api/tasks/${tid}/volume/interpolate`, {
      a: { axis: S.axis, index: a, runs: encodeRuns(pa.labels) },
      b: { axis: S.axis, index: b, runs: encodeRuns(pb.labels) } });
    for (const q of r.planes) {
      const p = await getPlane(S.axis, q.index), m = decodeRuns(q.runs, p.W * p.H);
      p.edits.begin();
      for (let i = 0; i < m.length; i++) if (m[i] && !p.labels[i]) p.edits.set(i, m[i]); // painted pixels stay
      p.edits.grow(0, 0, p.W, p.H);
      p.edits.commit();
    }
    S.painted = S.painted.filter((k) => k !== a && k !== b).concat([a, b]);
    if (plane) redrawOverlay();
    requestDraw();
    flash(`interpolated ${r.planes.length} slices between ${Math.min(a, b) + 1} and ${Math.max(a, b) + 1}`, "ok");
  }

  // ---- load, save, submit, review -----------------------------------------------------------
  const exports = (v) => [["export", `/api/tasks/${tid}/volume/export.nii.gz?version=${v}`]];

  async function load() {
    await L.start(S, tid, `/api/tasks/${tid}/volume`);
    const sel = document.getElementById("window");
    for (const name of Object.keys(S.info.presets)) sel.append(el("option", { value: name }, name.replace("_", " ")));
    S.window = S.info.presets.default;
    sel.addEventListener("change", guard(async () => { S.window = S.info.presets[sel.value]; await go(S.axis, S.index); }));
    await go(2, Math.floor(S.info.planes[2].slices / 2));
    const sh = S.info.shape, sp = S.info.spacing.map((v) => v.toFixed(2));
    status.textContent = `${S.task.image.filename} · ${sh.join("×")} · ${sp.join("×")} mm · ${S.info.orientation} · v${S.version}`;
    await L.side(S, tid, exports);
    S.ready = true;
  }

  const dirtyPlanes = () => [...planes.values()].filter((p) => p.dirty);
  async function save() {
    const dirty = dirtyPlanes();
    const r = await L.put(`/api/tasks/${tid}/volume/labels`, {
      base_version: S.version, segments: S.segments,
      planes: dirty.map((p) => ({ axis: p.axis, index: p.index, runs: encodeRuns(p.labels) })),
      seconds: Math.min((performance.now() - activeSince) / 1000, 86400) });
    if (!r) return false;
    S.version = r.version; activeSince = performance.now();
    dirty.forEach((p) => { p.dirty = false; });
    flash(`saved version ${S.version} (${dirty.length} slices sent, ${r.chunks_written} stored)`, "ok");
    await L.side(S, tid, exports);
    return true;
  }
  S.save = save;

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  document.querySelectorAll("[data-axis]").forEach((b) => b.addEventListener("click", guard(async () => {
    const a = Number(b.dataset.axis); await go(a, Math.floor(S.info.planes[a].slices / 2)); })));
  on("slice", "input", async (ev) => go(S.axis, Number(ev.target.value)));
  on("prev", "click", async () => go(S.axis, S.index - 1));
  on("next", "click", async () => go(S.axis, S.index + 1));
  on("size", "input", (ev) => { S.size = Number(ev.target.value); requestDraw(); });
  on("opacity", "input", (ev) => { S.opacity = Number(ev.target.value) / 100; requestDraw(); });
  on("undo", "click", () => plane.edits.undo());
  on("zoom-fit", "click", fit);
  on("copy-next", "click", copyNext);
  on("interpolate", "click", interpolate);
  L.wire(S, tid, save, () => !REVIEW && dirtyPlanes().length > 0);
  window.addEventListener("resize", requestDraw);
  setTool(S.tool);
  guard(load)();
})();
