"""The scripted loop of issue 10 at a small size: brief -> round 1 "retrain" -> next images by
uncertainty, labelled from the synthetic ground truth -> round 2 "meets the brief", with the
pre-label edit rate falling and the lineage in the registry."""

import json

import pytest

from segflow.assess import MEETS, RETRAIN
from segflow.errors import SegflowError
from segflow.loop import LoopConfig, run_loop
from segflow.registry import ModelRegistry


def test_small_loop_retrains_to_meet_the_brief(tmp_path):
    res = run_loop(tmp_path / "loop", LoopConfig.small())
    r1, r2 = res.rounds
    assert r1.verdict == RETRAIN and not r1.targets[0]["met"]
    assert any(x.startswith("target not met: miou >= 0.45") for x in r1.reasons)
    assert r2.verdict == MEETS and r2.targets[0]["met"]
    # round 2 trained on round 1's images plus the ones round 1's assessment chose
    assert r2.n_train == r1.n_train + len(r1.next_images)
    assert r1.next_uncertainty > r1.pool_uncertainty  # chosen where the model is least sure
    assert r2.edit_rate < r1.edit_rate  # better pre-labels: fewer pixels repainted
    assert res.same_batch_edit_rates[1] < res.same_batch_edit_rates[0]
    reg = ModelRegistry(tmp_path / "loop" / "models")
    assert [m.id for m in reg.lineage(r2.model_id)] == [r2.model_id, r1.model_id]
    rec = reg.get(r2.model_id)
    assert rec.parent == r1.model_id and rec.dataset["n_images"] == r2.n_train
    assert len(rec.dataset["annotations"]) == r2.n_train and rec.started_by == "segflow loop"
    html = res.report.read_text()
    assert "round 1" in html and "round 2" in html and r1.model_id in html
    assert (tmp_path / "loop" / "report_files" / "rounds.png").is_file()
    assert json.loads((tmp_path / "loop" / "loop.json").read_text())["rounds"][1]["verdict"] == MEETS


@pytest.mark.parametrize("field,value,match", [
    ("n_pool", 10, "too small"), ("n_next", 0, "n_next must be"), ("seed", -1, "seed must be"),
    ("seed", 2**63, "seed must be"), ("steps", (5,), "at least two"), ("steps", (5, 0), "positive"),
])
def test_loop_rejects_bad_settings_before_any_work(tmp_path, field, value, match):
    cfg = LoopConfig.small()
    setattr(cfg, field, value)
    with pytest.raises(SegflowError, match=match):
        run_loop(tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()
