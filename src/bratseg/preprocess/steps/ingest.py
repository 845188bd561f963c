"""Step ``ingest``: read and validate one raw case, add its brain mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt

from bratseg.layouts import CaseFiles
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.interim import write_npz
from bratseg.rawcase import read_case


def ingest(files: CaseFiles, out_npz: Path) -> None:
    """Read and validate one raw case (:func:`~bratseg.rawcase.read_case`), add its brain mask, write
    ``out_npz``."""
    case = read_case(files)
    arrays: dict[str, npt.NDArray[Any]] = {"image": case.image, "mask": brain_mask(case.image)}
    if case.classes is not None:
        arrays["classes"] = case.classes
    meta = {
        "case_id": case.case_id,
        "layout": case.layout,
        "convention": case.convention,
        "geometry": case.geometry.to_dict(),
        "sources": case.sources,
        "has_label": case.has_label,
    }
    write_npz(Path(out_npz), arrays, meta)
