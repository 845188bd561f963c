"""Snakemake adapter: the cohort manifest and the train/val/test split (the DVC `split` stage runs the same
function through workflow/scripts/split.py)."""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.config import SplitParams
from bratseg.preprocess.steps.manifest import ManifestFiles, write_manifest
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
run_step(
    "manifest",
    lambda: write_manifest(
        [Path(p) for p in smk.input.cases],
        ManifestFiles(
            *(Path(p) for p in (smk.output.csv, smk.output.parquet, smk.output.split, smk.output.fingerprint))
        ),
        SplitParams.from_dict(smk.params.split),
        smk.params.labels,
        int(smk.config.get("cv", {}).get("folds", 1)),  # as the DVC split stage, for cv.folds > 1
    ),
    smk.log[0],
)
