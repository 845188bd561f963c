"""Segmentation losses: soft Dice + (B)CE or focal, for region (sigmoid) or class (softmax) targets, with
nnU-Net-style deep supervision.

All losses compute in float32 whatever the autocast dtype of the logits (bf16 / fp16), and use only
element-wise operations and reductions, which are deterministic on CPU and CUDA. In particular the class
cross-entropy is written with a one-hot product rather than ``nll_loss``, whose CUDA kernel is refused by
``torch.use_deterministic_algorithms(True)``.

Shapes: ``B`` batch, ``K`` channels, ``*spatial`` any number of spatial axes (``X, Y, Z`` in the pipeline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bratseg.errors import check_choice
from bratseg.labels import TARGETS

LossKind = Literal["dice_ce", "dice_focal"]
LOSSES: tuple[str, ...] = get_args(LossKind)


#: Turns a process's Dice sums ``(2, K)`` (intersection, denominator) into those of the global batch of all
#: training processes (:func:`bratseg.training.distributed.global_sums`).
SumReducer = Callable[[Tensor], Tensor]


def soft_dice_loss(
    probs: Tensor,
    target: Tensor,
    *,
    smooth: float = 1e-5,
    batch_dice: bool = True,
    reduce_sums: SumReducer | None = None,
) -> Tensor:
    """Mean over channels of ``1 - (2·Σ p·t + smooth) / (Σ p + Σ t + smooth)``.

    Args:
        probs: ``(B, K, *spatial)`` probabilities.
        target: ``(B, K, *spatial)`` reference in [0, 1] (one-hot or region masks).
        smooth: added to numerator and denominator; a channel that is empty in both scores a loss of 0.
        batch_dice: sum over the batch and space (nnU-Net's batch Dice) rather than per sample; per-sample
            losses are then averaged over samples too.
        reduce_sums: with ``batch_dice``, maps this process's sums ``(2, K)`` to those of the global batch
            of several training processes, so the loss is the Dice of the global batch (``None``: one
            process).

    Returns:
        Scalar float32 loss.
    """
    if probs.shape != target.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if probs.ndim < 3:
        raise ValueError(f"probs must have shape (B, K, *spatial), got {tuple(probs.shape)}")
    if not smooth >= 0:
        raise ValueError(f"smooth must be non-negative, got {smooth!r}")
    probs = probs.float()
    target = target.float()
    dims = (0, *range(2, probs.ndim)) if batch_dice else tuple(range(2, probs.ndim))
    intersection = (probs * target).sum(dims)
    denominator = probs.sum(dims) + target.sum(dims)
    if reduce_sums is not None:
        if not batch_dice:
            raise ValueError("reduce_sums needs batch_dice: a per-sample Dice is a mean over samples already")
        intersection, denominator = reduce_sums(torch.stack([intersection, denominator])).unbind(0)
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return (1.0 - dice).mean()


def _check_gamma(focal_gamma: float) -> None:
    if (
        isinstance(focal_gamma, bool)
        or not isinstance(focal_gamma, int | float)
        or not (math.isfinite(focal_gamma) and focal_gamma >= 0)
    ):
        raise ValueError(f"focal_gamma must be a finite number >= 0, got {focal_gamma!r}")


class SegmentationLoss(nn.Module):
    """Soft Dice plus a voxel-wise term (cross-entropy or focal loss), weighted 1 : 1.

    - ``target="regions"``: logits ``(B, R, *spatial)`` (R = 3: WT, TC, ET), target ``(B, R, *spatial)`` in
      {0, 1}; sigmoid probabilities; Dice over all regions + BCE-with-logits (``dice_ce``) or sigmoid focal
      loss (``dice_focal``).
    - ``target="classes"``: logits ``(B, K, *spatial)`` (K = 4), target integer classes ``(B, *spatial)``;
      softmax probabilities; Dice over the foreground classes 1..K-1 (one-hot) + cross-entropy
      (``dice_ce``) or softmax focal loss (``dice_focal``).

    Focal loss is ``(1 - p_t)**focal_gamma · CE`` averaged over voxels (no class weighting); with
    ``focal_gamma = 0`` it equals the cross-entropy.

    The Dice is nnU-Net's batch Dice; ``reduce_sums`` (several training processes) makes it the Dice of the
    global batch (see :func:`soft_dice_loss`). The voxel-wise term is a mean over this process's samples:
    the average that DDP takes over the processes is then the mean over the global batch.

    Raises:
        ValueError: naming the argument, if ``target``, ``kind`` or ``focal_gamma`` is invalid.
    """

    def __init__(
        self,
        target: Literal["regions", "classes"],
        kind: Literal["dice_ce", "dice_focal"],
        focal_gamma: float = 2.0,
        reduce_sums: SumReducer | None = None,
    ) -> None:
        super().__init__()
        check_choice("target", target, TARGETS)
        check_choice("kind", kind, LOSSES)
        _check_gamma(focal_gamma)
        self.target: str = target
        self.kind: str = kind
        self.focal_gamma = float(focal_gamma)
        self.reduce_sums = reduce_sums

    def extra_repr(self) -> str:
        return f"target={self.target!r}, kind={self.kind!r}, focal_gamma={self.focal_gamma}"

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar float32 loss; see the class docstring for the shapes."""
        logits = logits.float()
        if self.target == "regions":
            return self._regions(logits, target)
        return self._classes(logits, target)

    def _regions(self, logits: Tensor, target: Tensor) -> Tensor:
        if target.shape != logits.shape:
            raise ValueError(
                f"region target {tuple(target.shape)} must have the shape of the logits {tuple(logits.shape)}"
            )
        target = target.float()
        probs = torch.sigmoid(logits)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if self.kind == "dice_focal":
            p_t = probs * target + (1.0 - probs) * (1.0 - target)
            bce = bce * (1.0 - p_t).pow(self.focal_gamma)
        return soft_dice_loss(probs, target, reduce_sums=self.reduce_sums) + bce.mean()

    def _classes(self, logits: Tensor, target: Tensor) -> Tensor:
        n_classes = logits.shape[1] if logits.ndim >= 2 else 0
        expected = (logits.shape[0], *logits.shape[2:])
        if logits.ndim < 3 or n_classes < 2 or tuple(target.shape) != expected:
            raise ValueError(
                f"class logits must be (B, K >= 2, *spatial) and the target (B, *spatial); got logits "
                f"{tuple(logits.shape)} and target {tuple(target.shape)}"
            )
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"class target must hold integer classes, got dtype {target.dtype}")
        if bool(((target < 0) | (target >= n_classes)).any()):
            raise ValueError(f"class target values must lie in [0, {n_classes - 1}]")
        classes = torch.arange(n_classes, device=target.device).view(1, n_classes, *([1] * (target.ndim - 1)))
        one_hot = (target.unsqueeze(1) == classes).float()
        log_probs = F.log_softmax(logits, dim=1)
        log_p_t = (log_probs * one_hot).sum(1)
        voxelwise = -log_p_t
        if self.kind == "dice_focal":
            voxelwise = voxelwise * (1.0 - log_p_t.exp()).pow(self.focal_gamma)
        dice = soft_dice_loss(log_probs.exp()[:, 1:], one_hot[:, 1:], reduce_sums=self.reduce_sums)
        return dice + voxelwise.mean()


