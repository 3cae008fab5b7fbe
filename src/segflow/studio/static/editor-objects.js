// segflow studio, editor: the label list (pick a class) and the object list (select,
// relabel, reorder, delete), with pixel counts; refreshed after every edit.
"use strict";

function segflowObjectList(E) {
  const { S, classes, segById, colorOf, redrawOverlay, requestDraw, begin, set, grow, commit } = E;

  // ---- side lists --------------------------------------------------------------------------
  function refreshLists() {
    const ul = document.getElementById("labels");
    if (ul) ul.replaceChildren(...[...classes.values()].map((c) => el("li", {
      class: c.id === S.category ? "active" : "", dataset: { category: c.id },
      on: { click: () => E.setCategory(c.id) } },
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
      const b = document.getElementById("show-unlabelled"); // the editor's; the review page has none
      if (b) { b.hidden = false; b.textContent = `${S.showUnlabelled ? "Hide" : "Show"} unlabelled (${n} px)`; }
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

  E.refreshLists = refreshLists;
}
