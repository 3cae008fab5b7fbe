"""The pre-label edit rate: one definition for the studio and the loop."""

import numpy as np
import pytest

from segflow.errors import SegflowError


def test_prelabel_edit_rate_counts_changed_pixels_and_skips_ignore():
    from segflow.quality import prelabel_edit_rate

    pre = np.zeros((4, 5), np.int64)
    final = pre.copy()
    assert prelabel_edit_rate(pre, final) == 0.0
    final[0, :] = 2          # 5 of 20 pixels repainted
    assert prelabel_edit_rate(pre, final) == 0.25
    final[3, :] = 255        # 5 pixels marked ignore: 5 changed of 15 counted
    assert prelabel_edit_rate(pre, final, ignore_index=255) == pytest.approx(5 / 15)
    with pytest.raises(SegflowError, match="not the same image"):
        prelabel_edit_rate(pre, final[:2])
