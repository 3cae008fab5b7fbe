"""A tiny semantic project whose accepted labels a small U-Net learns in seconds: bright discs
on a dark background, the discs labelled 'blob' (the ground truth stands in for annotators)."""

from __future__ import annotations

import numpy as np

from tests.studio.conftest import SCHEMA, Studio, blob_image, png_bytes

SIZE = (48, 64)


def truth(img: np.ndarray) -> np.ndarray:
    """The label map of a blob image: 2 (blob) where bright, 1 (background) elsewhere."""
    return np.where(img[..., 0] > 120, 2, 1).astype(np.int32)


def semantic_project(st: Studio, n_images: int = 6, *, accepted: int = 5, name="blobs") -> dict:
    """A semantic project with ``n_images`` images, the first ``accepted`` of them labelled and
    accepted (written straight to the database, as a reviewer's acceptance would leave them)."""
    from segflow.studio.services import masks
    from segflow.studio.tables import Annotation, Task

    p = st.ok("manager", "POST", "/api/projects", json={
        "name": name, "task_type": "semantic", "goals": "find blobs", "target_metric": "miou",
        "target_threshold": 0.5, "image_count": n_images, "domains": ["lab"], "schema": SCHEMA})
    pid = p["id"]
    imgs = [blob_image(k, SIZE) for k in range(n_images)]
    files = [("files", (f"b{k}.png", png_bytes(im), "image/png")) for k, im in enumerate(imgs)]
    tids = st.ok("manager", "POST", f"/api/projects/{pid}/images", files=files)["task_ids"]
    with st.app.state.sessions() as db:
        for tid, im in zip(tids[:accepted], imgs[:accepted]):
            lab = truth(im)
            segs = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 2, "category_id": 2,
                                                                "iscrowd": 0}]
            packed = masks.pack(lab, segs)
            db.add(Annotation(task_id=tid, version=1, author_id=st.ids["manager"], kind="save",
                              segments=packed.segments, runs=packed.runs))
            t = db.get(Task, tid)
            t.version, t.state = 1, "accepted"
        db.commit()
    return {"pid": pid, "tasks": tids, "images": imgs}
