# The validated parameters, the case table and helpers shared by all rules.
import sys
from pathlib import Path

import yaml

from bratseg.config import parse_params
from bratseg.errors import BratsegError
from bratseg.layouts import case_files, discover_cases

SYNTHETIC_DIR = "data/raw/synthetic"
SYNTHETIC_FILES = f"{SYNTHETIC_DIR}/{{case}}/{{case}}_{{kind}}.nii.gz"  # BraTS 2021 naming
RAW_KINDS = ("t1", "t1ce", "t2", "flair", "seg")
INTERIM_DIR = "data/interim"
CACHE_DIR = "data/preprocessed"

try:
    with open(Path(workflow.basedir) / "workflow/schemas/params.schema.yaml") as _f:
        PARAMS = parse_params(config, yaml.safe_load(_f))
    _raw = Path(PARAMS.data.raw_dir)
    SYNTHETIC = _raw.resolve() == Path(SYNTHETIC_DIR).resolve()
    if SYNTHETIC:
        # The embedded cohort: its cases are known from the parameters (synthesize_case makes them).
        _unknown = sorted(set(PARAMS.data.exclude) - set(PARAMS.cohort.case_ids()))
        if _unknown:
            raise BratsegError(f"params.yaml: data.exclude names case(s) not in the synthetic cohort: {_unknown}")
        CASES = {
            cid: case_files(_raw / cid, "brats2021")
            for cid in PARAMS.cohort.case_ids()
            if cid not in PARAMS.data.exclude
        }
    else:
        CASES = {c.case_id: c for c in discover_cases(_raw, PARAMS.data.layout, PARAMS.data.exclude)}
except BratsegError as _exc:
    sys.exit(f"error: {_exc}")
except (FileNotFoundError, ValueError) as _exc:
    sys.exit(f"error: params.yaml: data: {_exc}")



def code(*modules):
    """Source files a step depends on: an edit reruns it (mtime trigger), as DVC does for its stages."""
    return [str(p) for m in modules for p in sorted(Path("src/bratseg").glob(m))]


def interim(path):
    """Intermediate files are deleted once consumed, unless snakemake.keep_intermediate is set."""
    return path if PARAMS.snakemake.keep_intermediate else temp(path)


def case_inputs(wildcards):
    """The case's raw files.

    Synthetic cases: all five files, made by synthesize_case. A folder of your own: the files that exist,
    so that ingest reports a missing one by name instead of the whole DAG failing.
    """
    if SYNTHETIC:
        return [SYNTHETIC_FILES.format(case=wildcards.case, kind=kind) for kind in RAW_KINDS]
    return [str(p) for p in CASES[wildcards.case].existing_files()]
