"""Typed, frozen parameters.

``params.yaml`` is read by the workflow layer (Snakefile, ``workflow/scripts``); this module receives the
parsed mapping, validates it against the one schema (``workflow/schemas/params.schema.yaml``) and returns
frozen dataclasses. Nothing in ``bratseg`` reads YAML. Each section can also be built on its own with
``Section.from_dict`` (Snakemake rules pass a section as a rule parameter).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema

from bratseg.errors import ConfigError

T = TypeVar("T", bound="_Section")


class _Section:
    """Mixin: build a frozen dataclass from a mapping, recursing into nested sections and tuples."""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        extra = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if extra or missing:
            raise ConfigError(f"{cls.__name__}: unknown keys {extra}, missing keys {missing}")
        return cls(**{k: _convert(hints[k], data[k]) for k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping (tuples become lists), the inverse of :meth:`from_dict`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


def _convert(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, _Section):
        return hint.from_dict(value)
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is not None:
            return tuple(_convert(item, v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass(frozen=True)
class TumourMix(_Section):
    """Relative frequency of each tumour family (normalised to sum to 1; 0 leaves a family out)."""

    enhancing: float
    cystic: float
    non_enhancing: float


@dataclass(frozen=True)
class CohortParams(_Section):
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
class DataParams(_Section):
    raw_dir: str
    layout: str
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class N4Params(_Section):
    enabled: bool
    shrink_factor: int | str  # an integer, or "auto" (per axis: round(fit_spacing_mm / voxel size))
    fit_spacing_mm: float
    iterations: tuple[int, ...]
    convergence: float
    control_points: int
    histogram_bins: int


@dataclass(frozen=True)
class NormaliseParams(_Section):
    clip_percentiles: tuple[float, float]


@dataclass(frozen=True)
class CropParams(_Section):
    margin_vox: int


@dataclass(frozen=True)
class CacheParams(_Section):
    dtype: str
    locations_per_class: int


@dataclass(frozen=True)
class PreprocessParams(_Section):
    n4: N4Params
    normalise: NormaliseParams
    crop: CropParams
    cache: CacheParams


@dataclass(frozen=True)
class SnakemakeParams(_Section):
    keep_intermediate: bool


@dataclass(frozen=True)
class SplitParams(_Section):
    seed: int
    val_fraction: float
    test_fraction: float


@dataclass(frozen=True)
class NetParams(_Section):
    depth: int
    base_width: int
    max_width: int
    norm: str
    dropout: float
    deep_supervision: bool


@dataclass(frozen=True)
class AugmentParams(_Section):
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
class TrainParams(_Section):
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
    num_threads: int
    num_workers: int


@dataclass(frozen=True)
class TrackingParams(_Section):
    experiment: str


@dataclass(frozen=True)
class InferenceParams(_Section):
    overlap: float
    gaussian_sigma: float
    tta_flips: bool
    batch_size: int


@dataclass(frozen=True)
class PostprocessParams(_Section):
    threshold: float
    min_component_voxels: int
    et_min_voxels: int


@dataclass(frozen=True)
class MetricsParams(_Section):
    hd95: str
    empty: str
    empty_hd95_mm: float


@dataclass(frozen=True)
class ReportParams(_Section):
    n_figures: int


@dataclass(frozen=True)
class Params(_Section):
    model: str
    cohort: CohortParams
    data: DataParams
    preprocess: PreprocessParams
    snakemake: SnakemakeParams
    split: SplitParams
    unet: NetParams
    resunet: NetParams
    train: TrainParams
    tracking: TrackingParams
    inference: InferenceParams
    postprocess: PostprocessParams
    metrics: MetricsParams
    report: ReportParams

    @property
    def net(self) -> NetParams:
        """Settings of the selected architecture (``model``)."""
        net: NetParams = getattr(self, self.model)
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


def parse_params(raw: Mapping[str, Any], schema: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate ``raw`` and build the typed :class:`Params`, checking constraints that span keys."""
    validate(raw, schema, source)
    params = Params.from_dict(raw)
    depth = params.net.depth
    for axis, size in enumerate(params.train.patch_size):
        if size % 2 ** (depth - 1):
            raise ConfigError(
                f"{source}: train.patch_size[{axis}]: {size} is not divisible by "
                f"2**({params.model}.depth - 1)"
                f" = {2 ** (depth - 1)}"
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
    return params


def params_hash(section: _Section | Mapping[str, Any]) -> str:
    """Short stable hash of a section's values (key order does not matter)."""
    data = section.to_dict() if isinstance(section, _Section) else dict(section)
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
