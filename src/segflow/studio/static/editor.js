// segflow studio: the label editor (and the read-only review view).
//
// The labels are one Uint32Array of segment ids (0 = unlabelled), as the API sends them. Every
// edit records the pixels it changed (index, old value, new value) so undo/redo cost what the
// edit touched, not the image size; only the changed rectangle of the overlay is redrawn, which
// keeps a 4000x3000 image responsive.
"use strict";

(function () {
  const root = document.getElementById("editor") || document.getElementById("review");
  if (!root) return;
  const REVIEW = root.id === "review";
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
  let img = null, ov = null, ovCtx = null, ovData = null, hole = null;
  let undoStack = [], redoStack = [], activeSince = performance.now(), activeSeconds = 0;
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

  function redrawOverlay(x0 = 0, y0 = 0, x1 = S.W, y1 = S.H) {
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
    const lw = 1.5 / S.scale;
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

  // ---- edits with undo ---------------------------------------------------------------------
  let op = null; // the edit in progress: changed indices, old and new values, bounding box
  function begin() {
    op = { idx: new Uint32Array(1024), old: new Uint32Array(1024), n: 0,
      x0: Infinity, y0: Infinity, x1: -1, y1: -1, segsBefore: JSON.stringify(S.segments) };
    if (!hole || hole.length !== S.labels.length) hole = new Uint8Array(S.labels.length);
  }
  function set(i, v) {
    const L = S.labels;
    if (L[i] === v) return;
    if (!hole[i]) {
      hole[i] = 1;
      if (op.n === op.idx.length) { // typed arrays, doubled when full: a 12 MP fill stays fast
        const a = new Uint32Array(op.n * 2), b = new Uint32Array(op.n * 2);
        a.set(op.idx); b.set(op.old); op.idx = a; op.old = b;
      }
      op.idx[op.n] = i; op.old[op.n] = L[i]; op.n++;
    }
    L[i] = v;
  }
  function grow(x0, y0, x1, y1) {
    op.x0 = Math.min(op.x0, x0); op.y0 = Math.min(op.y0, y0);
    op.x1 = Math.max(op.x1, x1); op.y1 = Math.max(op.y1, y1);
  }
  function commit() {
    if (!op) return;
    op.idx = op.idx.subarray(0, op.n); op.old = op.old.subarray(0, op.n);
    op.nw = new Uint32Array(op.n);
    for (let k = 0; k < op.n; k++) { const i = op.idx[k]; hole[i] = 0; op.nw[k] = S.labels[i]; }
    op.segsAfter = JSON.stringify(S.segments);
    if (op.n || op.segsAfter !== op.segsBefore) {
      undoStack.push(op); redoStack = []; S.dirty = true;
      if (undoStack.length > 200) undoStack.shift();
    }
    redrawOverlay(op.x0, op.y0, op.x1 + 1, op.y1 + 1);
    op = null; refreshLists(); requestDraw();
  }
  function replay(rec, forward) {
    const vals = forward ? rec.nw : rec.old, idx = rec.idx, L = S.labels;
    for (let k = 0; k < idx.length; k++) L[idx[k]] = vals[k];
    S.segments = JSON.parse(forward ? rec.segsAfter : rec.segsBefore);
    S.dirty = true;
    redrawOverlay(rec.x0, rec.y0, rec.x1 + 1, rec.y1 + 1);
    refreshLists(); requestDraw();
  }
  function undo() { const r = undoStack.pop(); if (r) { replay(r, false); redoStack.push(r); } }
  function redo() { const r = redoStack.pop(); if (r) { replay(r, true); undoStack.push(r); } }

  // the segment that painting with the current class writes
  function targetSegment() {
    const c = classes.get(S.category);
    if (!c) return 0;
    const cur = segById(S.current);
    if (cur && cur.category_id === S.category) return cur.id;
    if (!c.isthing || S.project.task_type === "semantic") {
      const s = S.segments.find((s) => s.category_id === S.category);
      if (s) { S.current = s.id; return s.id; }
    }
    return newSegment();
  }
  function newSegment() {
    const id = S.segments.reduce((m, s) => Math.max(m, s.id), 0) + 1;
    S.segments.push({ id, category_id: S.category, iscrowd: 0 });
    S.current = id;
    return id;
  }

  function stamp(cx, cy, v) {
    const r = S.size / 2, W = S.W, H = S.H;
    const y0 = Math.max(0, Math.ceil(cy - r)), y1 = Math.min(H - 1, Math.floor(cy + r));
    for (let y = y0; y <= y1; y++) {
      const dx = Math.sqrt(Math.max(0, r * r - (y - cy) * (y - cy)));
      const x0 = Math.max(0, Math.ceil(cx - dx)), x1 = Math.min(W - 1, Math.floor(cx + dx));
      for (let x = x0; x <= x1; x++) set(y * W + x, v);
    }
    grow(cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1);
  }
  function strokeTo(a, b, v) {
    const d = Math.hypot(b[0] - a[0], b[1] - a[1]);
    const n = Math.max(1, Math.ceil(d / Math.max(1, S.size / 4)));
    for (let k = 1; k <= n; k++) stamp(a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n, v);
    redrawOverlay(Math.min(a[0], b[0]) - S.size, Math.min(a[1], b[1]) - S.size,
      Math.max(a[0], b[0]) + S.size, Math.max(a[1], b[1]) + S.size);
  }

  function fillPolygon(points, v) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.max(0, Math.floor(Math.min(...xs))), y0 = Math.max(0, Math.floor(Math.min(...ys)));
    const x1 = Math.min(S.W, Math.ceil(Math.max(...xs)) + 1), y1 = Math.min(S.H, Math.ceil(Math.max(...ys)) + 1);
    if (x1 <= x0 || y1 <= y0) return;
    const c = new OffscreenCanvas(x1 - x0, y1 - y0), g = c.getContext("2d");
    g.fillStyle = "#fff"; g.beginPath();
    points.forEach(([x, y], k) => (k ? g.lineTo(x - x0, y - y0) : g.moveTo(x - x0, y - y0)));
    g.closePath(); g.fill();
    const a = g.getImageData(0, 0, x1 - x0, y1 - y0).data;
    for (let y = y0; y < y1; y++)
      for (let x = x0; x < x1; x++)
        if (a[((y - y0) * (x1 - x0) + (x - x0)) * 4 + 3] >= 128) set(y * S.W + x, v);
    grow(x0, y0, x1, y1);
  }

  function bucket(x, y, v) {
    const W = S.W, H = S.H, L = S.labels;
    const start = y * W + x, from = L[start];
    if (from === v) return;
    const stack = [start];
    let bx0 = x, by0 = y, bx1 = x, by1 = y;
    // scanline fill: one seed per run of matching pixels in the rows above and below
    const seeds = (a, b) => {
      let inRun = false;
      for (let j = a; j <= b; j++) {
        if (L[j] === from) { if (!inRun) { stack.push(j); inRun = true; } } else inRun = false;
      }
    };
    while (stack.length) {
      const i = stack.pop();
      if (L[i] !== from) continue;
      let l = i, r = i;
      const row = Math.floor(i / W) * W;
      while (l > row && L[l - 1] === from) l--;
      while (r < row + W - 1 && L[r + 1] === from) r++;
      for (let j = l; j <= r; j++) set(j, v);
      if (row > 0) seeds(l - W, r - W);
      if (row + W < W * H) seeds(l + W, r + W);
      const yy = row / W;
      bx0 = Math.min(bx0, l - row); bx1 = Math.max(bx1, r - row);
      by0 = Math.min(by0, yy); by1 = Math.max(by1, yy);
    }
    grow(bx0, by0, bx1 + 1, by1 + 1);
  }

  function decodeRuns(runs, n) {
    const out = new Uint32Array(n);
    let p = 0;
    for (let k = 0; k < runs.length; k += 2) { out.fill(runs[k], p, p + runs[k + 1]); p += runs[k + 1]; }
    if (p !== n) throw new Error(`labels cover ${p} pixels, expected ${n}`);
    return out;
  }
  function encodeRuns(L) {
    const runs = [];
    let v = L[0], n = 0;
    for (let i = 0; i < L.length; i++) {
      if (L[i] === v) n++;
      else { runs.push(v, n); v = L[i]; n = 1; }
    }
    runs.push(v, n);
    return runs;
  }
  S.encodeRuns = () => encodeRuns(S.labels);

  async function assist(tool, extra) {
    status.textContent = `${tool}…`;
    const r = await api("POST", `/api/tasks/${tid}/assist`, { tool, ...extra });
    const m = decodeRuns(r.runs, S.W * S.H);
    begin();
    const seg = targetSegment();
    let x0 = S.W, y0 = S.H, x1 = 0, y1 = 0;
    for (let i = 0; i < m.length; i++) if (m[i]) {
      set(i, seg);
      const x = i % S.W, y = (i / S.W) | 0;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    grow(x0, y0, x1 + 1, y1 + 1);
    commit();
    status.textContent = `${tool}: ${r.pixels} pixels`;
  }

  // ---- pointer and keys --------------------------------------------------------------------
  let drag = null, poly = [], hover = null, boxDrag = null, spaceDown = false;
  canvas.addEventListener("pointerdown", guard(async (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = toImage(ev);
    if (ev.button === 1 || spaceDown || (REVIEW && ev.button === 2) || (!REVIEW && S.tool === "pan")) {
      drag = { pan: true, sx: ev.clientX, sy: ev.clientY, ox: S.ox, oy: S.oy }; return;
    }
    if (REVIEW) { pinAt(p); return; }
    const inside = p[0] >= 0 && p[1] >= 0 && p[0] < S.W && p[1] < S.H;
    if (!inside) return;
    const [x, y] = [Math.floor(p[0]), Math.floor(p[1])];
    if (S.tool === "brush" || S.tool === "eraser") {
      begin(); // before targetSegment(): a segment it creates is part of this undo step
      const v = S.tool === "eraser" ? 0 : targetSegment();
      stamp(p[0], p[1], v); redrawOverlay(p[0] - S.size, p[1] - S.size, p[0] + S.size, p[1] + S.size);
      drag = { paint: v, last: p }; requestDraw();
    } else if (S.tool === "polygon") {
      poly.push(p); requestDraw();
    } else if (S.tool === "fill") {
      begin(); bucket(x, y, targetSegment()); commit();
    } else if (S.tool === "a-grabcut") {
      boxDrag = { x0: p[0], y0: p[1], x1: p[0], y1: p[1] };
    } else if (S.tool.startsWith("a-")) {
      const name = S.tool.slice(2);
      if (name === "adaptive") await assist("threshold", { point: [x, y], method: "adaptive" });
      else if (name === "threshold") await assist("threshold", { point: [x, y], method: "otsu" });
      else await assist(name, { point: [x, y] });
    }
  }));
  canvas.addEventListener("pointermove", (ev) => {
    const p = toImage(ev);
    hover = p;
    if (drag && drag.pan) { S.ox = drag.ox + ev.clientX - drag.sx; S.oy = drag.oy + ev.clientY - drag.sy; }
    else if (drag && drag.paint !== undefined) { strokeTo(drag.last, p, drag.paint); drag.last = p; }
    else if (boxDrag) { boxDrag.x1 = p[0]; boxDrag.y1 = p[1]; }
    requestDraw();
  });
  canvas.addEventListener("pointerup", guard(async () => {
    if (drag && drag.paint !== undefined) commit();
    drag = null;
    if (boxDrag) {
      const b = boxDrag; boxDrag = null;
      const x = Math.min(b.x0, b.x1), y = Math.min(b.y0, b.y1);
      await assist("grabcut", { box: [x, y, Math.abs(b.x1 - b.x0), Math.abs(b.y1 - b.y0)] });
    }
    requestDraw();
  }));
  canvas.addEventListener("dblclick", () => { if (S.tool === "polygon") closePolygon(); });
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    const f = Math.exp(-ev.deltaY * 0.0015);
    const ns = Math.min(64, Math.max(0.02, S.scale * f));
    S.ox = mx - (mx - S.ox) * ns / S.scale; S.oy = my - (my - S.oy) * ns / S.scale; S.scale = ns;
    requestDraw();
  }, { passive: false });

  function closePolygon() {
    const pts = poly.length > 1 && Math.hypot(poly.at(-1)[0] - poly.at(-2)[0], poly.at(-1)[1] - poly.at(-2)[1]) < 1
      ? poly.slice(0, -1) : poly; // a double-click adds its point twice
    poly = [];
    if (pts.length >= 3) { begin(); fillPolygon(pts, targetSegment()); commit(); }
    requestDraw();
  }
  S.closePolygon = closePolygon;

  function setTool(t) {
    S.tool = t; poly = [];
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === t));
    requestDraw();
  }
  function setCategory(cid) {
    S.category = cid;
    const cur = segById(S.current);
    if (!cur || cur.category_id !== cid) S.current = 0;
    refreshLists();
  }

  document.addEventListener("keydown", guard(async (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const k = ev.key.toLowerCase();
    if (ev.key === " ") { spaceDown = true; ev.preventDefault(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); ev.shiftKey ? redo() : undo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "y") { ev.preventDefault(); redo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "s") { ev.preventDefault(); await save(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || REVIEW) return;
    if (ev.key === "Enter" && S.tool === "polygon") { closePolygon(); return; }
    if (ev.key === "Escape") { poly = []; requestDraw(); return; }
    const tools = { b: "brush", e: "eraser", p: "polygon", f: "fill" };
    if (tools[k]) { setTool(tools[k]); return; }
    if (k === "n") { newObject(); return; }
    if (k === "[" || k === "]") { setSize(S.size + (k === "]" ? 2 : -2)); return; }
    for (const c of classes.values()) if (c.hotkey && c.hotkey.toLowerCase() === k) { setCategory(c.id); return; }
  }));
  document.addEventListener("keyup", (ev) => { if (ev.key === " ") spaceDown = false; });

  function setSize(v) {
    S.size = Math.max(1, Math.min(200, v));
    const el1 = document.getElementById("size"); if (el1) el1.value = S.size;
    const el2 = document.getElementById("size-v"); if (el2) el2.textContent = S.size;
    requestDraw();
  }
  function newObject() {
    const c = classes.get(S.category);
    if (!c) return;
    begin(); newSegment(); commit();
  }

  // ---- side lists --------------------------------------------------------------------------
  function refreshLists() {
    const ul = document.getElementById("labels");
    if (ul) ul.replaceChildren(...[...classes.values()].map((c) => el("li", {
      class: c.id === S.category ? "active" : "", dataset: { category: c.id },
      on: { click: () => setCategory(c.id) } },
      el("i", { style: `background: rgb(${c.color.join(",")})` }),
      `${c.name}${c.hotkey ? ` [${c.hotkey}]` : ""}${c.isthing ? " ·thing" : ""}`)));
    const ol = document.getElementById("instances");
    const maxId = S.segments.reduce((m, s) => Math.max(m, s.id), 0);
    const counts = new Uint32Array(maxId + 2);
    if (S.labels) for (let i = 0; i < S.labels.length; i++) { const v = S.labels[i]; counts[v <= maxId ? v : maxId + 1]++; }
    if (ol) {
      ol.replaceChildren(...S.segments.map((s, k) => {
        const sel = el("select", { on: { change: (ev) => relabel(s.id, Number(ev.target.value)) } },
          ...[...classes.values()].map((c) => el("option", { value: c.id, selected: c.id === s.category_id }, c.name)));
        return el("li", { class: s.id === S.current ? "active" : "", dataset: { segment: s.id } },
          el("i", { style: `background: rgb(${colorOf(s.id).join(",")})` }),
          el("span", { on: { click: () => { S.current = s.id; S.category = s.category_id; redrawOverlay(); refreshLists(); requestDraw(); } } },
            `#${s.id} (${counts[s.id]} px)`), sel,
          el("button", { type: "button", title: "up", on: { click: () => move(k, -1) } }, "↑"),
          el("button", { type: "button", title: "down", on: { click: () => move(k, 1) } }, "↓"),
          el("button", { type: "button", title: "delete", class: "del", on: { click: () => del(s.id) } }, "×"));
      }));
    }
    if (S.project && S.project.task_type === "panoptic" && S.labels) {
      const n = counts[0];
      const b = document.getElementById("show-unlabelled");
      b.hidden = false; b.textContent = `${S.showUnlabelled ? "Hide" : "Show"} unlabelled (${n} px)`;
    }
  }
  function relabel(id, cid) { begin(); segById(id).category_id = cid; commit(); redrawOverlay(); }
  function move(k, d) {
    const j = k + d;
    if (j < 0 || j >= S.segments.length) return;
    begin(); const t = S.segments[k]; S.segments[k] = S.segments[j]; S.segments[j] = t; commit();
  }
  function del(id) {
    begin();
    for (let i = 0; i < S.labels.length; i++) if (S.labels[i] === id) set(i, 0);
    grow(0, 0, S.W, S.H);
    S.segments = S.segments.filter((s) => s.id !== id);
    if (S.current === id) S.current = 0;
    commit();
  }

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
    redrawOverlay(); fit(); refreshLists();
    status.textContent = `task ${tid} · ${S.task.image.filename} · ${S.W}×${S.H} · v${S.version}${a.kind === "prelabel" ? " (pre-labels)" : ""}`;
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
      else throw e;
      return false;
    }
  }

  // review view: pins and decisions
  function pinAt(p) {
    if (p[0] < 0 || p[1] < 0 || p[0] >= S.W || p[1] >= S.H) return;
    S.lastPoint = p;
    status.textContent = `point ${Math.round(p[0])}, ${Math.round(p[1])} — write the comment and add it`;
    document.getElementById("comment-text").focus();
  }
  function renderPending() {
    document.getElementById("pending").replaceChildren(...S.pending.map((c) => el("li", {},
      `${c.n}. ${c.x !== null ? `(${Math.round(c.x)}, ${Math.round(c.y)}) ` : ""}`, c.text)));
    requestDraw();
  }

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  on("size", "input", (ev) => setSize(Number(ev.target.value)));
  on("opacity", "input", (ev) => { S.opacity = Number(ev.target.value) / 100; requestDraw(); });
  on("undo", "click", undo);
  on("redo", "click", redo);
  on("zoom-fit", "click", fit);
  on("new-instance", "click", newObject);
  on("show-unlabelled", "click", () => { S.showUnlabelled = !S.showUnlabelled; redrawOverlay(); refreshLists(); requestDraw(); });
  on("save", "click", save);
  on("submit", "click", async () => {
    if (S.dirty || S.version === 0) { if (!(await save())) return; }
    await api("POST", `/api/tasks/${tid}/submit`);
    flash("submitted for review", "ok");
    location.href = `/projects/${S.task.project_id}`;
  });
  on("add-comment", "click", () => {
    const t = document.getElementById("comment-text");
    if (!t.value.trim()) return;
    const p = S.lastPoint;
    S.pending.push({ x: p ? p[0] : null, y: p ? p[1] : null, text: t.value.trim(), n: S.pins.length + S.pending.length + 1, pending: true });
    S.lastPoint = null; t.value = ""; renderPending();
  });
  const decide = (decision) => async () => {
    await api("POST", `/api/tasks/${tid}/review`, {
      decision, comments: S.pending.map((c) => ({ text: c.text, x: c.x, y: c.y })) });
    flash(decision === "accept" ? "accepted" : "rejected: back to the annotator", "ok");
    location.href = `/projects/${S.task.project_id}`;
  };
  on("accept", "click", decide("accept"));
  on("reject", "click", decide("reject"));
  window.addEventListener("resize", requestDraw);
  window.addEventListener("beforeunload", (ev) => { if (S.dirty && !REVIEW) { ev.preventDefault(); ev.returnValue = ""; } });
  setTool(REVIEW ? "pan" : "brush");
  guard(load)();
})();
