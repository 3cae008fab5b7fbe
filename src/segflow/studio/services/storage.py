"""Images on disk, addressed by content (SHA-256). An uploaded file name is kept only as a
label for people; the path on disk is always ``images/<2 hex>/<sha256>.<ext>``."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.io import read_image

EXTS = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "BMP": "bmp", "WEBP": "webp"}
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: Image.ext of large items (services.volumes, services.tiles): not in this store, no 2-D labels
LARGE_EXTS = ("vol", "geo")


def display_name(name: str) -> str:
    """The last path component, with control and odd characters replaced: a label, not a path."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ()+]", "_", base).strip(" .")
    return base[:200] or "image"


class ImageStore:
    """``url`` (``segflow studio --store s3://bucket/prefix``): images are written through to
    that object store, under the same ``images/<2 hex>/<sha256>.<ext>`` keys, and the local
    folder is a cache that any web or job worker fills from the store on first read; so workers
    on different machines share one image store."""

    def __init__(self, root: Path, url: str | None = None):
        self.root = Path(root) / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = url.rstrip("/") if url else None
        if self.url:
            from segflow.remote import check_writable

            check_writable(self.url)  # no bucket, no credentials: one line at start

    def _key(self, sha: str, ext: str) -> str:
        return f"{self.url}/images/{sha[:2]}/{sha}.{ext}"

    def path(self, sha: str, ext: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or ext not in EXTS.values():
            raise SegflowError("bad image address")
        p = self.root / sha[:2] / f"{sha}.{ext}"
        if self.url and not p.exists():  # another worker stored it: fetch it into the cache
            from segflow.atomic import atomic_path
            from segflow.remote import fetch

            with atomic_path(p) as tmp:
                fetch(self._key(sha, ext), tmp)
        return p

    def add_bytes(self, data: bytes, name: str) -> tuple[str, str, np.ndarray]:
        """Validate (a decodable image under the pixel cap) and store; returns
        (sha256, ext, pixels). Raises SegflowError naming the file otherwise."""
        from PIL import Image as PILImage

        label = display_name(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise SegflowError(f"{label}: {len(data) / 2**20:.0f} MB is over the "
                               f"{MAX_UPLOAD_BYTES // 2**20} MB upload limit")
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:  # first: the pixel cap is checked on the header, before Pillow's own limit
                pixels = read_image(tmp)  # applies the pixel cap and EXIF orientation
            except SegflowError as e:
                raise SegflowError(f"{label}: {str(e).split(': ', 1)[-1]}") from None
            try:
                with warnings.catch_warnings():  # the size was checked above
                    warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
                    with PILImage.open(tmp) as im:
                        fmt = im.format
            except Exception:
                raise SegflowError(f"{label}: not an image segflow can read (PNG, JPEG, TIFF, "
                                   "BMP, WebP)") from None
            if fmt not in EXTS:
                raise SegflowError(f"{label}: {fmt} images are not supported; use PNG, JPEG, "
                                   "TIFF, BMP or WebP")
            sha = hashlib.sha256(data).hexdigest()
            dst = self.root / sha[:2] / f"{sha}.{EXTS[fmt]}"  # not path(): no fetch
            dst.parent.mkdir(exist_ok=True)
            if self.url:  # the store first: a row never names an image only one machine has
                from segflow.remote import upload

                upload(Path(tmp), self._key(sha, EXTS[fmt]))
            os.replace(tmp, dst)
            tmp = None
            return sha, EXTS[fmt], pixels
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    def add_file(self, path: Path) -> tuple[str, str, np.ndarray]:
        return self.add_bytes(Path(path).read_bytes(), Path(path).name)

    def read(self, sha: str, ext: str) -> np.ndarray:
        return read_image(self.path(sha, ext))
