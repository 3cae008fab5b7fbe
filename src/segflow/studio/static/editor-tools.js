// segflow studio, editor: the tools — pointer (paint, polygon, fill, pan, zoom), keys, the
// brush size, new objects and the server's assist tools. Shares state and the view with
// editor.js through E (ui: the polygon, hover point and box being drawn, which draw() shows).
"use strict";

function segflowEditorTools(E) {
  const { S, REVIEW, TOOL_KEYS, tid, canvas, status, ui, classes, segById, toImage, requestDraw,
    redrawOverlay, decodeRuns, begin, set, grow, commit, undo, redo, targetSegment, newSegment,
    stamp, strokeTo, fillPolygon, bucket } = E;

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
  let drag = null, spaceDown = false;
  canvas.addEventListener("pointerdown", guard(async (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = toImage(ev);
    if (ev.button === 1 || spaceDown || (REVIEW && ev.button === 2) || (!REVIEW && S.tool === "pan")) {
      drag = { pan: true, sx: ev.clientX, sy: ev.clientY, ox: S.ox, oy: S.oy }; return;
    }
    if (REVIEW) { E.pinAt(p); return; }
    const inside = p[0] >= 0 && p[1] >= 0 && p[0] < S.W && p[1] < S.H;
    if (!inside) return;
    const [x, y] = [Math.floor(p[0]), Math.floor(p[1])];
    if (S.tool === "brush" || S.tool === "eraser") {
      begin(); // before targetSegment(): a segment it creates is part of this undo step
      const v = S.tool === "eraser" ? 0 : targetSegment();
      stamp(p[0], p[1], v); redrawOverlay(p[0] - S.size, p[1] - S.size, p[0] + S.size, p[1] + S.size);
      drag = { paint: v, last: p }; requestDraw();
    } else if (S.tool === "polygon") {
      ui.poly.push(p); requestDraw();
    } else if (S.tool === "fill") {
      begin(); bucket(x, y, targetSegment()); commit();
    } else if (S.tool === "a-grabcut") {
      ui.boxDrag = { x0: p[0], y0: p[1], x1: p[0], y1: p[1] };
    } else if (S.tool.startsWith("a-")) {
      const name = S.tool.slice(2);
      if (name === "adaptive") await assist("threshold", { point: [x, y], method: "adaptive" });
      else if (name === "threshold") await assist("threshold", { point: [x, y], method: "otsu" });
      else await assist(name, { point: [x, y] });
    }
  }));
  canvas.addEventListener("pointermove", (ev) => {
    const p = toImage(ev);
    ui.hover = p;
    if (drag && drag.pan) { S.ox = drag.ox + ev.clientX - drag.sx; S.oy = drag.oy + ev.clientY - drag.sy; }
    else if (drag && drag.paint !== undefined) { strokeTo(drag.last, p, drag.paint); drag.last = p; }
    else if (ui.boxDrag) { ui.boxDrag.x1 = p[0]; ui.boxDrag.y1 = p[1]; }
    requestDraw();
  });
  canvas.addEventListener("pointerup", guard(async () => {
    if (drag && drag.paint !== undefined) commit();
    drag = null;
    if (ui.boxDrag) {
      const b = ui.boxDrag; ui.boxDrag = null;
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
    const pts = ui.poly.length > 1 && Math.hypot(ui.poly.at(-1)[0] - ui.poly.at(-2)[0], ui.poly.at(-1)[1] - ui.poly.at(-2)[1]) < 1
      ? ui.poly.slice(0, -1) : ui.poly; // a double-click adds its point twice
    ui.poly = [];
    if (pts.length >= 3) { begin(); fillPolygon(pts, targetSegment()); commit(); }
    requestDraw();
  }
  S.closePolygon = closePolygon;

  function setTool(t) {
    S.tool = t; ui.poly = [];
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === t));
    requestDraw();
  }
  function setCategory(cid) {
    S.category = cid;
    const cur = segById(S.current);
    if (!cur || cur.category_id !== cid) S.current = 0;
    E.refreshLists();
  }

  document.addEventListener("keydown", guard(async (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const k = ev.key.toLowerCase();
    if (ev.key === " ") { spaceDown = true; ev.preventDefault(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); ev.shiftKey ? redo() : undo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "y") { ev.preventDefault(); redo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "s") { ev.preventDefault(); await E.save(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || REVIEW) return;
    if (ev.key === "Enter" && S.tool === "polygon") { closePolygon(); return; }
    if (ev.key === "Escape") { ui.poly = []; requestDraw(); return; }
    const tools = TOOL_KEYS; // from the server: the project form refuses class hotkeys among them
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


  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  on("size", "input", (ev) => setSize(Number(ev.target.value)));
  on("new-instance", "click", newObject);
  Object.assign(E, { setTool, setCategory, setSize, newObject });
}
