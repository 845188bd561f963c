# The validated parameters, the case table and helpers shared by all rules.
import dataclasses
import hashlib
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
import _repo  # this repository's src first, for the workflow and every job it starts

from bratseg.codedeps import PACKAGE_DIR, closure, relative
from bratseg.errors import BratsegError
from bratseg.layouts import case_files, discover_cases
from bratseg.paramsfile import params_from_mapping
from bratseg.preprocess.plan import header_spacing, target_spacing

SYNTHETIC_DIR = "data/raw/synthetic"
SYNTHETIC_FILES = f"{SYNTHETIC_DIR}/{{case}}/{{case}}_{{kind}}.nii.gz"  # BraTS 2021 naming
RAW_KINDS = ("t1", "t1ce", "t2", "flair", "seg")
INTERIM_DIR = "data/interim"
CACHE_DIR = "data/preprocessed"

try:
    PARAMS = params_from_mapping(config)
    _raw = Path(PARAMS.data.raw_dir)
    SYNTHETIC = _raw.resolve() == Path(SYNTHETIC_DIR).resolve()
    if SYNTHETIC:
        # The embedded cohort: its cases are known from the parameters (synthesize_case makes them).
        _unknown = sorted(set(PARAMS.data.exclude) - set(PARAMS.cohort.case_ids()))
        if _unknown:
            raise BratsegError(f"params.yaml: data.exclude names case(s) not in the synthetic cohort: {_unknown}")
        # Labelled by construction: synthesize_case writes the segmentation, which need not exist yet.
        CASES = {
            cid: dataclasses.replace(
                case_files(_raw / cid, "brats2021", PARAMS.data.labels, PARAMS.data.overrides.get(cid)),
                seg=Path(SYNTHETIC_FILES.format(case=cid, kind="seg")),
            )
            for cid in PARAMS.cohort.case_ids()
            if cid not in PARAMS.data.exclude
        }
        _spacings = [(PARAMS.cohort.voxel_mm,) * 3]
    else:
        CASES = {
            c.case_id: c
            for c in discover_cases(
                _raw, PARAMS.data.layout, PARAMS.data.exclude, PARAMS.data.labels, PARAMS.data.overrides
            )
        }
        _spacings = [header_spacing(c) for c in CASES.values()] if PARAMS.preprocess.target_spacing_mm == "auto" else []
    # The plan: the spacing every case is resampled to (None: the native grid).
    TARGET_SPACING = target_spacing(PARAMS.preprocess.target_spacing_mm, _spacings)
except BratsegError as _exc:
    sys.exit(f"error: {_exc}")
except (FileNotFoundError, ValueError) as _exc:
    sys.exit(f"error: params.yaml: data: {_exc}")



#: With a default storage provider (no shared filesystem: ``--shared-fs-usage none --default-storage-provider
#: fs``) every input path is looked up in the storage, and a ``local()`` one makes the job run in Snakemake's
#: own process; the package sources are neither: they travel with the workflow's sources (git-tracked files).
STORAGE_IO = workflow.storage_settings.default_storage_provider is not None


def _code_files(script):
    # relative to the repository of the package imported (a cluster job may run a deployed copy elsewhere)
    root = PACKAGE_DIR.parents[1]
    return relative(closure([Path(workflow.basedir) / "workflow" / "scripts" / script]), root)


def code(script):
    """The package sources that ``workflow/scripts/<script>`` runs (its import closure), as inputs: an edit
    reruns the step (mtime trigger), as DVC does for its stages. The same closure is what the DVC stages list.

    None with a default storage provider (see :data:`STORAGE_IO`): :func:`code_version` stands in for them.
    """
    return [] if STORAGE_IO else _code_files(script)


def code_version(script):
    """``{"code": <hash of the script and its import closure>}`` with a default storage provider (a params
    entry: an edit reruns the step through the params trigger), else nothing (the sources are inputs)."""
    if not STORAGE_IO:
        return {}
    root = Path(workflow.basedir)
    digest = hashlib.sha256()
    for rel in [f"workflow/scripts/{script}", *_code_files(script)]:
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return {"code": digest.hexdigest()[:16]}


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


def case_megavoxels(wildcards):
    """Voxels of one modality of the case, in millions (NIfTI header only: nothing is decoded)."""
    import math

    import nibabel as nib

    if SYNTHETIC:
        return math.prod(PARAMS.cohort.shape) / 1e6
    return math.prod(nib.load(CASES[wildcards.case].images["t1"]).shape[:3]) / 1e6


#: Per rule: (base, per megavoxel) of peak memory in MB and of wall time in minutes; see measured().
#: Measured (Snakemake benchmark files; AMD EPYC, 2 cores): peak RSS 2 mm (1.1 Mvox) / 1 mm (8.9 Mvox):
#: synthesize_case 410 / 728 MB, ingest 120 / 412, bias_correct 220 / 584, finalise 106 / 439; CPU time at
#: 1 mm 5.0 / 2.1 / 3.4 / 1.6 s. Memory is the linear fit through both sizes with 1.5x headroom; time allows a
#: loaded node 20x the CPU time.
RESOURCES = {
    "synthesize_case": {"mem_mb": (550, 60), "runtime": (2, 0.5)},
    "ingest": {"mem_mb": (150, 60), "runtime": (2, 0.5)},
    "bias_correct": {"mem_mb": (250, 70), "runtime": (2, 0.5)},
    "finalise": {"mem_mb": (100, 65), "runtime": (2, 0.5)},
}


def cohort_megavoxels(wildcards):
    """Voxels of a synthetic case, in millions (from the cohort parameters)."""
    return math.prod(PARAMS.cohort.shape) / 1e6


def measured(rule, what, megavoxels=None):
    """A resource of ``rule`` for this case: ``base + per_megavoxel * megavoxels``, grown on each retry.

    The constants are the peak memory (MB) and wall time (minutes) measured per rule on a 1 mm
    240 x 240 x 155 case and a 2 mm case (``benchmark:`` files in logs/benchmarks/), with headroom; see
    the README's resource table.
    """
    base, per_megavoxel = RESOURCES[rule][what]
    size = megavoxels or case_megavoxels

    def resource(wildcards, attempt):
        return max(1, math.ceil((base + per_megavoxel * size(wildcards)) * attempt))

    return resource
