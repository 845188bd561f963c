"""Snakemake adapter: read and validate one raw case (all modalities + segmentation)."""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.layouts import case_files
from bratseg.preprocess.steps.ingest import ingest
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
files = case_files(Path(smk.params.folder), smk.params.layout)
run_step("ingest", lambda: ingest(files, Path(smk.output.npz)), smk.log[0])
