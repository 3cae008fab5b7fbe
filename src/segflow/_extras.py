"""Optional parts of segflow and the one check that names the extra to install.

``pip install segflow`` is the light core (classical ops, pipelines, formats, metrics, synthetic
data, the CLI). The heavy parts are extras::

    pip install 'segflow[deep]'     # torch, torchvision, onnx, onnxruntime: train, predict, export
    pip install 'segflow[studio]'   # the web app: FastAPI, SQLAlchemy, Alembic, ...
    pip install 'segflow[all]'

Code that needs an extra calls :func:`require` before importing it, so a user without it gets
one line naming the ``pip install`` to run instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib.util

from segflow.errors import SegflowError

#: extra -> (module that must import, what it is for). The first modules are checked by
#: ``require(extra)``; pass ``modules=`` to check others of the extra (onnx for export).
EXTRAS: dict[str, dict[str, str]] = {
    "deep": {"torch": "PyTorch", "torchvision": "torchvision", "onnx": "ONNX export",
             "onnxruntime": "the ONNX check"},
    "studio": {"fastapi": "the web app", "uvicorn": "the web server", "sqlalchemy": "the database",
               "alembic": "database migrations", "argon2": "password hashing",
               "multipart": "uploads", "psycopg": "PostgreSQL", "limits": "login rate limits",
               "zxcvbn": "password strength"},
    "qc": {"SimpleITK": "STAPLE consensus"},
    "medical": {"nibabel": "NIfTI volumes", "pydicom": "DICOM series",
                "SimpleITK": "DICOM, NRRD and MetaImage volumes"},
    "geo": {"rasterio": "GeoTIFF rasters", "shapely": "polygons", "geopandas": "GeoPackage",
            "pyogrio": "GeoPackage"},
    "scale": {"ray": "the Ray engine", "fsspec": "URLs (s3://, gs://, memory://)",
              "s3fs": "s3:// URLs"},
}
#: the modules ``require(extra)`` checks when none are named
DEFAULT_CHECK: dict[str, tuple[str, ...]] = {
    "deep": ("torch", "torchvision"),
    "studio": ("fastapi", "uvicorn", "sqlalchemy", "alembic", "argon2", "multipart"),
    "qc": ("SimpleITK",),
    "medical": ("nibabel", "pydicom", "SimpleITK"),
    "geo": ("rasterio",),
    "scale": ("ray", "fsspec"),
}


class MissingExtraError(SegflowError, ImportError):
    """An optional dependency is not installed; the message names the extra to install.

    It is an :class:`ImportError` too, so ``try: import ... except ImportError`` still works.
    """


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken __spec__
        return False


def install_hint(extra: str) -> str:
    return f"pip install 'segflow[{extra}]'"


def missing_message(extra: str, module: str, what: str | None = None) -> str:
    need = f"{what} needs" if what else "this needs"
    return (f"{need} the '{extra}' extra ({module} is not installed): "
            f"{install_hint(extra)}")


def require(extra: str, *, modules: tuple[str, ...] | None = None, what: str | None = None) -> None:
    """Raise :class:`MissingExtraError` (one line naming ``pip install 'segflow[EXTRA]'``) unless
    the modules of ``extra`` can be imported.

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRAS` (``"deep"``, ``"studio"``).
    modules : tuple of str, optional
        The modules to check; default :data:`DEFAULT_CHECK` of the extra.
    what : str, optional
        What needs them, for the message (``"segflow train"``, ``"checkpoint pre-labels"``).
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; one of {', '.join(EXTRAS)}")
    for mod in modules or DEFAULT_CHECK[extra]:
        if not _installed(mod):
            raise MissingExtraError(missing_message(extra, mod, what))


def extra_for_module(module: str | None) -> str | None:
    """The extra that provides the top-level package of ``module`` (None when no extra does)."""
    root = (module or "").split(".")[0]
    for extra, mods in EXTRAS.items():
        if root in mods:
            return extra
    return None
