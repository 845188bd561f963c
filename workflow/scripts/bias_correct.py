"""Snakemake adapter: N4 bias correction of every modality of one case."""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.config import N4Params
from bratseg.preprocess.steps.bias_correct import bias_correct
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
params = N4Params.from_dict(smk.params.n4)
run_step(
    "bias_correct",
    lambda: bias_correct(Path(smk.input.npz), Path(smk.output.npz), params, threads=smk.threads),
    smk.log[0],
)
