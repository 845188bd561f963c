"""MONAI's SegResNet (Myronenko, "3D MRI brain tumor segmentation using autoencoder regularization", BrainLes
2018; the encoder–decoder without the VAE branch) behind the project's forward contract.

Upsampling is by transposed convolution (``UpsampleMode.DECONV``): MONAI's default ``nontrainable`` mode
interpolates linearly, whose CUDA backward is not deterministic. SegResNet has a single output, so it has no
deep supervision (the ``segresnet`` params section has no such key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from torch import Tensor

from bratseg.errors import check_choice
from bratseg.models.base import SegmentationNet, check_fraction, check_positive

SegResNetNorm = Literal["group", "instance", "batch"]
SEGRESNET_NORMS: tuple[str, ...] = get_args(SegResNetNorm)


def _check_counts(name: str, values: Sequence[int], minimum_length: int) -> tuple[int, ...]:
    counts = tuple(values)
    if len(counts) < minimum_length or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in counts
    ):
        raise ValueError(f"{name} must be at least {minimum_length} positive integers, got {list(values)!r}")
    return counts


class SegResNet(SegmentationNet):
    """SegResNet over ``(B, C, X, Y, Z)`` volumes, wrapping ``monai.networks.nets.SegResNet``.

    Args:
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: output channels (3 regions or 4 classes), the final 1×1×1 convolution.
        init_filters: channels after the first convolution; doubled at each of the ``len(blocks_down)``
            levels.
        blocks_down: residual blocks per encoder level (≥ 2 levels); spatial sizes must be divisible by
            ``2**(len(blocks_down)-1)``.
        blocks_up: residual blocks per decoder level, ``len(blocks_down) - 1`` entries.
        norm: ``"group"`` (``GroupNorm`` with ``num_groups``), ``"instance"`` (affine) or ``"batch"``.
        num_groups: groups of ``GroupNorm``; must divide ``init_filters`` (used with ``norm="group"`` only).
        dropout: dropout probability after the first convolution, in [0, 1).

    Raises:
        ValueError: naming the argument, if one is out of range or unknown.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        init_filters: int = 8,
        blocks_down: Sequence[int] = (1, 2, 2, 4),
        blocks_up: Sequence[int] = (1, 1, 1),
        norm: Literal["group", "instance", "batch"] = "group",
        num_groups: int = 8,
        dropout: float = 0.0,
    ) -> None:
        down = _check_counts("blocks_down", blocks_down, 2)
        divisor = int(2 ** (len(down) - 1))
        super().__init__(
            in_channels,
            out_channels,
            divisors=(divisor,) * 3,
            divisor_rule=f"2**(len(blocks_down)-1) = {divisor}",
        )
        up = _check_counts("blocks_up", blocks_up, 1)
        if len(up) != len(down) - 1:
            raise ValueError(
                f"blocks_up must have len(blocks_down) - 1 = {len(down) - 1} entries, got {list(blocks_up)!r}"
            )
        check_positive("init_filters", init_filters)
        check_choice("norm", norm, SEGRESNET_NORMS)
        check_positive("num_groups", num_groups)
        if norm == "group" and init_filters % num_groups:
            raise ValueError(f"num_groups ({num_groups}) must divide init_filters ({init_filters})")
        check_fraction("dropout", dropout)

        from monai.networks.nets.segresnet import SegResNet as MonaiSegResNet
        from monai.utils import UpsampleMode

        norm_args: dict[str, tuple[str, dict[str, object]]] = {
            "group": ("group", {"num_groups": num_groups}),
            "instance": ("instance", {"affine": True}),
            "batch": ("batch", {}),
        }
        self.norm = norm
        self.blocks_down, self.blocks_up = down, up
        self.net = MonaiSegResNet(
            spatial_dims=3,
            init_filters=init_filters,
            in_channels=in_channels,
            out_channels=out_channels,
            dropout_prob=float(dropout) if dropout > 0 else None,
            norm=norm_args[norm],
            blocks_down=down,
            blocks_up=up,
            upsample_mode=UpsampleMode.DECONV,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, out_channels, X, Y, Z)`` for ``x`` ``(B, in_channels, X, Y, Z)``.

        Raises:
            ValueError: if the shape of ``x`` does not fit (the message names the size and the requirement).
        """
        self.check_input(x)
        out: Tensor = self.net(x)
        return out
