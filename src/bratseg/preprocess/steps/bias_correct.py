"""Step ``bias_correct``: N4 on every modality of an ingested case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bratseg.config import N4Params
from bratseg.errors import CaseError
from bratseg.layouts import MODALITIES
from bratseg.preprocess.bias import n4_correct
from bratseg.preprocess.steps.interim import read_npz, write_npz


def bias_correct(in_npz: Path, out_npz: Path, params: N4Params, threads: int = 1) -> None:
    """N4-correct each modality of an ingested case on its brain mask; same format, provenance in meta."""
    arrays, meta = read_npz(Path(in_npz))
    image, mask = arrays["image"], arrays["mask"]
    spacing = tuple(float(s) for s in meta["spacing"])  # of the processed (reoriented, resampled) grid
    corrected = np.empty_like(image, dtype=np.float32)
    provenance: dict[str, Any] = {}
    for i, modality in enumerate(MODALITIES):
        try:
            corrected[i], _, provenance[modality] = n4_correct(
                image[i], mask, (spacing[0], spacing[1], spacing[2]), params, threads
            )
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            source = meta["sources"][modality]
            raise CaseError(meta["case_id"], source, f"N4 bias correction: {reason}") from exc
    meta["n4"] = {"params": params.to_dict(), "threads": threads, "modalities": provenance}
    write_npz(Path(out_npz), {**arrays, "image": corrected}, meta)
