// segflow studio, review page: an overlap image's agreement — the flag, the disagreement
// heat-map over the image, each annotator's version, and the decision (keep one, or merge).
"use strict";

(function () {
  const root = document.getElementById("review");
  const box = document.getElementById("agreement");
  if (!root || !box) return;
  const tid = Number(root.dataset.tid);

  async function decide(body) {
    const t = await api("POST", `/api/tasks/${tid}/resolve`, body);
    flash(`accepted as your version ${t.version}`, "ok");
    location.href = `/projects/${t.project_id}`;
  }

  guard(async () => {
    const ag = await api("GET", `/api/tasks/${tid}/agreement`);
    if (ag.status === "none") return;
    box.hidden = false;
    const state = document.getElementById("ag-state");
    state.textContent = ag.status === "waiting" ? "waiting for every annotator"
      : `mIoU ${ag.miou.toFixed(2)}${ag.flagged ? ` — below ${ag.threshold}: flagged` : ""}`;
    state.className = ag.flagged ? "flagged" : "";
    const task = await api("GET", `/api/tasks/${tid}`);
    if (ag.heatmap) document.getElementById("ag-fig").replaceChildren(
      el("img", { src: task.image.url, alt: task.image.filename }),
      el("img", { src: ag.heatmap, class: "over", alt: "disagreement heat-map" }));
    document.getElementById("ag-tasks").replaceChildren(...ag.tasks.map((g) => el("li", {},
      `${g.annotator} (task ${g.task_id}, v${g.version}, ${g.state}) `,
      el("a", { href: `/api/tasks/${g.task_id}/diff.png?a=0&b=${g.version}`, target: "_blank" }, "labels"), " ",
      ag.status === "scored" && task.state === "submitted" ? el("button", { type: "button", class: "ag-pick",
        on: { click: guard(() => decide({ method: "pick", task_id: g.task_id })) } }, "keep this one") : null)));
    const ready = ag.status === "scored" && task.state === "submitted";
    for (const [id, method] of [["ag-majority", "majority"], ["ag-staple", "staple"]]) {
      const b = document.getElementById(id);
      b.disabled = !ready;
      b.addEventListener("click", guard(() => decide({ method })));
    }
    box.dataset.ready = "1";
  })();
})();
