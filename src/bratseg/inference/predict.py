"""Predict with a trained model or an ensemble of them: cached cases (evaluation) and raw BraTS cases (the
``predict`` command).

An :class:`Ensemble` (the folds of a cross-validation) averages its members' probabilities window by window:
each batch of windows is gathered once and every member runs on it (:func:`ensemble_fn`), so the sliding
window, its Gaussian weighting and its accumulators are shared, and the result equals the mean of the members'
own sliding-window probabilities (the weighting is linear) up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from bratseg.cache import CachedCase
from bratseg.config import InferenceParams, PostprocessParams, model_params
from bratseg.inference.postprocess import PostprocessPlan, as_plan, classes_from_probabilities, postprocess
from bratseg.inference.sliding_window import sliding_window_predict
from bratseg.io import Geometry, save_nifti
from bratseg.labels import LabelSet, label_set
from bratseg.models.base import use_channels_last
from bratseg.models.checkpoint import load_checkpoint
from bratseg.models.registry import build_model
from bratseg.runtime import amp_dtype
from bratseg.spatial import orient
from bratseg.spatial.crop import uncrop
from bratseg.spatial.resample import resample_classes

Classes = npt.NDArray[np.uint8]


def probability_fn(model: nn.Module, target: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap ``model`` (in eval mode) so that it maps a batch to probabilities in float32.

    Sigmoid per region for ``target == "regions"``, softmax over the classes for ``"classes"``; with deep
    supervision the full-resolution output is used.
    """

    def predict(x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        if isinstance(logits, list | tuple):
            logits = logits[0]
        logits = logits.float()
        return torch.sigmoid(logits) if target == "regions" else torch.softmax(logits, dim=1)

    return predict


def ensemble_fn(networks: Sequence[nn.Module], target: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`probability_fn` of several networks on the same batch: the mean of their probabilities (summed
    in the given order, so equal inputs give bit-identical outputs). One network: its own function."""
    fns = [probability_fn(network, target) for network in networks]
    if not fns:
        raise ValueError("networks must not be empty")
    if len(fns) == 1:
        return fns[0]

    def predict(x: torch.Tensor) -> torch.Tensor:
        total = fns[0](x)
        for fn in fns[1:]:
            total = total + fn(x)
        return total / len(fns)

    return predict


#: Metadata that every member of an ensemble must share: what goes in, what comes out, on which grid.
SHARED_META: tuple[str, ...] = (
    "in_channels",
    "out_channels",
    "labels",
    "modalities",
    "target",
    "patch_size",
    "preprocess",
    "target_spacing_mm",
    "resample_to",
)


@dataclass(frozen=True)
class TrainedModel:
    """A network in eval mode with the metadata recorded at training time."""

    network: nn.Module
    meta: dict[str, Any]
    device: torch.device
    source: str = ""

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> TrainedModel:
        """Load ``best.pt`` (``weights_only=True``: tensors and plain data only)."""
        device = torch.device(device)
        state = load_checkpoint(path, map_location=device)
        meta = state["meta"]
        net = build_model(
            meta["model"], meta["in_channels"], meta["out_channels"], model_params(meta["model"], meta["net"])
        )
        net.load_state_dict(state["model"])
        net.to(device).eval()
        return cls(net, meta, device, str(path))

    @property
    def labels(self) -> LabelSet:
        """The label set the network was trained on (models from before label sets: BraTS 2021)."""
        return label_set(self.meta.get("labels", "brats2021"))

    def probabilities(
        self,
        image: npt.NDArray[np.floating[Any]],
        params: InferenceParams,
        amp: str = "none",
        progress: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Sliding-window probabilities (n_outputs, X, Y, Z) for a preprocessed image (4, X, Y, Z)."""
        return Ensemble((self,)).probabilities(image, params, amp, progress)

    def segment(
        self,
        image: npt.NDArray[np.floating[Any]],
        inference: InferenceParams,
        post: PostprocessPlan | PostprocessParams,
        amp: str = "none",
    ) -> tuple[Classes, dict[str, Any]]:
        """Post-processed classes (X, Y, Z) for a preprocessed image, and what post-processing did."""
        return Ensemble((self,)).segment(image, inference, post, amp)


@dataclass(frozen=True)
class Ensemble:
    """Trained models whose probabilities are averaged (one or more; e.g. the folds of a cross-validation).

    Members must agree on :data:`SHARED_META` (inputs, outputs, window, grid); their architectures may differ.
    """

    members: tuple[TrainedModel, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("members must not be empty")
        first = self.members[0]
        for other in self.members[1:]:
            for key in SHARED_META:
                if other.meta.get(key) != first.meta.get(key):
                    raise ValueError(
                        f"{other.source or 'a member'}: {key} {other.meta.get(key)!r} differs from "
                        f"{first.meta.get(key)!r} of {first.source or 'the first member'}: not one ensemble"
                    )

    @classmethod
    def load(cls, paths: Sequence[Path | str], device: torch.device | str = "cpu") -> Ensemble:
        """Load every checkpoint of ``paths`` (in that order) onto ``device``."""
        return cls(tuple(TrainedModel.load(p, device) for p in paths))

    @property
    def meta(self) -> dict[str, Any]:
        return self.members[0].meta

    @property
    def labels(self) -> LabelSet:
        return self.members[0].labels

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def probabilities(
        self,
        image: npt.NDArray[np.floating[Any]],
        params: InferenceParams,
        amp: str = "none",
        progress: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Mean sliding-window probabilities (n_outputs, X, Y, Z) of the members for a preprocessed image
        (4, X, Y, Z); each window batch is gathered once for all members."""
        meta = self.meta
        for member in self.members:
            use_channels_last(member.network, params.channels_last, self.device)
        return sliding_window_predict(
            image,
            ensemble_fn([m.network for m in self.members], meta["target"]),
            patch_size=meta["patch_size"],
            n_outputs=meta["out_channels"],
            overlap=params.overlap,
            sigma_scale=params.gaussian_sigma,
            batch_size=params.batch_size,
            device=self.device,
            amp_dtype=amp_dtype(self.device, amp),
            tta_flips=params.tta_flips,
            progress=progress,
        )

    def raw_classes(
        self,
        image: npt.NDArray[np.floating[Any]],
        inference: InferenceParams,
        post: PostprocessPlan | PostprocessParams,
        amp: str = "none",
    ) -> tuple[Classes, int]:
        """Classes (X, Y, Z) after the post-processing steps that need the network output (the probability
        threshold, the ET confidence: :func:`classes_from_probabilities`), and the number of ET components
        relabelled NETC."""
        probs = self.probabilities(image, inference, amp)
        return classes_from_probabilities(probs, self.meta["target"], post, self.labels)

    def segment(
        self,
        image: npt.NDArray[np.floating[Any]],
        inference: InferenceParams,
        post: PostprocessPlan | PostprocessParams,
        amp: str = "none",
    ) -> tuple[Classes, dict[str, Any]]:
        """Post-processed classes (X, Y, Z) for a preprocessed image, and what post-processing did."""
        plan = as_plan(post)
        raw, unconfident = self.raw_classes(image, inference, plan, amp)
        classes, info = postprocess(raw, plan, self.labels)
        return classes.astype(np.uint8, copy=False), {"et_unconfident_relabelled": unconfident, **info}


def restore_original(classes: Classes, properties: dict[str, Any]) -> tuple[Classes, Geometry]:
    """Undo the preprocessing of the grid, in reverse: the crop, the resampling (per-class linear, the same
    rule as for the reference labels), the reorientation. Returns classes on the case's native grid and that
    grid's geometry; without resampling the round trip is exact."""
    geometry = Geometry.from_dict(properties["geometry"])
    transforms = properties.get("transforms")
    if transforms is None:  # a case cached before transforms were recorded: crop only
        bbox = tuple(tuple(int(v) for v in axis) for axis in properties["bbox"])
        full = uncrop(classes, bbox, geometry.shape, fill=0)  # type: ignore[arg-type]
        return full.astype(np.uint8), geometry
    plan = transforms["resampling"]
    bbox = tuple(tuple(int(v) for v in axis) for axis in properties["bbox"])
    full = uncrop(classes, bbox, plan["shape"], fill=0)  # type: ignore[arg-type]
    if plan["resampled"]:
        native = plan["native_shape"]
        full = resample_classes(full, (native[0], native[1], native[2]), plan["native_spacing"])
    full = orient.undo(full, transforms["orientation"])
    if tuple(full.shape) != tuple(geometry.shape):
        raise ValueError(f"restored shape {full.shape} differs from the native grid {geometry.shape}")
    return np.ascontiguousarray(full, dtype=np.uint8), geometry


def write_segmentation(path: Path, classes: Classes, geometry: Geometry, convention: str) -> None:
    """Write canonical classes as a NIfTI label map in the case's own label set and exact native geometry."""
    save_nifti(path, label_set(convention).from_classes(classes), geometry)


def predict_cached_case(
    model: TrainedModel | Ensemble,
    case: CachedCase,
    inference: InferenceParams,
    post: PostprocessPlan | PostprocessParams,
    amp: str = "none",
) -> tuple[Classes, Geometry, dict[str, Any]]:
    """Predict a cached case and return classes on its original grid, the grid, and provenance."""
    cropped, info = model.segment(case.image(), inference, post, amp)
    classes, geometry = restore_original(cropped, case.properties)
    return classes, geometry, info
