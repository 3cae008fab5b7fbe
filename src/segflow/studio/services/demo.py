"""The demo project: three users, a retail-shelf project with a brief, guidelines and a few
synthetic images imported with their labels as pre-labels, assigned to the annotator."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.studio import security
from segflow.studio.services import workflow
from segflow.studio.services.storage import ImageStore
from segflow.studio.tables import Guideline, Member, Project, User

DEMO_USERS = (("admin", "admin"), ("annie", "annotator"), ("rev", "reviewer"))
DEMO_PASSWORD = "segflow-demo"
GUIDELINES = """# Retail shelves

Label every **product** (bottle, box, can) and every **price tag** as its own object; the wall
and the shelf boards are stuff.

* Follow the product's outline, including its cap; leave out reflections.
* A product hidden behind another: label only what you see.
* Use *Fill* for shelf boards, *GrabCut box* or *Otsu region* for products, then fix edges
  with the brush (`[` and `]` change its size).
"""


def seed_demo(db: Session, store: ImageStore, *, n_images: int = 6) -> dict:
    """Create the demo once; returns the users' names and password."""
    if db.scalar(select(Project).where(Project.name == "Retail shelves (demo)")):
        return {"created": False}
    users = {}
    for name, role in DEMO_USERS:
        u = db.scalar(select(User).where(User.username == name))
        if u is None:
            u = User(username=name, password_hash=security.hash_password(DEMO_PASSWORD), role=role)
            db.add(u)
            db.flush()
        users[role] = u
    from segflow.synth.export import export_synthetic
    from segflow.synth.retail import SCHEMA

    schema = SCHEMA.to_list()
    for c, key in zip(schema, "wsoxct"):  # bOttle, price Tag: b and p are tool keys
        c["hotkey"] = key
    workflow.check_hotkeys(schema)
    p = Project(name="Retail shelves (demo)", task_type="panoptic", created_by=users["admin"].id,
                goals="Panoptic labels of shelf photos to train a product counter.",
                target_metric="pq", target_threshold=0.6, image_count=500,
                domains=["retail"], schema=schema, prelabel={"mode": "none"})
    db.add(p)
    db.flush()
    for u in users.values():
        db.add(Member(project_id=p.id, user_id=u.id))
    db.add(Guideline(project_id=p.id, version=1, markdown=GUIDELINES, created_by=users["admin"].id,
                     examples=[]))
    db.commit()
    with tempfile.TemporaryDirectory() as tmp:
        export_synthetic("retail", Path(tmp) / "set", n=n_images, seed=7, size=384,
                         fmt="coco_panoptic", progress=False)
        workflow.import_folder(db, store, p, str(Path(tmp) / "set"))
    workflow.assign(db, p, mode="balanced", user_ids=None, task_ids=None)
    db.commit()
    return {"created": True, "users": [n for n, _ in DEMO_USERS], "password": DEMO_PASSWORD,
            "project_id": p.id}
