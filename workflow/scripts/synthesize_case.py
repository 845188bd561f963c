"""Snakemake adapter: generate one case of the embedded synthetic cohort."""

from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.cohort.generate import generate_case, write_case
from bratseg.config import CohortParams
from bratseg.steprun import run_step

smk = snakemake  # type: ignore[name-defined]  # noqa: F821
index = int(smk.params.index)
params = CohortParams.from_dict({**smk.params.cohort, "n_cases": index + 1})
root = Path(smk.output.seg).parent.parent
run_step("synthesize_case", lambda: write_case(generate_case(index, params), root), smk.log[0])
