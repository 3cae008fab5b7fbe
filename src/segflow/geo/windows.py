"""The window grid: cores that tile the raster, each read with a halo around it.

A step that looks at neighbours (a blur, an opening) changes a pixel only from pixels within
its radius, so a core read with a halo of at least the pipeline's summed radii comes out as in
a whole-raster run; the halo is cut away before writing. Cores are multiples of the output's
block size, so every write fills whole GeoTIFF blocks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Win:
    """One window: its core (written) and the halo-grown box that is read, in pixels."""

    index: int
    row: int
    col: int
    height: int
    width: int
    read_row: int
    read_col: int
    read_height: int
    read_width: int

    @property
    def core(self) -> tuple[slice, slice]:
        """The core's slices inside the read box."""
        r, c = self.row - self.read_row, self.col - self.read_col
        return slice(r, r + self.height), slice(c, c + self.width)

    def describe(self) -> str:
        return (f"window {self.index} (rows {self.read_row}..{self.read_row + self.read_height - 1}, "
                f"cols {self.read_col}..{self.read_col + self.read_width - 1})")


def grid(height: int, width: int, size: int = 2048, halo: int = 0) -> list[Win]:
    """Cores of ``size`` x ``size`` pixels (smaller at the right and bottom edges), row by row,
    each grown by ``halo`` pixels on every side and clipped to the raster."""
    if height < 1 or width < 1:
        raise ValueError(f"empty raster ({width}x{height})")
    if size < 1 or halo < 0:
        raise ValueError(f"window size must be >= 1 and halo >= 0, got {size}, {halo}")
    out: list[Win] = []
    for r in range(0, height, size):
        for c in range(0, width, size):
            h, w = min(size, height - r), min(size, width - c)
            rr, cc = max(0, r - halo), max(0, c - halo)
            out.append(Win(len(out), r, c, h, w, rr, cc, min(height, r + h + halo) - rr,
                           min(width, c + w + halo) - cc))
    return out
