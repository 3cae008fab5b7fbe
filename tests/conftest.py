from __future__ import annotations

import contextlib
import os
import socket

import numpy as np
import pytest
from skimage import data

GREY_SAMPLES = ("coins", "camera", "moon", "page", "cell", "text")
COLOUR_SAMPLES = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="session")
def samples() -> dict[str, np.ndarray]:
    """scikit-image's bundled sample images (no download)."""
    return {n: getattr(data, n)() for n in GREY_SAMPLES + COLOUR_SAMPLES}


def touching_discs(shape=(120, 160), centres=((60, 55), (60, 100)), r=28, noise=0, seed=0):
    """Two overlapping bright discs on a dark background (known answer: two objects)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.zeros(shape, np.float32)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 200
    img += 20
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: credentials moto accepts; never real ones
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_s3(*buckets: str):
    """moto's S3 server on loopback with ``buckets`` made; the usual AWS environment (of this
    process, so of the subprocesses it starts too) points at it and is restored afterwards.
    Yields (s3fs filesystem, the environment). Skips without s3fs or moto."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        fs = s3fs.S3FileSystem()
        for b in buckets:
            fs.mkdir(b)
        yield fs, env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
