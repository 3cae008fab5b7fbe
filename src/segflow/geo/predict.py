"""A checkpoint over a GeoTIFF: the class mask written as a GeoTIFF, window by window.

The tile grid is the one :func:`segflow.predict.tiling.predict_tiled` lays over the whole image
(same starts, same blending ramps, same order of sums), but the output is made block by block:
each block of ``block`` x ``block`` pixels sums the tiles that touch it, read from the file one
tile at a time. A tile that straddles two blocks is run twice (about ``tile / block`` more work)
and nothing larger than a block's class probabilities is ever held, so a 20,000 x 20,000 raster
predicts in bounded memory with the result of the in-memory tiled prediction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.geo.options import RasterOptions
from segflow.geo.raster import IGNORE, GeoRaster, MaskWriter, gdal_env, write_georeferenced

#: Output block of a windowed prediction (a multiple of the GeoTIFF's 512-pixel blocks).
BLOCK = 2048

#: Tile used when a raster is over the pixel cap and no --tile was given.
DEFAULT_TILE = 1024


def predict_blocks(forward, read_tile, height: int, width: int, num_classes: int, *,
                   tile: int, overlap: int, batch: int = 4, block: int = BLOCK):
    """Yield ``(row, col, probs)`` per output block: ``probs`` (C, h, w) float32, blended as
    :func:`~segflow.predict.tiling.predict_tiled` blends the whole image.

    ``forward``: (B, 3, th, tw) tensor -> (B, C, th, tw) probabilities; ``read_tile(y, x, th, tw)``
    -> (3, th, tw) float tensor of the image there.
    """
    import torch

    from segflow.predict.tiling import _ramp, _starts

    th, tw = min(tile, height), min(tile, width)
    ys = _starts(height, th, max(1, th - overlap))
    xs = _starts(width, tw, max(1, tw - overlap))
    for by in range(0, height, block):
        for bx in range(0, width, block):
            bh, bw = min(block, height - by), min(block, width - bx)
            acc = torch.zeros(num_classes, bh, bw)
            wsum = torch.zeros(1, bh, bw)
            boxes = [(y, x) for y in ys if y < by + bh and y + th > by
                     for x in xs if x < bx + bw and x + tw > bx]
            for i in range(0, len(boxes), batch):
                chunk = boxes[i:i + batch]
                probs = forward(torch.stack([read_tile(y, x, th, tw) for y, x in chunk])).float().cpu()
                for (y, x), p in zip(chunk, probs):
                    wy = _ramp(th, min(overlap, th // 2), y == 0, y + th == height)
                    wx = _ramp(tw, min(overlap, tw // 2), x == 0, x + tw == width)
                    wt = torch.from_numpy(np.outer(wy, wx))[None]
                    y0, y1 = max(y, by), min(y + th, by + bh)
                    x0, x1 = max(x, bx), min(x + tw, bx + bw)
                    src = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
                    dst = (slice(y0 - by, y1 - by), slice(x0 - bx, x1 - bx))
                    acc[:, dst[0], dst[1]] += p[:, src[0], src[1]] * wt[:, src[0], src[1]]
                    wsum[:, dst[0], dst[1]] += wt[:, src[0], src[1]]
            yield by, bx, (acc / wsum).numpy()


def predict_raster(predictor, path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   tile: int | None = None, overlap: int = 64, tta: bool = False,
                   options: RasterOptions | dict | None = None, block: int = BLOCK,
                   notes: list[str] | None = None) -> list[str]:
    """Predict a GeoTIFF with ``predictor`` (a :class:`~segflow.predict.predictor.Predictor`);
    writes ``<stem>_mask.tif`` with the source's CRS, transform and nodata (as 255) and the label
    schema in its metadata. Returns the files written."""
    from segflow.io import get_max_pixels
    from segflow.train.data import to_tensor_image

    path, out_dir = Path(path), Path(out_dir)
    notes = notes if notes is not None else []
    schema = predictor.schema
    tags = {"SEGFLOW_SCHEMA": {"classes": schema.to_list(), "ignore_index": schema.ignore_index}}
    palette = schema.palette()
    mask_path = out_dir / f"{path.stem}_mask.tif"
    written = [str(mask_path)]
    with gdal_env(), GeoRaster(path, options) as raster:
        raster.warn_if_no_crs(notes)
        fits = raster.pixels <= get_max_pixels()
        if predictor.instance:
            if not fits:
                raise SegflowError(f"{path}: instance checkpoints need the whole raster in memory and "
                                   f"{raster.width}x{raster.height} is over the pixel cap; use a "
                                   "semantic checkpoint with --tile, or raise --max-pixels")
            img, valid = raster.read_all()
            inst, mask = predictor.instances(img)
            ids = inst.id_map().astype(np.uint32)
            if valid is not None:
                mask[~valid], ids[~valid] = IGNORE, 0
            write_georeferenced(mask_path, mask, raster, palette=palette, tags=tags)
            p = out_dir / f"{path.stem}_instances.tif"
            write_georeferenced(p, ids, raster, dtype="uint32", nodata=None)
            return written + [str(p)]
        if tile is None and fits:
            img, valid = raster.read_all()
            mask = predictor.predict(img, tta=tta)
            if valid is not None:
                mask[~valid] = IGNORE
            write_georeferenced(mask_path, mask, raster, palette=palette, tags=tags)
            return written
        if tile is None:
            tile = DEFAULT_TILE
            notes.append(f"{path}: over the pixel cap; predicted in {tile} px tiles")
        if tile < 16 or overlap < 0 or overlap >= tile:
            raise SegflowError(f"--tile must be >= 16 and --overlap in 0..tile-1, got {tile}, {overlap}")

        def read_tile(y, x, th, tw):
            img, _ = raster.read(y, x, th, tw, where=f"tile at row {y}, col {x} ({tw}x{th})")
            return to_tensor_image(img)

        with MaskWriter(mask_path, raster, palette=palette, tags=tags) as out:
            for by, bx, probs in predict_blocks(lambda b: predictor._probs(b, tta), read_tile,
                                                raster.height, raster.width, predictor.num_classes,
                                                tile=tile, overlap=overlap, block=block):
                mask = probs.argmax(0).astype(np.uint8)
                if not raster.all_valid:
                    _, valid = raster.read(by, bx, *mask.shape)
                    mask[~valid] = IGNORE
                out.write(mask, by, bx)
    return written
