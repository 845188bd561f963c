"""The shared input check and argument checks of every network (bratseg.models.base)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bratseg.models.base import SegmentationNet, check_bool, check_fraction, check_positive


@pytest.mark.parametrize(
    ("divisors", "rule", "shape", "message"),
    [
        (
            (8, 8, 8),
            "2**(depth-1) = 8",
            (1, 4, 60, 64, 64),
            r"\(60, 64, 64\) must be divisible by 2\*\*\(depth-1\) = 8 along every axis",
        ),
        (
            (8, 8, 1),
            "2**(depth-1) = 8",
            (1, 4, 16, 12, 5),
            r"\(16, 12, 5\) must be divisible by 2\*\*\(depth-1\) = 8 along X and Y",
        ),
        ((32, 32, 32), "32", (2, 4, 48, 64, 64), r"\(48, 64, 64\) must be divisible by 32 along every axis"),
        ((4, 4), "4", (1, 4, 8, 6), r"\(8, 6\) must be divisible by 4 along every axis"),
        ((4, 4, 4), "4", (1, 3, 8, 8, 8), "input has 3 channels, the model expects 4"),
        ((4, 4, 4), "4", (4, 8, 8, 8), r"input must have shape \(B, C, X, Y, Z\), got \(4, 8, 8, 8\)"),
        ((4, 4), "4", (1, 4, 8, 8, 8), r"input must have shape \(B, C, X, Y\)"),
    ],
)
def test_check_input_names_size_and_rule(
    divisors: tuple[int, ...], rule: str, shape: tuple[int, ...], message: str
) -> None:
    net = SegmentationNet(4, 3, divisors=divisors, divisor_rule=rule)
    with pytest.raises(ValueError, match=message):
        net.check_input(torch.zeros(shape))


@pytest.mark.parametrize(
    ("divisors", "shape"),
    [((8, 8, 8), (2, 4, 16, 8, 24)), ((8, 8, 1), (1, 4, 8, 16, 1)), ((2, 2), (1, 4, 2, 4))],
)
def test_check_input_accepts_fitting_shapes(divisors: tuple[int, ...], shape: tuple[int, ...]) -> None:
    net = SegmentationNet(4, 3, divisors=divisors, divisor_rule="r")
    net.check_input(torch.zeros(shape))
    assert net.size_divisor == divisors[0]
    assert net.spatial_divisors == divisors
    assert net.n_outputs == 1


@pytest.mark.parametrize(
    ("args", "argument"), [((0, 3), "in_channels"), ((4, -1), "out_channels"), ((True, 3), "in_channels")]
)
def test_channel_counts_are_checked(args: tuple[Any, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SegmentationNet(*args, divisors=(1, 1, 1), divisor_rule="r")


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "3"])
def test_check_positive(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^width must be a positive integer"):
        check_positive("width", value)
    check_positive("width", 1)


@pytest.mark.parametrize("value", [-0.1, 1.0, True, "0.2", None])
def test_check_fraction(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^rate must lie in \[0, 1\)"):
        check_fraction("rate", value)
    check_fraction("rate", 0)
    check_fraction("rate", 0.99)


@pytest.mark.parametrize("value", [0, 1, "yes", None])
def test_check_bool(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^flag must be a bool"):
        check_bool("flag", value)
    check_bool("flag", False)
