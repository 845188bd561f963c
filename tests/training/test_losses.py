"""Soft Dice, Dice + CE / focal for region and class targets, deep supervision, and argument checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bratseg.training.losses import (
    DeepSupervisionLoss,
    SegmentationLoss,
    build_loss,
    deep_supervision_weights,
    downsample_target,
    soft_dice_loss,
)


def region_batch(seed: int = 0, shape: tuple[int, ...] = (2, 3, 4, 4, 4)) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), (torch.rand(shape, generator=g) > 0.6).float()


def class_batch(seed: int = 0, shape: tuple[int, ...] = (2, 4, 4, 4, 4)) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    return logits, torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)


def one_hot(classes: Tensor, n: int) -> Tensor:
    return F.one_hot(classes, n).movedim(-1, 1).float()


# --- soft Dice ---------------------------------------------------------------------------------------------


def test_dice_of_a_perfect_prediction_is_zero() -> None:
    _, target = region_batch()
    assert soft_dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros(1, 2, 3, 3)
    assert soft_dice_loss(empty, empty).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_matches_a_hand_computed_value() -> None:
    probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]], [[1.0, 0.0, 0.0, 0.0]]])  # (B=2, K=1, 4)
    target = torch.tensor([[[1.0, 0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0, 0.0]]])
    s = 1e-5
    # batch Dice: intersection 0.5 + 1, sums (1 + 1) + (2 + 1)
    expected_batch = 1 - (2 * 1.5 + s) / (5 + s)
    assert soft_dice_loss(probs, target, smooth=s).item() == pytest.approx(expected_batch, rel=1e-6)
    # per sample: 1 - (1 + s) / (3 + s) and 1 - (2 + s) / (2 + s) = 0, averaged
    expected_sample = ((1 - (1 + s) / (3 + s)) + 0.0) / 2
    assert soft_dice_loss(probs, target, smooth=s, batch_dice=False).item() == pytest.approx(expected_sample)


def test_dice_averages_over_channels() -> None:
    probs = torch.stack([torch.ones(1, 4), torch.zeros(1, 4)], dim=1)  # channel 0 right, channel 1 all wrong
    target = torch.ones(1, 2, 4)
    assert soft_dice_loss(probs, target, smooth=0.0).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("probs", "target", "kwargs", "message"),
    [
        ((1, 2, 4), (1, 3, 4), {}, "same shape"),
        ((2, 4), (2, 4), {}, r"\(B, K, \*spatial\)"),
        ((1, 2, 4), (1, 2, 4), {"smooth": -1.0}, "smooth"),
    ],
)
def test_dice_rejects_bad_arguments(
    probs: tuple[int, ...], target: tuple[int, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        soft_dice_loss(torch.zeros(probs), torch.zeros(target), **kwargs)


# --- segmentation losses -----------------------------------------------------------------------------------


def test_region_loss_is_dice_plus_bce() -> None:
    logits, target = region_batch()
    loss = SegmentationLoss("regions", "dice_ce")(logits, target)
    expected = soft_dice_loss(torch.sigmoid(logits), target) + F.binary_cross_entropy_with_logits(
        logits, target
    )
    torch.testing.assert_close(loss, expected)


def test_class_loss_is_foreground_dice_plus_ce() -> None:
    logits, classes = class_batch()
    loss = SegmentationLoss("classes", "dice_ce")(logits, classes)
    probs = torch.softmax(logits, 1)
    dice = soft_dice_loss(probs[:, 1:], one_hot(classes, 4)[:, 1:])
    torch.testing.assert_close(loss, dice + F.cross_entropy(logits, classes))


@pytest.mark.parametrize(("target", "batch"), [("regions", region_batch), ("classes", class_batch)])
def test_focal_with_gamma_zero_equals_cross_entropy(target: Any, batch: Any) -> None:
    logits, y = batch()
    ce = SegmentationLoss(target, "dice_ce")(logits, y)
    focal = SegmentationLoss(target, "dice_focal", focal_gamma=0.0)(logits, y)
    torch.testing.assert_close(focal, ce)


def test_focal_matches_its_definition() -> None:
    logits, classes = class_batch(seed=3)
    gamma = 2.0
    log_p_t = F.log_softmax(logits, 1).gather(1, classes.unsqueeze(1)).squeeze(1)
    focal = (-((1 - log_p_t.exp()) ** gamma) * log_p_t).mean()
    dice = soft_dice_loss(torch.softmax(logits, 1)[:, 1:], one_hot(classes, 4)[:, 1:])
    loss = SegmentationLoss("classes", "dice_focal", gamma)(logits, classes)
    torch.testing.assert_close(loss, dice + focal)

    logits, target = region_batch(seed=3)
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = soft_dice_loss(p, target) + (bce * (1 - p_t) ** gamma).mean()
    torch.testing.assert_close(SegmentationLoss("regions", "dice_focal", gamma)(logits, target), expected)
    assert (bce * (1 - p_t) ** gamma).mean() < bce.mean()  # focal down-weights easy voxels


@pytest.mark.parametrize("kind", ["dice_ce", "dice_focal"])
def test_perfect_logits_give_a_near_zero_loss(kind: Any) -> None:
    _, target = region_batch()
    logits = (2 * target - 1) * 30
    assert SegmentationLoss("regions", kind)(logits, target).item() < 1e-5
    _, classes = class_batch()
    logits = one_hot(classes, 4) * 60 - 30
    assert SegmentationLoss("classes", kind)(logits, classes).item() < 1e-5


@pytest.mark.parametrize("target", ["regions", "classes"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_are_computed_in_float32(target: Any, dtype: torch.dtype) -> None:
    logits, y = region_batch() if target == "regions" else class_batch()
    low = logits.to(dtype).requires_grad_()
    loss_fn = SegmentationLoss(target, "dice_focal")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(low, y)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, loss_fn(low.detach().float(), y))
    loss.backward()
    assert low.grad is not None and low.grad.dtype == dtype


@pytest.mark.parametrize("target", ["regions", "classes"])
def test_losses_are_deterministic(target: str) -> None:
    logits, y = region_batch() if target == "regions" else class_batch()
    loss_fn = build_loss(target, "dice_ce", 2.0, 1)
    grads = []
    for _ in range(2):
        x = logits.clone().requires_grad_()
        loss_fn(x, y).backward()
        assert x.grad is not None
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize(
    ("target", "logits", "y", "message"),
    [
        ("regions", torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), "must have the shape of the logits"),
        ("classes", torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.long), r"\(B, \*spatial\)"),
        ("classes", torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), "K >= 2"),
        ("classes", torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4), "integer classes"),
        ("classes", torch.zeros(1, 4, 4, 4), torch.full((1, 4, 4), 4), r"lie in \[0, 3\]"),
        ("classes", torch.zeros(1, 4, 4, 4), torch.full((1, 4, 4), -1), r"lie in \[0, 3\]"),
    ],
)
def test_segmentation_loss_rejects_bad_inputs(target: Any, logits: Tensor, y: Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentationLoss(target, "dice_ce")(logits, y)


# --- deep supervision --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1.0,)), (2, (1.0, 0.0)), (3, (2 / 3, 1 / 3, 0.0)), (4, (4 / 7, 2 / 7, 1 / 7, 0.0))],
)
def test_deep_supervision_weights(n: int, expected: tuple[float, ...]) -> None:
    weights = deep_supervision_weights(n)
    assert weights == pytest.approx(expected)
    assert sum(weights) == pytest.approx(1.0)


def test_downsample_target_is_strided_nearest() -> None:
    regions = torch.arange(2 * 3 * 8 * 8 * 4).reshape(2, 3, 8, 8, 4)
    torch.testing.assert_close(downsample_target(regions, (4, 4, 2)), regions[:, :, ::2, ::2, ::2])
    torch.testing.assert_close(downsample_target(regions, (2, 8, 4)), regions[:, :, ::4])
    classes = regions[:, 0]
    torch.testing.assert_close(downsample_target(classes, (2, 2, 1)), classes[:, ::4, ::4, ::4])
    nearest = F.interpolate(regions.float(), size=(4, 4, 2), mode="nearest").long()
    torch.testing.assert_close(downsample_target(regions, (4, 4, 2)), nearest)
    with pytest.raises(
        ValueError, match=r"\(8, 8, 4\) is not an integer multiple of the output size \(3, 4, 2\)"
    ):
        downsample_target(regions, (3, 4, 2))


class Recorder(nn.Module):
    """Returns a fixed value per call and records the target shapes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self.shapes.append(tuple(target.shape))
        return torch.tensor(float(len(self.shapes)))


