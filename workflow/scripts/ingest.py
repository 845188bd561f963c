"""Snakemake adapter: read and validate one raw case (all modalities + segmentation).

It reads the case's declared input files where the job has them (without a shared filesystem: its copies from
Snakemake's storage) and records them under the names the workflow gives them (``params.case``).
"""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.layouts import CaseFiles
from bratseg.preprocess.steps.ingest import IngestOptions, as_target, ingest
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
options = IngestOptions(
    target_spacing=as_target(smk.params.target_spacing),
    image_order=int(smk.params.image_order),
    resample_to=None if smk.params.resample_to == "none" else smk.params.resample_to,
)
workflow_files = CaseFiles.from_record(smk.params.case)  # as the workflow names them (recorded)
files = workflow_files.relocated([Path(p) for p in smk.input.files])  # where this job has them
run_step("ingest", lambda: ingest(files, Path(smk.output.npz), options, workflow_files), smk.log[0])
