"""The studio without the 'deep' extra: checkpoint pre-labels are refused naming the extra."""

from __future__ import annotations

import pytest

from segflow import _extras
from tests.studio.conftest import make_studio


@pytest.fixture
def st(tmp_path):
    s = make_studio(tmp_path, None)
    yield s
    s.app.state.engine.dispose()


def test_checkpoint_prelabels_without_torch_name_the_deep_extra(st, tmp_path, monkeypatch):
    real = _extras._installed
    monkeypatch.setattr(_extras, "_installed", lambda m: m not in ("torch", "torchvision") and real(m))
    pid = st.ok("admin", "POST", "/api/projects", json={
        "name": "p", "schema": [{"id": 1, "name": "a"}]})["id"]
    ck = tmp_path / "m.pt"
    ck.write_bytes(b"x")
    r = st.call("admin", "PUT", f"/api/projects/{pid}/prelabel",
                json={"mode": "checkpoint", "checkpoint": str(ck)})
    assert r.status_code == 400
    assert r.json()["detail"] == ("checkpoint pre-labels needs the 'deep' extra (torch is not "
                                  "installed): pip install 'segflow[deep]'")
    # classical pre-labels still work without it
    r = st.call("admin", "PUT", f"/api/projects/{pid}/prelabel",
                json={"mode": "pipeline", "pipeline": "objects"})
    assert r.status_code == 200, r.text
