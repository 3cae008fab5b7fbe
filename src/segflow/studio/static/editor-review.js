// segflow studio, review view: comments pinned to points of the image, and the decision
// (accept, or reject with the comments).
"use strict";

function segflowReviewPins(E) {
  const { S, tid, status, requestDraw } = E;

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

  E.pinAt = pinAt;

  const on = (id, ev, fn) => { const e = document.getElementById(id); if (e) e.addEventListener(ev, guard(fn)); };
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
}
