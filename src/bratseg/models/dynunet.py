"""MONAI's DynUNet (the nnU-Net network: Isensee et al., Nature Methods 2021) behind the project's forward
contract.

The plan (kernel sizes and strides per level) follows nnU-Net's rule for an isotropic patch, which the
cache always provides (its volumes are resampled to isotropic voxels): ``depth`` levels of 3×3×3
convolutions, stride 1 at the input block and 2 at every other level, so spatial sizes must be divisible by
``2**(depth-1)`` (:func:`plan`). Upsampling is by transposed convolution (kernel = stride = 2).

Deep supervision: MONAI returns the auxiliary logits interpolated to full resolution and stacked; the wrapper
returns them at their own resolutions instead, full resolution first, like :class:`~bratseg.models.UNet3D`
(the loss downsamples the target), so no interpolation enters the graph.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from bratseg.errors import check_choice
from bratseg.models.base import SegmentationNet, check_bool, check_fraction, check_positive
from bratseg.models.blocks import NORMS


def plan(depth: int) -> tuple[list[int], list[int]]:
    """Kernel sizes and strides of the ``depth`` levels (input block first, bottleneck last).

    Raises:
        ValueError: if ``depth`` is not an integer ≥ 3 (DynUNet needs a down- and an upsampling level).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3:
        raise ValueError(f"depth must be an integer of at least 3, got {depth!r}")
    return [3] * depth, [1] + [2] * (depth - 1)


class DynUNet(SegmentationNet):
    """nnU-Net's network over ``(B, C, X, Y, Z)`` volumes, wrapping ``monai.networks.nets.DynUNet``.

    Args:
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: output channels (3 regions or 4 classes).
        depth: resolution levels including the bottleneck (≥ 3); see :func:`plan`.
        base_width: channels at full resolution, doubled at each level (nnU-Net: 32).
        max_width: cap on the channels of any level (nnU-Net: 320), ≥ ``base_width``.
        norm: ``"instance"`` (affine) or ``"batch"``.
        dropout: dropout probability in every convolution block, in [0, 1).
        res_block: residual convolution blocks instead of plain ones.
        deep_supervision: in training mode, also return the logits of the ``depth-2`` decoder levels below
            full resolution (see :meth:`forward`).

    Raises:
        ValueError: naming the argument, if one is out of range or unknown.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        base_width: int = 16,
        max_width: int = 256,
        norm: Literal["instance", "batch"] = "instance",
        dropout: float = 0.0,
        res_block: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        kernels, strides = plan(depth)
        divisor = int(2 ** (depth - 1))
        super().__init__(
            in_channels, out_channels, divisors=(divisor,) * 3, divisor_rule=f"2**(depth-1) = {divisor}"
        )
        check_positive("base_width", base_width)
        check_positive("max_width", max_width)
        if max_width < base_width:
            raise ValueError(f"max_width ({max_width}) must be at least base_width ({base_width})")
        check_choice("norm", norm, NORMS)
        check_fraction("dropout", dropout)
        check_bool("res_block", res_block)
        check_bool("deep_supervision", deep_supervision)

        from monai.networks.nets.dynunet import DynUNet as MonaiDynUNet

        self.depth = depth
        self.norm = norm
        self.deep_supervision = deep_supervision
        self.widths: tuple[int, ...] = tuple(min(base_width * 2**level, max_width) for level in range(depth))
        self.net = MonaiDynUNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernels,
            strides=strides,
            upsample_kernel_size=strides[1:],
            filters=list(self.widths),
            dropout=float(dropout) if dropout > 0 else None,
            norm_name=("INSTANCE", {"affine": True}) if norm == "instance" else "BATCH",
            deep_supervision=deep_supervision,
            deep_supr_num=depth - 2,
            res_block=res_block,
        )

    @property
    def n_outputs(self) -> int:
        """Number of logits tensors :meth:`forward` returns in training mode (``depth-1`` with deep
        supervision, else 1)."""
        return self.depth - 1 if self.deep_supervision else 1

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a batch of volumes.

        Args:
            x: ``(B, in_channels, X, Y, Z)`` with ``X, Y, Z`` divisible by ``2**(depth-1)``.

        Returns:
            Logits ``(B, out_channels, X, Y, Z)``; with deep supervision in training mode, the list of
            ``depth-1`` logits ``[(B, out_channels, X, Y, Z), (…, X/2, Y/2, Z/2), (…, X/4, …), …]``,
            full resolution first.

        Raises:
            ValueError: if the shape of ``x`` does not fit (the message names the size and the requirement).
        """
        self.check_input(x)
        if not (self.deep_supervision and self.training):
            out: Tensor = self.net(x)
            return out
        # MONAI's forward without its interpolation: the skip layers fill `heads` (coarser levels) in place.
        full: Tensor = self.net.output_block(self.net.skip_layers(x))
        return [full, *self.net.heads]
