"""README pictures of the studio's quality control (docs/img/quality-*.png): runs the Chromium
end-to-end test of the qualification, honeypot, overlap and dashboard flow, which screenshots
the annotator's feedback (error maps), the reviewer's overlap heat-map and the manager's
dashboard, then stores them as small palette PNGs.

    python benchmarks/quality_screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
NAMES = ("quality-feedback.png", "quality-overlap.png", "quality-dashboard.png")


def main() -> int:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SEGFLOW_DOCS_SHOTS": tmp}
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/studio/test_e2e_quality.py"], cwd=ROOT, env=env)
        if rc:
            return rc
        for name in NAMES:
            img = Image.open(Path(tmp) / name).convert("RGB")
            if img.width > 1100:
                img = img.resize((1100, round(img.height * 1100 / img.width)), Image.LANCZOS)
            img.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(OUT / name,
                                                                           optimize=True)
            print(f"{OUT / name}: {(OUT / name).stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
