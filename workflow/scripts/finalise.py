"""Snakemake adapter: normalise, crop, remap labels and write the cached arrays of one case."""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.config import PreprocessParams
from bratseg.preprocess.steps.finalise import finalise
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
params = PreprocessParams.from_dict(smk.params.preprocess)
run_step("finalise", lambda: finalise(Path(smk.input.npz), Path(smk.output.case), params), smk.log[0])
