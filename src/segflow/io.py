"""Reading images and writing masks.

Images are decoded with Pillow (every format it knows: PNG, JPEG, TIFF, BMP, WebP, ...) after a
header-only check of the size against a pixel cap, so a decompression bomb is refused before any
pixel is decoded. EXIF orientation is applied. The result is a NumPy array:

* grey images: ``(H, W)`` ``uint8`` or ``uint16``
* colour images: ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA when the image has alpha
* palette images are expanded to RGB(A) (use :func:`read_mask` to keep the indices)

Masks are written as an indexed PNG with a colour palette (class ids 0..255) and
instance/segment ids as a 16-bit grey PNG (ids 0..65535).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segflow.atomic import atomic_path
from segflow.errors import ImageReadError, SegflowError

#: Default pixel cap: images with more pixels are refused (no decompression bombs).
DEFAULT_MAX_PIXELS = 100_000_000

#: File name extensions segflow treats as images when walking folders.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
)

# Pillow's own decompression-bomb check reads a process-wide setting, which would have to be
# toggled per call (racy under the studio's threads) to honour a per-call cap. It is switched off
# once, here, and every read checks the header's size against its own cap before decoding.
Image.MAX_IMAGE_PIXELS = None

#: The cap in force in this context (thread / task), set by :func:`pixel_limit`.
_limit: contextvars.ContextVar[int | None] = contextvars.ContextVar("segflow_max_pixels",
                                                                     default=None)


def _positive(n, what: str) -> int:
    try:
        v = int(n)
    except (TypeError, ValueError, OverflowError):
        raise SegflowError(f"{what} must be a positive whole number, got {n!r}") from None
    if isinstance(n, float) and not n.is_integer() or v <= 0:
        raise SegflowError(f"{what} must be a positive whole number, got {n!r}")
    return v


@contextlib.contextmanager
def pixel_limit(n: int):
    """Use pixel cap ``n`` for reads in this context (this thread or asyncio task only)::

        with pixel_limit(400_000_000):
            img = read_image("huge.tif")
    """
    token = _limit.set(_positive(n, "max_pixels"))
    try:
        yield
    finally:
        _limit.reset(token)


def set_max_pixels(n: int) -> None:
    """Set the pixel cap for the rest of the current context (thread); prefer
    :func:`pixel_limit` or the ``max_pixels`` argument, which undo themselves."""
    _limit.set(_positive(n, "max_pixels"))


def get_max_pixels(max_pixels: int | None = None) -> int:
    """The pixel cap a read uses, the most explicit first: the ``max_pixels`` argument, then
    :func:`pixel_limit` (the CLI's ``--max-pixels``), then ``SEGFLOW_MAX_PIXELS``, then 100 MP."""
    if max_pixels is not None:
        return _positive(max_pixels, "max_pixels")
    scoped = _limit.get()
    if scoped is not None:
        return scoped
    env = os.environ.get("SEGFLOW_MAX_PIXELS")
    if env:
        return _positive(env.strip(), "SEGFLOW_MAX_PIXELS")
    return DEFAULT_MAX_PIXELS


def _open_checked(path: Path, max_pixels: int | None) -> Image.Image:
    """Open an image lazily (the header only), refusing missing files, non-images and images
    over the pixel cap before any pixel is decoded."""
    if not path.exists():
        raise ImageReadError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    cap = get_max_pixels(max_pixels)
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{path}: not an image (no known image format); give a PNG, JPEG, TIFF, BMP or WebP"
        ) from None
    except OSError as e:
        raise ImageReadError(f"{path}: cannot be read ({e})") from None
    w, h = img.size
    if w * h > cap:
        img.close()
        raise ImageReadError(
            f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the pixel cap of {cap / 1e6:.1f} MP; "
            "raise it with --max-pixels (or SEGFLOW_MAX_PIXELS) if the image is trusted"
        )
    return img


def _to_array(img: Image.Image, path: Path, *, keep_palette: bool) -> np.ndarray:
    mode = img.mode
    if mode == "P" and keep_palette:
        return np.asarray(img, dtype=np.uint8)
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "LA":
        img = img.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img).astype(np.uint16, copy=False)
    elif mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(
                f"{path}: 32-bit integer pixels outside 0..65535 are not supported; "
                "convert the image to 8 or 16 bits"
            )
        return arr.astype(np.uint16)
    elif mode == "F":
        raise ImageReadError(
            f"{path}: floating-point images are not supported; convert to 8 or 16 bits"
        )
    if img.mode not in ("L", "RGB", "RGBA"):
        raise ImageReadError(
            f"{path}: unsupported pixel mode {img.mode!r}; convert to grey, RGB or RGBA"
        )
    return np.asarray(img)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into a NumPy array.

    Parameters
    ----------
    path : path-like
        PNG, JPEG, TIFF (8/16-bit; the first page of a multi-page file), BMP or WebP.
    max_pixels : int, optional
        Refuse images with more pixels than this (default: :func:`get_max_pixels`, 100 MP).

    Returns
    -------
    ndarray
        ``(H, W)`` uint8/uint16 for grey, ``(H, W, 3)`` uint8 RGB, ``(H, W, 4)`` uint8 RGBA,
        with the EXIF orientation applied.

    Raises
    ------
    ImageReadError
        Missing file, not an image, truncated or corrupt, too many pixels, unsupported dtype.
    """
    path = Path(path)
    img = _open_checked(path, max_pixels)
    try:
        fast = _read_png_cv2(path, img)
        if fast is not None:
            return fast
        with img:
            img.seek(0)
            img.load()
            if img.getexif().get(_ORIENTATION, 1) != 1:
                img = ImageOps.exif_transpose(img)
            return _to_array(img, path, keep_palette=False)
    except SegflowError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(
            f"{path}: truncated or corrupt image ({e}); re-export or re-download the file"
        ) from None


_ORIENTATION = 0x0112


def image_size(path: str | os.PathLike, *, max_pixels: int | None = None) -> tuple[int, int]:
    """``(height, width)`` of the array :func:`read_image` would return (EXIF rotation
    applied), from the file's header only."""
    path = Path(path)
    with _open_checked(path, max_pixels) as img:
        w, h = img.size
        exif = img.getexif() if img.format != "PNG" or "exif" in img.info else {}
        if exif.get(_ORIENTATION, 1) in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            w, h = h, w
    return h, w


