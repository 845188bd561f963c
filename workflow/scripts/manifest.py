"""Snakemake adapter: the cohort manifest and the train/val/test split."""

from pathlib import Path

from bratseg.preprocess.steps import write_manifest

from bratseg.config import SplitParams
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
run_step(
    "manifest",
    lambda: write_manifest(
        [Path(p) for p in smk.input.cases],
        Path(smk.output.csv),
        Path(smk.output.parquet),
        Path(smk.output.split),
        SplitParams.from_dict(smk.params.split),
    ),
    smk.log[0],
)
