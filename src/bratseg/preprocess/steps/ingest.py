"""Step ``ingest``: read and validate one raw case, add its brain mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt

from bratseg.layouts import MODALITIES, CaseFiles
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.interim import write_npz
from bratseg.rawcase import read_case


def ingest(files: CaseFiles, out_npz: Path, named: CaseFiles | None = None) -> None:
    """Read and validate one raw case (:func:`~bratseg.rawcase.read_case`), add its brain mask, write
    ``out_npz``.

    Args:
        files: the case's files, where this process reads them.
        out_npz: the interim file written.
        named: the same case's files as the workflow names them (default ``files``): recorded as the case's
            ``sources``, from which later steps read the raw files again. A job without a shared filesystem
            reads copies of the files (Snakemake's storage) that live under another name.

    Raises:
        ValueError: ``named`` is another case (``case_id``) or another layout than ``files``.
    """
    if named is not None and (named.case_id, named.layout) != (files.case_id, files.layout):
        raise ValueError(
            f"named: case {named.case_id} ({named.layout}) is not the case read, "
            f"{files.case_id} ({files.layout})"
        )
    case = read_case(files)
    arrays: dict[str, npt.NDArray[Any]] = {"image": case.image, "mask": brain_mask(case.image)}
    if case.classes is not None:
        arrays["classes"] = case.classes
    meta = {
        "case_id": case.case_id,
        "layout": case.layout,
        "convention": case.convention,
        "geometry": case.geometry.to_dict(),
        "sources": case.sources if named is None else _sources(named, case.has_label),
        "has_label": case.has_label,
    }
    write_npz(Path(out_npz), arrays, meta)


def _sources(files: CaseFiles, labelled: bool) -> dict[str, str]:
    """The ``sources`` of a case read from ``files``, as :func:`~bratseg.rawcase.read_case` builds them."""
    sources = {m: str(files.images[m]) for m in MODALITIES}
    if labelled and files.seg is not None:
        sources["seg"] = str(files.seg)
    return sources
