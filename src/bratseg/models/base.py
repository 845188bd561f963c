"""The forward contract that every network of :mod:`bratseg.models` keeps, whatever its origin.

- input ``(B, in_channels, X, Y, Z)`` (``(B, in_channels, X, Y)`` for the 2D core of the slice network), every
  spatial size a multiple of the network's divisor along that axis, else ``ValueError`` naming size and rule;
- output: logits ``(B, out_channels, X, Y, Z)``; in training mode with deep supervision, a list of
  :attr:`~SegmentationNet.n_outputs` logits, full resolution first, each a lower resolution of the input;
- :attr:`~SegmentationNet.size_divisor` and :attr:`~SegmentationNet.n_outputs` as in the UNet family;
- :meth:`~SegmentationNet.set_channels_last` switches a network that supports it to channels-last 3D weights
  and activations (the same function, other kernels: results differ in rounding only).

The training loss (:func:`bratseg.training.losses.build_loss`), the sliding-window inference and the
checkpoint loader rely on nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

_AXES = "XYZ"


def check_positive(name: str, value: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer ≥ 1 (``bool`` is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def check_bool(name: str, value: bool) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a ``bool``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


class SegmentationNet(nn.Module):
    """Base of every network: the input check and the properties of the forward contract (module docstring).

    Args:
        in_channels: input channels (4 MRI sequences for BraTS), ≥ 1.
        out_channels: output channels (3 regions or 4 classes), ≥ 1.
        divisors: per spatial axis, the integer every input size along it must be a multiple of (1: any).
        divisor_rule: how the divisor follows from the settings, for the error message
            (e.g. ``"2**(depth-1) = 8"``).

    Raises:
        ValueError: naming the argument, if a channel count is not a positive integer.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, divisors: Sequence[int], divisor_rule: str
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("out_channels", out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_divisors: tuple[int, ...] = tuple(int(d) for d in divisors)
        self.divisor_rule = divisor_rule
        self.channels_last = False

    @property
    def supports_channels_last(self) -> bool:
        """Whether :meth:`set_channels_last` can switch this network to channels-last 3D (only networks
        whose every layer keeps that layout, so none falls back to copies or imprecise kernels)."""
        return False

    def set_channels_last(self, enabled: bool) -> bool:
        """Run in channels-last 3D (weights now, inputs at each forward) when ``enabled`` and supported,
        else in PyTorch's default contiguous layout; returns whether channels-last is on."""
        check_bool("enabled", enabled)
        on = enabled and self.supports_channels_last
        self.to(memory_format=torch.channels_last_3d if on else torch.contiguous_format)  # type: ignore[call-overload]
        self.channels_last = on
        return on

    @property
    def size_divisor(self) -> int:
        """The input size along X and Y (and along Z, for the 3D networks) must be a multiple of this."""
        return self.spatial_divisors[0]

    @property
    def n_outputs(self) -> int:
        """Number of logits tensors the forward pass returns in training mode (1 without deep supervision)."""
        return 1

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, *spatial)`` with each size a multiple of
        its :attr:`spatial_divisors` entry."""
        n = len(self.spatial_divisors)
        if x.ndim != 2 + n:
            layout = ", ".join(("B", "C", *_AXES[:n]))
            raise ValueError(f"input must have shape ({layout}), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {self.in_channels}")
        spatial = tuple(int(s) for s in x.shape[2:])
        if any(s % d for s, d in zip(spatial, self.spatial_divisors, strict=True)):
            axes = [a for a, d in zip(_AXES, self.spatial_divisors, strict=False) if d > 1]
            where = "every axis" if len(axes) == n else " and ".join(axes)
            raise ValueError(
                f"input spatial size {spatial} must be divisible by {self.divisor_rule} along {where}"
            )


def use_channels_last(model: nn.Module, enabled: bool, device: torch.device) -> bool:
    """Switch ``model`` to channels-last 3D when ``enabled``, on CPU, and supported (a
    :class:`SegmentationNet` whose :attr:`~SegmentationNet.supports_channels_last`), else to the contiguous
    layout; returns whether channels-last is on. On CUDA networks stay contiguous (not measured there)."""
    if not isinstance(model, SegmentationNet):
        return False
    return model.set_channels_last(enabled and device.type == "cpu")