def _read_png_cv2(path: Path, img: Image.Image) -> np.ndarray | None:
    """Decode a plain PNG with OpenCV: one buffer instead of Pillow's two (large images).

    Returns None (Pillow then decodes, and reports any error) for palette, EXIF-rotated or
    unusual PNGs, or when OpenCV cannot decode the file.
    """
    if img.format != "PNG" or img.mode not in ("L", "RGB", "RGBA", "I;16", "I;16B"):
        return None
    if "exif" in img.info:  # (getexif() would decode the whole PNG to look for a late eXIf)
        return None
    import cv2

    img.close()
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] == 3:
        cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA, dst=arr)
    return arr


def read_mask(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a label mask: palette indices of an indexed PNG, or grey values (8/16-bit).

    Returns a 2-D integer array. RGB masks are refused: ids must be stored as indices or grey.
    """
    path = Path(path)
    img = _open_checked(path, max_pixels)
    try:
        with img:
            img.load()
            arr = _to_array(img, path, keep_palette=True)
    except SegflowError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: truncated or corrupt mask ({e})") from None
    if arr.ndim != 2:
        raise ImageReadError(
            f"{path}: a mask must be an indexed or grey PNG, got {arr.shape[-1]} channels"
        )
    return arr


@functools.lru_cache(maxsize=8)
def _palette(n: int) -> np.ndarray:
    pal = _voc_palette(n)
    pal.setflags(write=False)
    return pal


def default_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: ``(n, 3)`` uint8, 0 is black, distinct colours after.

    The array is shared and read-only; copy it to modify it.
    """
    return _palette(n)


def _voc_palette(n: int) -> np.ndarray:
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _atomic_save(path: Path, save) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    with atomic_path(path) as tmp:  # the suffix stays last: OpenCV picks the encoder from it
        save(tmp)


def write_mask(
    path: str | os.PathLike, mask: np.ndarray, *, palette: np.ndarray | None = None
) -> Path:
    """Write a class mask (ids 0..255) as an indexed PNG with a colour palette."""
    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise SegflowError(f"{path}: a class mask must be 2-D, got shape {mask.shape}")
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise SegflowError(
            f"{path}: class ids must be 0..255 for an indexed PNG (max is {mask.max()}); "
            "use write_ids for instance ids"
        )
    pal = default_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    # Build the P image straight from the index bytes: convert("P") would re-quantise.
    pimg = Image.frombuffer("P", (mask.shape[1], mask.shape[0]),
                            np.ascontiguousarray(mask, dtype=np.uint8), "raw", "P", 0, 1)
    pimg.putpalette(pal[:256].reshape(-1).tolist())
    _atomic_save(path, lambda p: pimg.save(p, format="PNG", compress_level=1))
    return path


def _cv2_write(path: Path, arr: np.ndarray, what: str) -> Path:
    """Write with OpenCV straight to a file (no in-memory copy of the encoded bytes)."""
    import cv2

    ext = path.suffix.lower() or ".png"
    # Fast PNG: zlib level 1 with the SUB filter is ~2x faster than OpenCV's adaptive
    # filtering for about the same size.
    params = ([cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
              if ext == ".png" else [])

    def save(p: Path) -> None:
        try:
            ok = cv2.imwrite(str(p), arr, params)
        except cv2.error as e:
            raise SegflowError(f"{path}: cannot write {what} as {ext} ({e.err})") from None
        if not ok:
            raise SegflowError(f"{path}: cannot write {what} as {ext}; check the folder and extension")

    _atomic_save(path, save)
    return path


def write_ids(path: str | os.PathLike, ids: np.ndarray) -> Path:
    """Write instance/segment ids (0..65535) as a 16-bit grey PNG."""
    path = Path(path)
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise SegflowError(f"{path}: an id map must be 2-D, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise SegflowError(f"{path}: ids must be 0..65535 for a 16-bit PNG (max {ids.max()})")
    return _cv2_write(path, ids.astype(np.uint16, copy=False), "instance ids")


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a grey/RGB/RGBA uint8 (or grey uint16) image; the format follows the extension."""
    import cv2

    path = Path(path)
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    return _cv2_write(path, arr, "the image")


def list_images(inputs, *, recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted list of image files (folders walked recursively)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.glob("*")
            out.extend(sorted(q for q in it if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.exists():
            out.append(p)
        else:
            raise ImageReadError(f"{p}: no such file or folder; check the path")
    return out
