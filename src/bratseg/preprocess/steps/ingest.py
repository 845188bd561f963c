"""Step ``ingest``: read and validate one raw case, add its brain mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt

from bratseg.layouts import CaseFiles
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.interim import write_npz
from bratseg.rawcase import read_case


def ingest(files: CaseFiles, out_npz: Path, named_folder: Path | None = None) -> None:
    """Read and validate one raw case (:func:`~bratseg.rawcase.read_case`), add its brain mask, write
    ``out_npz``.

    Args:
        files: the case's files, where this process reads them.
        out_npz: the interim file written.
        named_folder: the case's folder as the workflow names it (default ``files.folder``): the ``sources``
            recorded, from which later steps read the raw files again, are its files of the same names. A job
            without a shared filesystem reads copies of the files (Snakemake's storage) kept elsewhere.

    Raises:
        ValueError: ``named_folder`` is another case's folder (another name than ``files.folder``).
    """
    if named_folder is not None and Path(named_folder).name != files.folder.name:
        raise ValueError(f"named_folder: {named_folder} is not a folder of case {files.folder.name}")
    case = read_case(files)
    arrays: dict[str, npt.NDArray[Any]] = {"image": case.image, "mask": brain_mask(case.image)}
    if case.classes is not None:
        arrays["classes"] = case.classes
    sources = case.sources
    if named_folder is not None:
        sources = {key: str(Path(named_folder) / Path(path).name) for key, path in sources.items()}
    meta = {
        "case_id": case.case_id,
        "layout": case.layout,
        "convention": case.convention,
        "geometry": case.geometry.to_dict(),
        "sources": sources,
        "has_label": case.has_label,
    }
    write_npz(Path(out_npz), arrays, meta)
