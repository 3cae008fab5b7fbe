"""make demo's job, end to end, into a temporary folder."""

import re

from segflow.demo import run_demo


def test_demo_writes_report_with_pictures(tmp_path):
    report = run_demo(tmp_path, workers=1, train_seconds=3)
    html = report.read_text()
    assert "Synthetic street set" in html and "Segmentations" in html
    assert "U-Net (segflow train)" in html and (tmp_path / "deep" / "run" / "last.pt").exists()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) >= 30
    assert all((tmp_path / s).is_file() for s in srcs)  # every picture the page shows exists
    assert "failed" not in html.lower() or "class=\"fail\"" not in html
    assert "24</td>" in html  # the 24 coins of the coins sample
    # the per-class table names each class by its own id (road is id 1 and always present; an
    # off-by-one would show it as absent)
    row = re.search(r"<td>road</td><td>([0-9.]+)</td>", html.replace("\n", "").replace(" ", ""))
    assert row and float(row.group(1)) > 0.5
