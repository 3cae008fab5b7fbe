"""The README's quality-control picture, from synthetic data (no downloads):

    .venv/bin/python benchmarks/qc_figure.py        # -> docs/img/agreement-heatmap.png

Three simulated annotators (segflow.synth.annotators) label one street scene; left: the scene,
middle: their disagreement heat-map (yellow: one annotator off the majority, red: two),
right: the per-pixel majority vote in the schema's colours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from segflow.metrics.voting import disagreement, majority_vote
from segflow.ops.draw import draw_disagreement, draw_overlay
from segflow.synth import schema_of, synthesize
from segflow.synth.annotators import STYLES, simulate_annotator

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "agreement-heatmap.png"


def main() -> int:
    schema = schema_of("street")
    s = synthesize("street", seed=11, index=0, size=320, n_objects=8)
    maps = [simulate_annotator(s.panoptic, schema, seed=40 + a, grow=g, drop=dr, relabel=rl)
            .to_semantic(schema.ignore_index).ids for a, (g, dr, rl) in enumerate(STYLES[1:4])]
    n = schema.num_classes
    dis = disagreement(maps, n)
    heat = draw_disagreement(dis.count, len(maps), s.image)
    cons = draw_overlay(s.image, majority_vote(maps, n), palette=schema.palette(), alpha=0.7)
    gap = np.full((s.image.shape[0], 6, 3), 255, np.uint8)
    panel = cv2.hconcat([s.image, gap, heat, gap, cons])
    # 256 colours (Pillow's median cut), full zlib effort: the README's picture stays small.
    from PIL import Image

    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(panel).quantize(256).save(OUT, optimize=True)
    print(f"{OUT} ({OUT.stat().st_size // 1024} KB); {100 * dis.fraction:.1f}% of pixels disputed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