def deep_supervision_weights(n_outputs: int) -> tuple[float, ...]:
    """nnU-Net's weights: ``1/2**i`` for output ``i`` (full resolution first), the lowest-resolution output
    set to 0 when there are several, normalised to sum to 1. ``n_outputs = 1`` gives ``(1.0,)``."""
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer, got {n_outputs!r}")
    if n_outputs == 1:
        return (1.0,)
    raw = [1.0 / 2**i for i in range(n_outputs - 1)] + [0.0]
    total = sum(raw)
    return tuple(w / total for w in raw)


def downsample_target(target: Tensor, spatial: Sequence[int]) -> Tensor:
    """Nearest-neighbour downsampling of ``target`` to the spatial size ``spatial`` by strided slicing
    (voxels 0, f, 2f, … along an axis reduced by the integer factor f); the trailing ``len(spatial)`` axes are
    the spatial ones, so both ``(B, K, *spatial)`` and ``(B, *spatial)`` targets work.

    Raises:
        ValueError: if a size of ``target`` is not an integer multiple of the requested one.
    """
    n = len(spatial)
    have = tuple(int(s) for s in target.shape[target.ndim - n :])
    if target.ndim < n or any(s < 1 or h % s for h, s in zip(have, spatial, strict=True)):
        raise ValueError(
            f"target spatial size {have} is not an integer multiple of the output size {tuple(spatial)}"
        )
    index: list[slice | EllipsisType] = [Ellipsis]
    index.extend(slice(None, None, h // s) for h, s in zip(have, spatial, strict=True))
    return target[tuple(index)]


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss`` over the outputs of a deeply supervised model.

    The target is downsampled to each output's size by :func:`downsample_target`; outputs of weight 0 are
    skipped. Given a single tensor (a model in eval mode, or without deep supervision) it is ``loss`` itself.

    Args:
        loss: the loss of one output, ``loss(logits, target)``.
        n_outputs: number of outputs in training mode; weights from :func:`deep_supervision_weights`.
    """

    def __init__(self, loss: nn.Module, n_outputs: int) -> None:
        super().__init__()
        self.weights = deep_supervision_weights(n_outputs)
        self.loss = loss

    @property
    def n_outputs(self) -> int:
        return len(self.weights)

    def extra_repr(self) -> str:
        return f"weights={tuple(round(w, 4) for w in self.weights)}"

    def forward(self, outputs: Tensor | list[Tensor], target: Tensor) -> Tensor:
        """Scalar loss.

        Args:
            outputs: logits ``(B, K, *spatial)``, or the list of ``n_outputs`` logits, full resolution first.
            target: the full-resolution target, as the wrapped loss expects it.
        """
        if isinstance(outputs, Tensor):
            single: Tensor = self.loss(outputs, target)
            return single
        if len(outputs) != self.n_outputs:
            raise ValueError(f"expected {self.n_outputs} outputs, got {len(outputs)}")
        total: Tensor | None = None
        for weight, logits in zip(self.weights, outputs, strict=True):
            if weight == 0.0:
                continue
            term = weight * self.loss(logits, downsample_target(target, logits.shape[2:]))
            total = term if total is None else total + term
        assert total is not None  # the first weight is always positive
        return total


def build_loss(
    target: str,
    kind: str,
    focal_gamma: float,
    deep_supervision_outputs: int,
    reduce_sums: SumReducer | None = None,
) -> nn.Module:
    """The training loss from ``train.target``, ``train.loss`` and ``train.focal_gamma``.

    Args:
        target: ``"regions"`` or ``"classes"``.
        kind: ``"dice_ce"`` or ``"dice_focal"``.
        focal_gamma: focusing parameter (≥ 0) of ``dice_focal``.
        deep_supervision_outputs: outputs of the model in training mode (``UNet3D.n_outputs``); 0 is taken
            as 1 (no deep supervision).
        reduce_sums: several training processes: the Dice sums of the global batch (see
            :class:`SegmentationLoss`); ``None`` for one process.

    Returns:
        A :class:`DeepSupervisionLoss` around a :class:`SegmentationLoss`, so that it accepts the model's
        output in either mode: a list of logits (training with deep supervision) or one tensor.

    Raises:
        ValueError: naming the argument that is invalid.
    """
    check_choice("target", target, TARGETS)
    check_choice("kind", kind, LOSSES)
    _check_gamma(focal_gamma)
    n = deep_supervision_outputs
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"deep_supervision_outputs must be a non-negative integer, got {n!r}")
    loss = SegmentationLoss(target, kind, focal_gamma, reduce_sums)  # type: ignore[arg-type]
    return DeepSupervisionLoss(loss, max(n, 1))
