"""The model registry (issue 10): records with lineage, round trips through the folder, the CLI
against a folder and against a studio URL (a stub of GET /api/models), and bad input."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from segflow.errors import SegflowError
from segflow.registry import ModelRecord, ModelRegistry, dataset_snapshot, registry_of

ROOT = Path(__file__).resolve().parents[1]


def _dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(3):
        (root / "images" / f"{k}.png").write_bytes(bytes([k]) * 50)
        (root / "labels" / f"{k}.png").write_bytes(bytes([k + 1]) * 40)
    return root


def _record(reg, tmp_path, **kw):
    ck = tmp_path / "best.pt"
    ck.write_bytes(b"weights" * 100)
    args = dict(task="semantic", model="unet", config={"seed": 0, "lr": 1e-3},
                dataset={"hash": "abc", "n_images": 3, "annotations": [{"id": 7, "version": 2}]},
                metrics={"miou": 0.71, "bad": float("nan")}, started_by="ana")
    return reg.record(ck, **{**args, **kw})


def test_record_round_trips_with_lineage(tmp_path):
    reg = ModelRegistry(tmp_path / "data" / "models")
    assert reg.list() == []  # no folder yet: an empty registry
    a = _record(reg, tmp_path)
    b = _record(reg, tmp_path, parent=a.id, metrics={"miou": 0.8})
    assert b.checkpoint.read_bytes() == (tmp_path / "best.pt").read_bytes()
    d = json.loads((b.checkpoint.parent / "record.json").read_text())
    assert d["id"] == b.id and d["parent"] == a.id and d["started_by"] == "ana"
    assert d["dataset"]["annotations"] == [{"id": 7, "version": 2}]
    assert set(d["versions"]) >= {"segflow", "python", "numpy"}
    assert "git_commit" in d["code"]
    assert json.loads((a.checkpoint.parent / "record.json").read_text())["metrics"]["bad"] is None
    got = reg.get(b.id)
    assert got.to_dict() == b.to_dict() and got.checkpoint == b.checkpoint
    assert [r.id for r in reg.list()] == [a.id, b.id]
    assert [r.id for r in reg.lineage(b.id)] == [b.id, a.id]
    assert ModelRecord.from_dict(b.to_dict()).to_dict() == b.to_dict()
    assert not list(reg.root.glob(".*"))  # no temporary folder left
    assert registry_of(tmp_path / "data").root == reg.root


def test_bad_input_is_one_clear_error(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    with pytest.raises(SegflowError, match="no such checkpoint"):
        reg.record(tmp_path / "nope.pt", task="semantic", model="unet", config={}, dataset={},
                   metrics={})
    with pytest.raises(SegflowError, match="no such model"):
        _record(reg, tmp_path, parent="m-unknown")
    with pytest.raises(SegflowError, match="must be a dict"):
        _record(reg, tmp_path, metrics=[1, 2])
    for bad in ("../etc", "", "a/b", "x" * 200, 2**63):
        with pytest.raises(SegflowError, match="not a model id"):
            reg.get(bad)
    a = _record(reg, tmp_path)
    (a.checkpoint.parent / "record.json").write_text("{not json")
    with pytest.raises(SegflowError, match="corrupt model record"):
        reg.get(a.id)
    with pytest.raises(SegflowError, match="corrupt"):
        reg.list()
    assert reg.list(skip_bad=True) == []
    with pytest.raises(SegflowError, match="no such folder"):
        registry_of(tmp_path / "missing")


def test_dataset_snapshot_hashes_content(tmp_path):
    a = dataset_snapshot(_dataset(tmp_path / "a"), annotations=[{"id": 1, "version": 3}])
    b = dataset_snapshot(_dataset(tmp_path / "b"))
    assert a["hash"] == b["hash"] and a["annotations"] == [{"id": 1, "version": 3}]
    (tmp_path / "b" / "labels" / "1.png").write_bytes(bytes([9]) * 40)  # same size, new bytes
    assert dataset_snapshot(tmp_path / "b")["hash"] != a["hash"]
    with pytest.raises(SegflowError, match="no such dataset folder"):
        dataset_snapshot(tmp_path / "nope")


def _cli(monkeypatch, capsys, *args):
    from segflow.cli.main import main

    monkeypatch.setattr(sys, "argv", ["segflow", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_list_and_show_a_folder(tmp_path, monkeypatch, capsys):
    reg = ModelRegistry(tmp_path / "data" / "models")
    a = _record(reg, tmp_path)
    b = _record(reg, tmp_path, parent=a.id)
    code, out, _ = _cli(monkeypatch, capsys, "models", "list", tmp_path / "data", "--json")
    assert code == 0 and [m["id"] for m in json.loads(out)["models"]] == [a.id, b.id]
    code, out, _ = _cli(monkeypatch, capsys, "models", "show", b.id, "--data", tmp_path / "data",
                        "--json")
    d = json.loads(out)
    assert code == 0 and d["parent"] == a.id and d["checkpoint"] == str(b.checkpoint)
    code, out, _ = _cli(monkeypatch, capsys, "models", "show", b.id, "--data", reg.root)
    assert code == 0 and a.id in out and "miou" in out
    code, out, err = _cli(monkeypatch, capsys, "models", "show", "m-nope", "--data",
                          tmp_path / "data")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such model" in err
    code, out, err = _cli(monkeypatch, capsys, "models", "list", tmp_path / "missing")
    assert code == 2 and "no such folder" in err


def test_cli_corrupt_record_is_one_line_exit_2(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    a = _record(reg, tmp_path)
    (a.checkpoint.parent / "record.json").write_text('{"id": 3}')
    for args in (["list", reg.root], ["show", a.id, "--data", reg.root]):
        p = subprocess.run([sys.executable, "-m", "segflow", "models", *map(str, args)],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "not a model record" in p.stderr


@pytest.fixture
def studio_stub(tmp_path):
    """A stand-in for the studio's GET /api/models and /api/models/{id}, token 'tok'."""
    reg = ModelRegistry(tmp_path / "models")
    recs = [_record(reg, tmp_path)]
    recs.append(_record(reg, tmp_path, parent=recs[0].id))

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.headers.get("Authorization") != "Bearer tok":
                return self._send(401, {"detail": "not signed in"})
            extra = {"project_id": 1, "prelabeller": False, "report": None}  # as the studio adds
            if self.path == "/api/models":
                return self._send(200, [{**r.to_dict(), **extra} for r in reg.list()])
            mid = self.path.removeprefix("/api/models/")
            try:
                return self._send(200, {**reg.get(mid).to_dict(), **extra, "assessment": None})
            except SegflowError:
                return self._send(404, {"detail": f"no model {mid}"})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", recs
    srv.shutdown()
    srv.server_close()


def test_cli_against_a_studio_url(studio_stub, monkeypatch, capsys):
    url, recs = studio_stub
    code, out, _ = _cli(monkeypatch, capsys, "models", "list", url, "--token", "tok", "--json")
    assert code == 0 and [m["id"] for m in json.loads(out)["models"]] == [r.id for r in recs]
    monkeypatch.setenv("SEGFLOW_TOKEN", "tok")
    code, out, _ = _cli(monkeypatch, capsys, "models", "show", recs[1].id, "--data", url, "--json")
    assert code == 0 and json.loads(out) == recs[1].to_dict()
    code, _, err = _cli(monkeypatch, capsys, "models", "show", "m-nope", "--data", url)
    assert code == 2 and "HTTP 404" in err and "no model m-nope" in err
    monkeypatch.delenv("SEGFLOW_TOKEN")
    code, _, err = _cli(monkeypatch, capsys, "models", "list", url)
    assert code == 2 and "HTTP 401" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(monkeypatch, capsys, "models", "list", "http://127.0.0.1:9", "--token", "x")
    assert code == 2 and "cannot reach the studio" in err
