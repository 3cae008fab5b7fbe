// segflow studio: the label map and its edits, shared by the editor and the review view.
//
// The labels are one Uint32Array of segment ids (0 = unlabelled), as the API sends them (as
// row-major runs). Every edit records the pixels it changed (index, old value, new value) in
// typed arrays, so undo/redo cost what the edit touched, not the image size.
"use strict";

const segflowRuns = {
  decodeRuns(runs, n) {
    const out = new Uint32Array(n);
    let p = 0;
    for (let k = 0; k < runs.length; k += 2) { out.fill(runs[k], p, p + runs[k + 1]); p += runs[k + 1]; }
    if (p !== n) throw new Error(`labels cover ${p} pixels, expected ${n}`);
    return out;
  },
  encodeRuns(L) {
    const runs = [];
    let v = L[0], n = 0;
    for (let i = 0; i < L.length; i++) {
      if (L[i] === v) n++;
      else { runs.push(v, n); v = L[i]; n = 1; }
    }
    runs.push(v, n);
    return runs;
  },
};

// Edits on state S (labels, segments, W, H, size, category, current, project, dirty);
// hooks.redraw(x0, y0, x1, y1) repaints a rectangle of the overlay, hooks.changed() refreshes
// lists and the view after an edit.
function segflowLabelEdits(S, classes, hooks) {
  let op = null, hole = null, undoStack = [], redoStack = [];
  const segById = (id) => S.segments.find((s) => s.id === id);
  // op: the edit in progress: changed indices, old and new values, bounding box
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
    hooks.redraw(op.x0, op.y0, op.x1 + 1, op.y1 + 1);
    op = null; hooks.changed();
  }
  function replay(rec, forward) {
    const vals = forward ? rec.nw : rec.old, idx = rec.idx, L = S.labels;
    for (let k = 0; k < idx.length; k++) L[idx[k]] = vals[k];
    S.segments = JSON.parse(forward ? rec.segsAfter : rec.segsBefore);
    S.dirty = true;
    hooks.redraw(rec.x0, rec.y0, rec.x1 + 1, rec.y1 + 1);
    hooks.changed();
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
    hooks.redraw(Math.min(a[0], b[0]) - S.size, Math.min(a[1], b[1]) - S.size,
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
  return { begin, set, grow, commit, undo, redo, targetSegment, newSegment, stamp, strokeTo,
    fillPolygon, bucket };
}
