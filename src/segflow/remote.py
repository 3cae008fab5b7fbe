"""Paths that are URLs: object storage and other file systems through fsspec.

Every command that takes a file or folder also takes ``s3://bucket/prefix``, ``gs://...``,
``memory://...`` (and ``file://...``, which is a plain local path). Local paths stay the fast
default and never touch fsspec; a URL needs ``pip install 'segflow[scale]'`` (fsspec, s3fs).

Credentials come from the usual places of each file system (for S3: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE`` / ``~/.aws``, and ``AWS_ENDPOINT_URL`` for an
S3-compatible server); segflow never takes them as options, so they are never printed or
logged. Every storage error becomes one :class:`SegflowError` line naming the URL.

Remote work is staged per item: a worker fetches one input into a temporary folder, writes its
outputs there, uploads them and removes the folder, so memory and disk stay bounded and every
engine (local processes or Ray tasks on other machines) streams from and to the store.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from segflow._extras import require
from segflow.errors import SegflowError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


def is_url(p: str | os.PathLike) -> bool:
    """True for ``scheme://...`` other than ``file://`` (a local path written as a URL)."""
    m = _SCHEME.match(str(p))
    return bool(m) and m.group(1).lower() != "file"


def local(p: str | os.PathLike) -> Path:
    """A local path (``file://`` stripped)."""
    s = str(p)
    return Path(s[len("file://"):] if s.lower().startswith("file://") else s)


def as_path_or_url(p: str | os.PathLike) -> str | Path:
    """A URL as is, anything else as a local :class:`Path`."""
    return str(p) if is_url(p) else local(p)


def join(url: str, *parts: str) -> str:
    return posixpath.join(url.rstrip("/"), *[str(x).replace(os.sep, "/") for x in parts])


def storage_error(url: str, e: BaseException) -> SegflowError:
    """One line for a storage failure: missing credentials, a missing bucket, access denied."""
    name = type(e).__name__
    text = " ".join(str(e).split())
    if name in ("NoCredentialsError", "PartialCredentialsError") or "credentials" in text.lower():
        return SegflowError(f"{url}: no credentials for this store; set them as usual (for S3: "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
    if isinstance(e, FileNotFoundError) or "NoSuchBucket" in text:
        return SegflowError(f"{url}: no such bucket, folder or file")
    if isinstance(e, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return SegflowError(f"{url}: access denied; check the credentials' permissions")
    if isinstance(e, ImportError):  # fsspec names the package a protocol needs (gcsfs, ...)
        return SegflowError(f"{url}: {text}")
    return SegflowError(f"{url}: storage error ({name}: {text[:200]})")


def filesystem(url: str):
    """``(fs, path)`` for a URL. Raises one line for an unknown scheme or a missing package."""
    scheme = url.split("://", 1)[0].lower()
    require("scale", modules=("fsspec", "s3fs") if scheme in ("s3", "s3a") else ("fsspec",),
            what=f"the URL {url}")
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ValueError as e:  # "Protocol not known"
        raise SegflowError(f"{url}: {e}; use s3://, gs://, memory:// or a local path") from None
    except ImportError as e:
        raise storage_error(url, e) from None


def _url(fs, path: str) -> str:
    return fs.unstrip_protocol(path)


def list_images(url: str, extensions) -> list[str]:
    """Image files at or under ``url`` (a file, or a prefix walked recursively), as sorted URLs."""
    fs, path = filesystem(url)
    try:
        if fs.isfile(path):
            return [url]
        found = fs.find(path)
    except Exception as e:  # noqa: BLE001 - botocore, aiohttp and fsspec raise many kinds
        raise storage_error(url, e) from None
    out = sorted(_url(fs, p) for p in found if posixpath.splitext(p)[1].lower() in extensions)
    if not out and not found:
        raise SegflowError(f"{url}: no such file or folder (or it is empty)")
    return out


def relative(url: str, root: str) -> str | None:
    """``url`` relative to the prefix ``root`` (None when outside it)."""
    a, r = url.rstrip("/"), root.rstrip("/") + "/"
    return a[len(r):] if a.startswith(r) else None


def fetch(url: str, dst: Path) -> Path:
    """Copy one remote file to ``dst``."""
    fs, path = filesystem(url)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get_file(path, str(dst))
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
    return dst


def upload(src: Path, url: str) -> str:
    """Copy one local file to ``url`` (one PUT: a reader never sees half an object)."""
    fs, path = filesystem(url)
    try:
        fs.put_file(str(src), path)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
    return url


class Stage:
    """A temporary local copy of one input and a temporary output folder, for one work item:
    ``src``/``out`` are URLs or local paths; local ones are used in place. ``publish`` uploads
    what was written to the output URL and returns the final names::

        with Stage(url, out_url) as st:
            written = work(st.src, st.out)
            names = st.publish(written)
    """

    def __init__(self, src: str | os.PathLike, out: str | os.PathLike):
        self.url, self.out_url = str(src), str(out)

    def __enter__(self) -> Stage:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="segflow-")
        tmp = Path(self._tmp.name)
        self.src = local(self.url)
        if is_url(self.url):
            self.src = fetch(self.url, tmp / "in" / posixpath.basename(self.url.rstrip("/")))
        self.out = tmp / "out" if is_url(self.out_url) else local(self.out_url)
        return self

    def name(self, p: str | os.PathLike) -> str:
        """The final name of a local path in this stage (its URL, once published)."""
        if str(p) == str(self.src):
            return self.url
        if is_url(self.out_url):
            return join(self.out_url, Path(p).relative_to(self.out).as_posix())
        return str(p)

    def publish(self, paths) -> list[str]:
        if not is_url(self.out_url):
            return [str(p) for p in paths]
        return [upload(Path(p), self.name(p)) for p in paths]

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()


def write_bytes(url: str, data: bytes) -> str:
    """One object (or local file, atomically) with ``data``."""
    if not is_url(url):
        from segflow.atomic import atomic_write_bytes

        return str(atomic_write_bytes(local(url), data))
    fs, path = filesystem(url)
    try:
        fs.pipe_file(path, data)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
    return url


def download(url: str, dst: Path) -> Path:
    """A local copy of a remote file or folder (a prefix, copied recursively) under ``dst``;
    returns the copy's path. For inputs read whole (ground truth, a dataset)."""
    fs, path = filesystem(url)
    target = dst / (posixpath.basename(path.rstrip("/")) or "root")
    try:
        if fs.isfile(path):
            fs.get_file(path, str(target))
        elif fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(target) + "/", recursive=True)
        else:
            raise FileNotFoundError(path)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
    return target


def check_writable(url: str) -> None:
    """Fail early, in one line, when outputs cannot be written under ``url`` (no bucket, no
    credentials, read-only): write and remove a small probe object."""
    fs, path = filesystem(url)
    probe = posixpath.join(path.rstrip("/"), f".segflow-probe-{os.getpid()}")
    try:
        with fs.open(probe, "wb") as f:
            f.write(b"")
        fs.rm_file(probe)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    try:
        return fs.exists(path)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
