"""Project progress from the task states and the event log: tasks per state, throughput per
person per day, rejection rate, time per task; and the same as a chart (matplotlib PNG)."""

from __future__ import annotations

import io
from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segflow.studio.tables import TASK_STATES, Event, Task, User


def stats(db: Session, project_id: int) -> dict:
    # the images' own tasks: not overlap copies, qualification tasks or honeypots
    states = dict(db.execute(select(Task.state, func.count()).where(Task.project_id == project_id,
                                                                    Task.kind == "work")
                             .group_by(Task.state)).all())
    names = dict(db.execute(select(User.id, User.username)).all())
    events = db.execute(select(Event.kind, Event.user_id, Event.at, Event.seconds, Event.task_id)
                        .where(Event.project_id == project_id)).all()
    per_day: dict[str, Counter] = defaultdict(Counter)
    kinds = Counter()
    seconds: dict[int, float] = defaultdict(float)
    for kind, uid, at, secs, tid in events:
        kinds[kind] += 1
        if kind == "submitted":
            per_day[names.get(uid, "?")][at.date().isoformat()] += 1
        if kind == "saved":
            seconds[tid] += secs
    reviewed = kinds["accepted"] + kinds["rejected"]
    done = [s for s in seconds.values() if s > 0]
    total = sum(states.values())
    return {
        "tasks": total,
        "states": {s: int(states.get(s, 0)) for s in TASK_STATES},
        "progress": (states.get("accepted", 0) / total) if total else 0.0,
        "throughput": {u: dict(sorted(d.items())) for u, d in sorted(per_day.items())},
        "reviews": reviewed,
        "rejection_rate": (kinds["rejected"] / reviewed) if reviewed else None,
        "mean_seconds_per_task": (sum(done) / len(done)) if done else None,
    }


def chart_png(s: dict) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: the studio's backend is left alone

    fig = Figure(figsize=(10, 3.4))
    axes = fig.subplots(1, 2)
    st = s["states"]
    axes[0].bar(list(st), list(st.values()), color=["#999", "#4a90d9", "#e0a030", "#d9534f",
                                                     "#5cb85c"])
    axes[0].set_title("tasks per state")
    days = sorted({d for per in s["throughput"].values() for d in per})
    for user, per in s["throughput"].items():
        axes[1].plot(days, [per.get(d, 0) for d in days], marker="o", label=user)
    axes[1].set_title("submitted per person per day")
    if s["throughput"]:
        axes[1].legend(fontsize=8)
    rr, secs = s["rejection_rate"], s["mean_seconds_per_task"]
    fig.suptitle(f"rejection rate {'-' if rr is None else f'{rr:.0%}'} · mean time per task "
                 f"{'-' if secs is None else f'{secs:.0f} s'}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
