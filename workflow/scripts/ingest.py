"""Snakemake adapter: read and validate one raw case (all modalities + segmentation).

It reads the case's declared input files where the job has them (without a shared filesystem: its copies from
Snakemake's storage) and records them under the names the workflow gives them (``params.folder``).
"""

from pathlib import Path

from bratseg.layouts import case_files
from bratseg.preprocess.steps.ingest import ingest
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
named = Path(smk.params.folder)
inputs = [Path(p) for p in smk.input.files]
files = case_files(inputs[0].parent if inputs else named, smk.params.layout)
run_step("ingest", lambda: ingest(files, Path(smk.output.npz), named), smk.log[0])
