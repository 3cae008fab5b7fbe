"""The one atomic-write helper: the old file survives a failed write, no temporary file stays."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from segflow.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failure_mid_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, "old contents")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half of the new")
                f.flush()
                raise Boom  # the process dies here, mid-write
    assert target.read_text() == "old contents"
    assert _leftovers(tmp_path) == []


def test_an_unserialisable_value_leaves_the_old_json_intact(tmp_path):
    target = atomic_write_json(tmp_path / "a.json", {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"nan": float("nan")}, allow_nan=False)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []


def test_writes_create_folders_replace_and_keep_the_suffix_last(tmp_path):
    target = tmp_path / "a" / "b" / "x.png"
    seen = []
    with atomic_path(target) as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"1")
    assert seen[0].suffix == ".png" and seen[0].parent == target.parent  # same file system
    assert atomic_write_bytes(target, b"22").read_bytes() == b"22"
    assert atomic_write_text(tmp_path / "t.txt", "é").read_text(encoding="utf-8") == "é"
    assert _leftovers(target.parent) == []


def test_threads_writing_one_file_never_leave_a_mixed_or_partial_file(tmp_path):
    target = tmp_path / "shared.json"
    payloads = [{"writer": i, "data": list(range(i * 1000, i * 1000 + 5000))} for i in range(8)]

    def write(p):
        for _ in range(5):
            atomic_write_json(target, p)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(target.read_text()) in payloads
    assert _leftovers(tmp_path) == []


def test_image_and_pipeline_outputs_go_through_it(tmp_path, monkeypatch):
    """write_mask (io) and run.json (the runner) keep the old file when the write fails."""
    from segflow import atomic
    from segflow.io import read_mask, write_mask

    target = tmp_path / "m.png"
    write_mask(target, np.ones((4, 4), np.uint8))

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_mask(target, np.zeros((4, 4), np.uint8))
    monkeypatch.undo()
    assert (read_mask(target) == 1).all() and _leftovers(tmp_path) == []
