"""The model registry: every trained model kept with its lineage, in a plain folder.

A registry is a folder (for a studio data folder, ``DATA/models/``) with one sub-folder per
model: ``<id>/model.pt`` (a copy of the checkpoint) and ``<id>/record.json``::

    {"id", "created_at", "task", "model", "config", "metrics", "parent", "started_by",
     "dataset": {"hash", "n_images", "annotations": [{"id", "version"}, ...], ...},
     "versions": {"segflow", "python", "numpy", "torch", ...}, "code": {"git_commit", "dirty"}}

``dataset["hash"]`` is a content hash of the images and labels (:func:`dataset_snapshot`), so two
records with the same hash were trained on the same data. A record is written into a hidden
folder and renamed into place: a reader never sees half of one. The core install can read a
registry (no torch needed); :func:`fetch` reads the same records from a studio's API.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segflow.errors import SegflowError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RECORD = "record.json"
CHECKPOINT = "model.pt"


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become None, tuples lists, numpy scalars numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item"):  # numpy / torch scalars
        try:
            return _clean(x.item())
        except (TypeError, ValueError):
            pass
    if isinstance(x, Path):
        return str(x)
    return str(x)


def library_versions() -> dict:
    """Versions of python, segflow and the libraries a model depends on (those installed),
    read from package metadata: nothing heavy is imported."""
    from importlib.metadata import PackageNotFoundError, version

    from segflow import __version__

    out = {"segflow": __version__, "python": platform.python_version(),
           "platform": platform.platform(terse=True)}
    for dist in ("numpy", "torch", "torchvision", "opencv-python-headless", "scikit-image"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def code_version() -> dict:
    """The git commit of the segflow source when it runs from a checkout (and whether the
    tree has uncommitted changes); ``None`` values when it is not known (an installed wheel)."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return {"git_commit": None, "dirty": None}
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=20)
        return {"git_commit": sha.stdout.strip(),
                "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "dirty": None}


def dataset_snapshot(root: str | os.PathLike, *, annotations: list | None = None,
                     files: list[str | os.PathLike] | None = None) -> dict:
    """``{"hash", "n_images", "annotations", "root"}`` of a dataset folder: a SHA-256 over the
    relative path and bytes of every file under ``root`` (images, labels, schema), or of
    ``files`` only (paths relative to ``root`` or absolute). ``annotations``: the annotation
    ids and versions the studio trained on, kept as given."""
    root = Path(root)
    if not root.is_dir():
        raise SegflowError(f"{root}: no such dataset folder")
    paths = sorted(Path(root, f) for f in files) if files is not None else sorted(
        p for p in root.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(root).parts))
    h = hashlib.sha256()
    for p in paths:
        if not p.is_file():
            raise SegflowError(f"{p}: no such file in the dataset")
        h.update(str(p.relative_to(root) if p.is_relative_to(root) else p).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    try:
        from segflow.formats import open_dataset

        n_images = len(open_dataset(root))
    except SegflowError:
        n_images = None
    return {"hash": h.hexdigest(), "n_images": n_images, "annotations": list(annotations or []),
            "root": str(root)}


@dataclass
class ModelRecord:
    id: str
    created_at: str
    task: str
    model: str
    config: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parent: str | None = None
    started_by: str | None = None
    versions: dict = field(default_factory=dict)
    code: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def checkpoint(self) -> Path:
        if self.folder is None:
            raise SegflowError(f"model {self.id}: a record read from a studio has no local "
                               "checkpoint")
        return self.folder / CHECKPOINT

    def to_dict(self) -> dict:
        return {"id": self.id, "created_at": self.created_at, "task": self.task,
                "model": self.model, "config": self.config, "dataset": self.dataset,
                "metrics": self.metrics, "parent": self.parent, "started_by": self.started_by,
                "versions": self.versions, "code": self.code}

    @classmethod
    def from_dict(cls, d: Any, *, folder: Path | None = None, where: str = "record") -> ModelRecord:
        if not isinstance(d, dict):
            raise SegflowError(f"{where}: a model record is a JSON object")
        missing = [k for k in ("id", "created_at", "task", "model") if not isinstance(d.get(k), str)]
        if missing:
            raise SegflowError(f"{where}: not a model record (no {', '.join(missing)})")
        for k in ("config", "dataset", "metrics", "versions", "code"):
            if d.get(k) is not None and not isinstance(d[k], dict):
                raise SegflowError(f"{where}: '{k}' must be an object")
        for k in ("parent", "started_by"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise SegflowError(f"{where}: '{k}' must be a string or null")
        return cls(id=d["id"], created_at=d["created_at"], task=d["task"], model=d["model"],
                   config=d.get("config") or {}, dataset=d.get("dataset") or {},
                   metrics=d.get("metrics") or {}, parent=d.get("parent"),
                   started_by=d.get("started_by"), versions=d.get("versions") or {},
                   code=d.get("code") or {}, folder=folder)


def check_id(model_id: Any) -> str:
    if not isinstance(model_id, str) or not _ID.match(model_id):
        raise SegflowError(f"{model_id!r}: not a model id (letters, digits, '-', '_', '.')")
    return model_id


class ModelRegistry:
    """A folder of model records (see the module docs)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _new_id(self) -> str:
        now = datetime.now(timezone.utc)
        return f"m{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"

    def record(self, checkpoint: str | os.PathLike, *, task: str, model: str, config: dict,
               dataset: dict, metrics: dict, parent: str | None = None,
               started_by: str | None = None) -> ModelRecord:
        """Copy ``checkpoint`` into the registry and write its record; returns it."""
        src = Path(checkpoint)
        if not src.is_file():
            raise SegflowError(f"{src}: no such checkpoint to record")
        for name, v in (("task", task), ("model", model)):
            if not isinstance(v, str) or not v:
                raise SegflowError(f"model record: {name} must be a non-empty string")
        for name, v in (("config", config), ("dataset", dataset), ("metrics", metrics)):
            if not isinstance(v, dict):
                raise SegflowError(f"model record: {name} must be a dict")
        if parent is not None:
            self.get(parent)  # a parent must be a model of this registry
        if started_by is not None and not isinstance(started_by, str):
            raise SegflowError("model record: started_by must be a string")
        ds = {"hash": None, "n_images": None, "annotations": [], **dataset}
        now = datetime.now(timezone.utc)
        rec = ModelRecord(id=self._new_id(), created_at=now.isoformat(timespec="microseconds"),
                          task=task, model=model, config=_clean(config), dataset=_clean(ds),
                          metrics=_clean(metrics), parent=parent, started_by=started_by,
                          versions=library_versions(), code=code_version())
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{rec.id}.tmp"
        tmp.mkdir()
        try:
            shutil.copyfile(src, tmp / CHECKPOINT)
            (tmp / RECORD).write_text(json.dumps(rec.to_dict(), indent=1, allow_nan=False) + "\n",
                                      encoding="utf-8")
            os.replace(tmp, self.root / rec.id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        rec.folder = self.root / rec.id
        return rec

    def _read(self, folder: Path) -> ModelRecord:
        path = folder / RECORD
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SegflowError(f"{path}: missing (not a model record folder)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SegflowError(f"{path}: corrupt model record ({type(e).__name__})") from None
        rec = ModelRecord.from_dict(d, folder=folder, where=str(path))
        if rec.id != folder.name:
            raise SegflowError(f"{path}: its id {rec.id!r} is not its folder's name")
        return rec

    def get(self, model_id: str) -> ModelRecord:
        check_id(model_id)
        folder = self.root / model_id
        if not folder.is_dir():
            raise SegflowError(f"{model_id}: no such model in {self.root}")
        return self._read(folder)

    def list(self, *, skip_bad: bool = False) -> list[ModelRecord]:
        """Every record, oldest first; an absent folder is an empty registry. A corrupt record
        raises :class:`SegflowError` unless ``skip_bad``."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or not d.is_dir() or not _ID.match(d.name):
                continue
            try:
                out.append(self._read(d))
            except SegflowError:
                if not skip_bad:
                    raise
        return sorted(out, key=lambda r: (r.created_at, r.id))

    def lineage(self, model_id: str) -> list[ModelRecord]:
        """The model and its ancestors, newest first (parents followed until none)."""
        chain, seen = [], set()
        cur: str | None = model_id
        while cur is not None and cur not in seen:
            seen.add(cur)
            rec = self.get(cur)
            chain.append(rec)
            cur = rec.parent
        return chain


def registry_of(data: str | os.PathLike) -> ModelRegistry:
    """The registry of a studio data folder (``DATA/models``), or ``data`` itself when it is a
    registry folder; a missing folder is one clear error."""
    p = Path(data)
    if not p.is_dir():
        raise SegflowError(f"{p}: no such folder (a studio data folder or a model registry)")
    if (p / "models").is_dir():
        return ModelRegistry(p / "models")
    if any((d / RECORD).is_file() for d in p.iterdir() if d.is_dir()):
        return ModelRegistry(p)
    return ModelRegistry(p / "models")  # a studio folder with no model yet


def is_url(s: str) -> bool:
    return str(s).startswith(("http://", "https://"))


def fetch(url: str, path: str, *, token: str | None = None, timeout: float = 30.0) -> Any:
    """GET ``url`` + ``path`` from a studio's API (JSON), with a bearer token if given; every
    failure is one :class:`SegflowError` line."""
    import urllib.error
    import urllib.request

    full = url.rstrip("/") + path
    req = urllib.request.Request(full, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read() or b"{}").get("detail")
        except (ValueError, AttributeError):
            detail = None
        why = {401: "not signed in (give --token or SEGFLOW_TOKEN)",
               403: "not allowed for this token", 404: "not found"}.get(e.code, e.reason)
        raise SegflowError(f"{full}: HTTP {e.code}, {detail or why}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise SegflowError(f"{full}: cannot reach the studio ({reason})") from None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SegflowError(f"{full}: the answer is not JSON") from None


def remote_list(url: str, *, token: str | None = None) -> list[ModelRecord]:
    data = fetch(url, "/api/models", token=token)
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        data = data["models"]
    if not isinstance(data, list):
        raise SegflowError(f"{url}/api/models: expected a list of model records")
    return [ModelRecord.from_dict(d, where=f"{url}/api/models") for d in data]


def remote_get(url: str, model_id: str, *, token: str | None = None) -> ModelRecord:
    check_id(model_id)
    return ModelRecord.from_dict(fetch(url, f"/api/models/{model_id}", token=token),
                                 where=f"{url}/api/models/{model_id}")
