"""A per-user cache of the derived template anatomy (:class:`~bratseg.cohort.anatomy.Templates`).

Every cohort job is its own process, and deriving the templates (tissue fit, texture, tumour-centre
candidates) costs each about 1 s of the 2 s a 2 mm case takes. The result depends only on the three template
files, the code that derives it and the numpy / scipy versions, so it is stored once under a key hashed from
all of them: ``<cache>/templates-<key>.npz``, where ``<cache>`` is ``$BRATSEG_CACHE_DIR``, else
``$XDG_CACHE_HOME/bratseg``, else ``~/.cache/bratseg``. ``BRATSEG_CACHE_DIR=""`` turns the cache off.

The arrays are stored exactly (uncompressed ``.npz``), so a cohort is byte-identical with and without the
cache. A file is written to a temporary name and renamed, so concurrent jobs never read half a file; one that
cannot be read (or written: a read-only home) is recomputed, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy

from bratseg.io import atomic_path

log = logging.getLogger(__name__)
T = TypeVar("T")


def cache_dir() -> Path | None:
    """The cache folder (module docstring), or ``None`` when ``BRATSEG_CACHE_DIR`` is set empty or there is
    no home directory to put it in."""
    explicit = os.environ.get("BRATSEG_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory (an account without one): no cache
            return None
    return Path(base) / "bratseg"


def cache_key(sources: Sequence[Path]) -> str:
    """SHA-256 (hex, 24 characters) of the bytes of ``sources`` and of the numpy and scipy versions."""
    digest = hashlib.sha256(f"numpy {np.__version__} scipy {scipy.__version__}".encode())
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def _read(path: Path, kind: type[T]) -> T:
    """The dataclass ``kind`` from the ``.npz`` at ``path``, every array read-only."""
    with np.load(path, allow_pickle=False) as stored:
        values = {f.name: np.array(stored[f.name]) for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    for value in values.values():
        value.setflags(write=False)
    return kind(**values)


def _write(path: Path, value: object) -> None:
    """Store the arrays of the dataclass ``value`` at ``path`` (a temporary file, then a rename)."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **{f.name: getattr(value, f.name) for f in dataclasses.fields(value)})  # type: ignore[arg-type]


def cached(compute: Callable[[], T], kind: type[T], sources: Sequence[Path], directory: Path | None) -> T:
    """``compute()``, from ``directory``'s cache file for ``sources`` when there is a readable one, else
    computed and stored there (``directory`` ``None``: computed, nothing stored)."""
    if directory is None:
        return compute()
    path = directory / f"templates-{cache_key(sources)}.npz"
    if path.exists():
        try:
            return _read(path, kind)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            log.warning("template cache %s unreadable (%s): recomputing it", path, err)
    value = compute()
    try:
        _write(path, value)
    except OSError as err:
        log.warning("template cache %s not written (%s): every job derives the templates itself", path, err)
    return value
