"""Typed, frozen parameters.

``params.yaml`` is read by :mod:`bratseg.paramsfile` for the entry points (Snakefile, ``workflow/scripts``).
This module receives the parsed mapping, validates it against the one schema
(``workflow/schemas/params.schema.yaml``) and returns frozen dataclasses; nothing else in ``bratseg`` reads
YAML. Each section can also be built on its own with ``Section.from_dict`` (Snakemake rules pass a section as
a rule parameter). The networks' sections are in :mod:`bratseg.netparams`, the base class in
:mod:`bratseg.sections`; both are re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from bratseg.errors import ConfigError
from bratseg.netparams import (
    MODEL_SECTIONS,
    SWINUNETR_DIVISOR,
    DynUNetParams,
    ModelParams,
    NetParams,
    SegResNetParams,
    SwinUNETRParams,
    model_params,
    patch_divisors,
)
from bratseg.sections import Section

#: Re-exported: network sections live in :mod:`bratseg.netparams`, the base class in :mod:`bratseg.sections`.
__all__ = [
    "MODEL_SECTIONS",
    "SWINUNETR_DIVISOR",
    "DynUNetParams",
    "ModelParams",
    "NetParams",
    "Section",
    "SegResNetParams",
    "SwinUNETRParams",
    "model_params",
    "patch_divisors",
]

@dataclass(frozen=True)
class TumourMix(Section):
    """Relative frequency of each tumour family (normalised to sum to 1; 0 leaves a family out)."""

    enhancing: float
    cystic: float
    non_enhancing: float


@dataclass(frozen=True)
class CohortParams(Section):
    n_cases: int
    seed: int
    voxel_mm: float
    field_of_view_mm: tuple[float, float, float]
    variant: str
    tumour_mix: TumourMix
    multifocal_fraction: float
    lobes: tuple[int, int]
    core_radius_mm: tuple[float, float]
    edema_ratio: tuple[float, float]
    non_enhancing_edema_ratio: tuple[float, float]
    necrosis_ratio: tuple[float, float]
    deformation_mm: float
    rotation_deg: float
    scale_jitter: float
    mass_effect_mm: float
    ventricle_mm: float
    atrophy: float
    contrast_jitter: float
    gamma: float
    texture: float
    slice_thickness_mm: tuple[float, float]
    skull_strip: float
    distractors: float
    bias_field: float
    noise: float

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid size in voxels: the field of view divided by the voxel size, rounded."""
        s = [max(1, round(f / self.voxel_mm)) for f in self.field_of_view_mm]
        return (s[0], s[1], s[2])

    def case_ids(self) -> list[str]:
        """Case ids in the BraTS 2021 naming."""
        return [f"BraTS2021_{i:05d}" for i in range(self.n_cases)]


@dataclass(frozen=True)
class DataParams(Section):
    raw_dir: str
    layout: str
    labels: str  # auto | a bratseg.labels.LABEL_SETS name
    exclude: tuple[str, ...]
    overrides: dict[str, dict[str, str]]  # case id -> {kind: file name inside the case folder}
    resample_to: str  # none | a modality

    @property
    def resample_modality(self) -> str | None:
        return None if self.resample_to == "none" else self.resample_to


@dataclass(frozen=True)
class ResampleParams(Section):
    image_order: int


@dataclass(frozen=True)
class N4Params(Section):
    enabled: bool
    shrink_factor: int | str  # an integer, or "auto" (per axis: round(fit_spacing_mm / voxel size))
    fit_spacing_mm: float
    iterations: tuple[int, ...]
    convergence: float
    control_points: int
    histogram_bins: int


@dataclass(frozen=True)
class NormaliseParams(Section):
    clip_percentiles: tuple[float, float]


@dataclass(frozen=True)
class CropParams(Section):
    margin_vox: int


@dataclass(frozen=True)
class CacheParams(Section):
    dtype: str
    locations_per_class: int


@dataclass(frozen=True)
class PreprocessParams(Section):
    target_spacing_mm: str | tuple[float, float, float]  # auto (cohort median) | native | [x, y, z]
    resample: ResampleParams
    n4: N4Params
    normalise: NormaliseParams
    crop: CropParams
    cache: CacheParams


@dataclass(frozen=True)
class SnakemakeParams(Section):
    keep_intermediate: bool


@dataclass(frozen=True)
class SplitParams(Section):
    seed: int
    val_fraction: float
    test_fraction: float