def test_deep_supervision_weights_each_output_and_downsamples_the_target() -> None:
    recorder = Recorder()
    loss = DeepSupervisionLoss(recorder, 4)
    outputs = [torch.zeros(2, 4, 16 // 2**i, 16 // 2**i, 8 // 2**i) for i in range(4)]
    total = loss(outputs, torch.zeros(2, 16, 16, 8, dtype=torch.long))
    # the lowest-resolution output has weight 0 and is skipped
    assert recorder.shapes == [(2, 16, 16, 8), (2, 8, 8, 4), (2, 4, 4, 2)]
    assert total.item() == pytest.approx(4 / 7 * 1 + 2 / 7 * 2 + 1 / 7 * 3)


def test_deep_supervision_with_the_real_loss() -> None:
    logits, target = region_batch(shape=(2, 3, 8, 8, 8))
    small, _ = region_batch(seed=1, shape=(2, 3, 4, 4, 4))
    base = SegmentationLoss("regions", "dice_ce")
    loss = build_loss("regions", "dice_ce", 2.0, 3)
    assert isinstance(loss, DeepSupervisionLoss)
    expected = 2 / 3 * base(logits, target) + 1 / 3 * base(small, target[..., ::2, ::2, ::2])
    torch.testing.assert_close(loss([logits, small, torch.zeros(2, 3, 2, 2, 2)], target), expected)
    # one tensor (eval mode): the loss of that output alone
    torch.testing.assert_close(loss(logits, target), base(logits, target))


def test_deep_supervision_checks_the_number_of_outputs() -> None:
    loss = DeepSupervisionLoss(SegmentationLoss("classes", "dice_ce"), 3)
    with pytest.raises(ValueError, match="expected 3 outputs, got 2"):
        loss([torch.zeros(1, 4, 4, 4, 4)] * 2, torch.zeros(1, 4, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_outputs"):
        DeepSupervisionLoss(SegmentationLoss("classes", "dice_ce"), 0)


# --- construction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2])
def test_build_loss_accepts_a_single_tensor_or_a_list(n: int) -> None:
    logits, classes = class_batch()
    loss = build_loss("classes", "dice_focal", 2.0, n)
    expected = SegmentationLoss("classes", "dice_focal", 2.0)(logits, classes)
    torch.testing.assert_close(loss(logits, classes), expected)
    if n <= 1:
        torch.testing.assert_close(loss([logits], classes), expected)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("labels", "dice_ce", 2.0, 1), "target"),
        (("regions", "dice", 2.0, 1), "kind"),
        (("regions", "dice_focal", -1.0, 1), "focal_gamma"),
        (("regions", "dice_focal", float("nan"), 1), "focal_gamma"),
        (("regions", "dice_ce", 2.0, -1), "deep_supervision_outputs"),
        (("regions", "dice_ce", 2.0, 1.5), "deep_supervision_outputs"),
    ],
)
def test_build_loss_rejects_bad_arguments(args: tuple[Any, ...], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        build_loss(*args)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("voxels", "dice_ce"), "target"),
        (("classes", "ce"), "kind"),
        (("classes", "dice_focal", -2), "focal_gamma"),
    ],
)
def test_segmentation_loss_rejects_bad_arguments(args: tuple[Any, ...], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SegmentationLoss(*args)
