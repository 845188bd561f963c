"""The per-user cache of the derived templates: exact arrays back, computed once, never a half or corrupt file
trusted, off when asked, and a key that follows every source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bratseg.cohort import anatomy
from bratseg.cohort.template_cache import cache_dir, cache_key, cached


@dataclasses.dataclass(frozen=True)
class Pair:
    a: np.ndarray
    b: np.ndarray


def _pair() -> Pair:
    rng = np.random.default_rng(3)
    return Pair(rng.random((5, 4, 3), dtype=np.float32), rng.random(7))


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    files = [tmp_path / "src" / n for n in ("one.nii.gz", "code.py")]
    for i, f in enumerate(files):
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(bytes([i]) * 10)
    return files


def _fail() -> Pair:
    raise AssertionError("computed although the cache holds the value")


def test_computed_once_then_read_back_exactly_and_read_only(tmp_path: Path, sources: list[Path]):
    first = cached(_pair, Pair, sources, tmp_path / "cache")
    again = cached(_fail, Pair, sources, tmp_path / "cache")
    for name in ("a", "b"):
        got, want = getattr(again, name), getattr(first, name)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes() and not got.flags.writeable
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"templates-{cache_key(sources)}.npz"]


def test_a_corrupt_file_is_recomputed_and_replaced(tmp_path: Path, sources: list[Path]):
    path = tmp_path / "cache" / f"templates-{cache_key(sources)}.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 not a zip")
    value = cached(_pair, Pair, sources, path.parent)
    assert value.a.tobytes() == _pair().a.tobytes()
    assert cached(_fail, Pair, sources, path.parent).b.tobytes() == _pair().b.tobytes()


def test_an_unwritable_cache_still_gives_the_value(tmp_path: Path, sources: list[Path]):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    assert cached(_pair, Pair, sources, blocker / "cache").a.tobytes() == _pair().a.tobytes()
    assert cached(_pair, Pair, sources, None).b.tobytes() == _pair().b.tobytes()


def test_the_key_follows_every_source(sources: list[Path]):
    before = cache_key(sources)
    sources[1].write_bytes(b"changed code")
    assert cache_key(sources) != before and len(before) == 24


def test_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BRATSEG_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.setenv("BRATSEG_CACHE_DIR", "")
    assert cache_dir() is None
    monkeypatch.delenv("BRATSEG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "bratseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "bratseg"

    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", homeless)
    assert cache_dir() is None


def test_cached_templates_equal_the_derived_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BRATSEG_CACHE_DIR", str(tmp_path))
    anatomy.load_templates.cache_clear()
    try:
        derived = anatomy.derive_templates()
        anatomy.load_templates()  # writes the cache
        anatomy.load_templates.cache_clear()
        monkeypatch.setattr(anatomy, "derive_templates", _fail)
        read = anatomy.load_templates()
    finally:
        anatomy.load_templates.cache_clear()
    assert len(list(tmp_path.glob("templates-*.npz"))) == 1
    for field in dataclasses.fields(anatomy.Templates):
        got, want = getattr(read, field.name), getattr(derived, field.name)
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
        assert not got.flags.writeable