def fold_names(folds: int) -> tuple[str, ...]:
    """The names of ``folds`` cross-validation folds: ``("fold0", "fold1", ...)`` (``train@fold0`` ...)."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    return tuple(f"fold{i}" for i in range(folds))


@dataclass(frozen=True)
class CvParams(Section):
    """k-fold cross-validation: ``folds`` models, one per name of ``fold_names`` (what DVC's foreach iterates,
    so it must be exactly :func:`fold_names` of ``folds``)."""

    folds: int
    fold_names: tuple[str, ...]


@dataclass(frozen=True)
class AugmentParams(Section):
    flip: bool
    intensity_scale: float
    intensity_shift: float
    rotation_deg: float
    scale: float
    spatial_p: float
    contrast: float
    contrast_p: float
    gamma: float
    gamma_p: float
    low_res: float
    low_res_p: float
    blur_sigma: float
    blur_p: float
    noise_std: float
    noise_p: float


@dataclass(frozen=True)
class TrainParams(Section):
    seed: int
    target: str
    loss: str
    focal_gamma: float
    patch_size: tuple[int, int, int]
    batch_size: int
    epochs: int
    iterations_per_epoch: int
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    lr_schedule: str
    foreground_fraction: float
    augment: AugmentParams
    val_every: int
    val_overlap: float
    device: str
    amp: str
    compile: bool
    channels_last: bool  # channels-last 3D on CPU, for the networks that support it (the 3D UNet family)
    num_threads: int
    num_workers: int
    nproc: int  # training processes (world size); batch_size is the global batch over all of them


@dataclass(frozen=True)
class TrackingParams(Section):
    experiment: str


@dataclass(frozen=True)
class InferenceParams(Section):
    overlap: float
    gaussian_sigma: float
    tta_flips: bool
    batch_size: int
    channels_last: bool  # channels-last 3D on CPU, for the networks that support it


@dataclass(frozen=True)
class PostprocessParams(Section):
    threshold: float
    et_min_mean_probability: float  # ET components of a lower mean ET probability become NETC (0: off)
    min_component_voxels: int
    min_core_voxels: int  # whole-tumour components with fewer tumour-core voxels are removed (0: off)
    # fixed choices, used as given when select is false (the crossval stage chooses them when it is true)
    largest_component: tuple[str, ...]  # regions of which only the largest connected component is kept
    et_min_voxels: int
    select: bool
    et_min_voxels_candidates: tuple[int, ...]  # the ET -> NETC relabel thresholds select tries


@dataclass(frozen=True)
class LesionwiseParams(Section):
    preset: str
    matching: str
    # None: the preset's value (see bratseg.evaluation.lesionwise_case.PRESETS)
    dilation_iterations: int | None
    volume_threshold_mm3: float | None
    match_threshold: float | None
    nsd_tolerance_mm: float | None


@dataclass(frozen=True)
class MetricsParams(Section):
    hd95: str
    hd95_units: str
    empty: str
    empty_hd95_mm: float
    lesionwise: LesionwiseParams


@dataclass(frozen=True)
class ReportParams(Section):
    n_figures: int


@dataclass(frozen=True)
class Params(Section):
    model: str
    cohort: CohortParams
    data: DataParams
    preprocess: PreprocessParams
    snakemake: SnakemakeParams
    split: SplitParams
    cv: CvParams
    unet: NetParams
    resunet: NetParams
    attention_unet: NetParams
    unet2d: NetParams
    segresnet: SegResNetParams
    swinunetr: SwinUNETRParams
    dynunet: DynUNetParams
    train: TrainParams
    tracking: TrackingParams
    inference: InferenceParams
    postprocess: PostprocessParams
    metrics: MetricsParams
    report: ReportParams

    @property
    def net(self) -> ModelParams:
        """Settings of the selected architecture (``model``)."""
        net: ModelParams = getattr(self, self.model)
        return net


#: Cohort keys that are ``[lower, upper]`` ranges (checked for ``lower <= upper`` by :func:`parse_params`).
RANGE_KEYS = (
    "lobes",
    "core_radius_mm",
    "edema_ratio",
    "non_enhancing_edema_ratio",
    "necrosis_ratio",
    "slice_thickness_mm",
)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(raw: Mapping[str, Any], schema: Mapping[str, Any], source: str = "params.yaml") -> None:
    """Check ``raw`` against ``schema``; raise :class:`ConfigError` naming the first bad key.

    Raises:
        ConfigError: ``"params.yaml: train.lr: -1 is less than or equal to the minimum of 0"``.
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        err = jsonschema.exceptions.best_match(errors) or errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_key_path(err)}: {err.message}{more}")


