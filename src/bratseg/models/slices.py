"""2D slice baseline: a 2D member of the UNet family applied to every axial slice of a volume.

The network takes and returns volumes like the 3D networks, ``(B, C, X, Y, Z)`` → ``(B, K, X, Y, Z)``: the
axial axis ``Z`` (the last one of the cached ``(C, X, Y, Z)`` volumes) is folded into the batch, each slice
``(C, X, Y)`` is segmented on its own by a 2D :class:`~bratseg.models.unet.UNet3D` (``spatial_dims=2``), and
the slices are stacked back. So the patch sampler, the losses, the sliding-window inference and the 3D
evaluation are the same as for the 3D networks: a patch ``[P, P, S]`` is a stack of ``S`` training slices, and
a 2D model is scored on the same split and metrics as a 3D one. No information crosses slices.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from bratseg.models.base import SegmentationNet
from bratseg.models.unet import UNet3D


class SliceUNet(SegmentationNet):
    """Slice-wise 2D UNet over volumes.

    Args:
        in_channels: input channels (4 MRI sequences for BraTS).
        out_channels: output channels (3 regions or 4 classes).
        depth: resolution levels of the 2D UNet (≥ 2); ``X`` and ``Y`` must be divisible by ``2**(depth-1)``,
            ``Z`` is free (any number of slices, 1 included).
        base_width, max_width, full_res_width, block, norm, dropout, deep_supervision, gate: as for
            :class:`~bratseg.models.unet.UNet3D` (with ``InstanceNorm2d`` / ``BatchNorm2d``, ``Dropout2d``).

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
        full_res_width: int | None = None,
        block: Literal["plain", "residual"] = "plain",
        norm: Literal["instance", "batch"] = "instance",
        dropout: float = 0.0,
        deep_supervision: bool = False,
        gate: Literal["none", "additive"] = "none",
    ) -> None:
        core = UNet3D(
            in_channels,
            out_channels,
            depth=depth,
            base_width=base_width,
            max_width=max_width,
            full_res_width=full_res_width,
            block=block,
            norm=norm,
            dropout=dropout,
            deep_supervision=deep_supervision,
            gate=gate,
            spatial_dims=2,
        )
        divisor = core.size_divisor
        super().__init__(
            in_channels, out_channels, divisors=(divisor, divisor, 1), divisor_rule=core.divisor_rule
        )
        self.net = core

    @property
    def depth(self) -> int:
        return self.net.depth

    @property
    def n_outputs(self) -> int:
        """As for the 2D core: ``depth-1`` with deep supervision, else 1."""
        return self.net.n_outputs

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment every axial slice of a batch of volumes.

        Args:
            x: ``(B, in_channels, X, Y, Z)`` with ``X, Y`` divisible by ``2**(depth-1)``.

        Returns:
            Logits ``(B, out_channels, X, Y, Z)``; with deep supervision in training mode, the list of
            ``depth-1`` logits ``[(B, K, X, Y, Z), (B, K, X/2, Y/2, Z), (B, K, X/4, Y/4, Z), …]`` (only ``X``
            and ``Y`` are downsampled), full resolution first.

        Raises:
            ValueError: if the shape of ``x`` does not fit (the message names the size and the requirement).
        """
        self.check_input(x)
        b, c, sx, sy, sz = x.shape
        slices = x.permute(0, 4, 1, 2, 3).reshape(b * sz, c, sx, sy)
        out = self.net(slices)
        if isinstance(out, list):
            return [self._unfold(o, b, sz) for o in out]
        return self._unfold(out, b, sz)

    @staticmethod
    def _unfold(logits: Tensor, batch: int, n_slices: int) -> Tensor:
        """``(B·Z, K, x, y)`` → ``(B, K, x, y, Z)``."""
        _, k, sx, sy = logits.shape
        return logits.reshape(batch, n_slices, k, sx, sy).permute(0, 2, 3, 4, 1)