def _check_model_section(model: str, net: ModelParams, source: str) -> None:
    """Constraints between the keys of one architecture's section (ranges are the schema's)."""
    if isinstance(net, NetParams | DynUNetParams) and net.max_width < net.base_width:
        raise ConfigError(
            f"{source}: {model}.max_width: {net.max_width} is below {model}.base_width ({net.base_width})"
        )
    if isinstance(net, SegResNetParams):
        if len(net.blocks_up) != len(net.blocks_down) - 1:
            raise ConfigError(
                f"{source}: {model}.blocks_up: needs len({model}.blocks_down) - 1"
                f" = {len(net.blocks_down) - 1} entries, got {len(net.blocks_up)}"
            )
        if net.norm == "group" and net.init_filters % net.num_groups:
            raise ConfigError(
                f"{source}: {model}.num_groups: {net.num_groups} does not divide {model}.init_filters"
                f" ({net.init_filters})"
            )
    if isinstance(net, SwinUNETRParams):
        for stage, heads in enumerate(net.num_heads):
            width = net.feature_size * 2**stage
            if width % heads:
                raise ConfigError(
                    f"{source}: {model}.num_heads[{stage}]: {heads} does not divide the stage width"
                    f" {model}.feature_size * 2**{stage} = {width}"
                )


def parse_params(raw: Mapping[str, Any], schema: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate ``raw`` and build the typed :class:`Params`, checking constraints that span keys."""
    validate(raw, schema, source)
    params = Params.from_dict(raw)
    for model in MODEL_SECTIONS:
        _check_model_section(model, getattr(params, model), source)
    divisors, rule = patch_divisors(params.model, params.net)
    for axis, (size, divisor) in enumerate(zip(params.train.patch_size, divisors, strict=True)):
        if size % divisor:
            raise ConfigError(f"{source}: train.patch_size[{axis}]: {size} is not divisible by {rule}")
    coarsest = math.prod(s // d for s, d in zip(params.train.patch_size, divisors, strict=True) if d > 1)
    if params.net.norm == "instance" and coarsest < 2:
        raise ConfigError(
            f"{source}: train.patch_size: {list(params.train.patch_size)} leaves one voxel at the coarsest"
            f" level of {params.model} ({rule}), too few for {params.model}.norm: instance"
        )
    tp = params.train
    if tp.batch_size % tp.nproc:
        raise ConfigError(
            f"{source}: train.batch_size: {tp.batch_size} is not divisible by train.nproc = {tp.nproc} "
            "(batch_size is the global batch, split evenly over the processes)"
        )
    for key in RANGE_KEYS:
        lo, hi = getattr(params.cohort, key)
        if lo > hi:
            raise ConfigError(f"{source}: cohort.{key}: lower bound {lo} exceeds upper bound {hi}")
    if sum(params.cohort.tumour_mix.to_dict().values()) <= 0:
        raise ConfigError(f"{source}: cohort.tumour_mix: at least one tumour family needs a positive weight")
    lo, hi = params.preprocess.normalise.clip_percentiles
    if lo >= hi:
        raise ConfigError(f"{source}: preprocess.normalise.clip_percentiles: {lo} must be below {hi}")
    if params.split.val_fraction + params.split.test_fraction >= 1:
        raise ConfigError(f"{source}: split: val_fraction + test_fraction must be below 1")
    _check_cv(params.cv, source)
    return params


def _check_cv(cv: CvParams, source: str) -> None:
    """``cv.fold_names`` is what DVC's ``foreach`` iterates (it cannot count to ``cv.folds`` itself): both
    must say the same, or the stages DVC generates would not be the folds the split stage writes."""
    expected = fold_names(cv.folds)
    if cv.fold_names != expected:
        names = ",".join(expected)
        raise ConfigError(
            f"{source}: cv.fold_names: [{', '.join(cv.fold_names)}] does not match cv.folds = {cv.folds}; "
            f"set it to [{', '.join(expected)}] "
            f"(dvc exp run -S cv.folds={cv.folds} -S 'cv.fold_names=[{names}]')"
        )


def params_hash(section: Section | Mapping[str, Any]) -> str:
    """Short stable hash of a section's values (key order does not matter)."""
    data = section.to_dict() if isinstance(section, Section) else dict(section)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``base`` with ``overrides`` merged in recursively (a parameter profile over params.yaml).

    Raises:
        ConfigError: if ``overrides`` names a key that ``base`` lacks (a typo in a profile).
    """
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        name = f"{where}{key}"
        if key not in out:
            raise ConfigError(f"profile: {name}: no such key in params.yaml")
        if isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = deep_merge(out[key], value, f"{name}.")
        else:
            out[key] = copy.deepcopy(value)
    return out
