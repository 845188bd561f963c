"""One parameterised UNet family; UNet, ResUNet and Attention UNet differ only by the block and the gate.

Layout, for ``depth`` resolution levels with widths ``w[l] = min(base_width * 2**l, max_width)`` (``w[0] =
full_res_width`` when given)::

    level 0    block(in → w0) ───────── skip ─→ [gate] → cat → block(2·w0 → w0) → head → logits
    level 1    down → block(w1 → w1) ── skip ─→ [gate] → cat → block(2·w1 → w1) → head (deep supervision)
    ...                                            ↑ up(w[l+1] → w[l]) (also the gating signal)
    level d-1  down → block (bottleneck) ──────────┘

- ``down`` is a strided (2) 3×3×3 convolution + norm + LeakyReLU, never max-pooling;
- ``up`` is a transposed convolution (kernel 2, stride 2), never trilinear or nearest interpolation, so
  the CUDA backward pass has deterministic kernels under ``torch.use_deterministic_algorithms(True)``;
- skips are concatenated (skip first, then the upsampled features); with ``gate="additive"`` each skip is
  first multiplied by the coefficients of an :class:`~bratseg.models.attention.AttentionGate` whose gating
  signal is the upsampled coarser level (Attention U-Net, Oktay et al. 2018);
- each decoder level has its own 1×1×1 output head; the full-resolution head gives the logits and the others
  are used for deep supervision only. The heads always exist, so a checkpoint does not depend on
  ``deep_supervision``, which is a runtime switch.

``spatial_dims=2`` builds the same network with 2D convolutions over ``(B, C, X, Y)`` slices, the core of
:class:`~bratseg.models.slices.SliceUNet`.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from bratseg.errors import check_choice
from bratseg.models.attention import AttentionGate
from bratseg.models.base import SegmentationNet, check_bool, check_fraction, check_positive
from bratseg.models.blocks import (
    BLOCKS,
    NEGATIVE_SLOPE,
    NORMS,
    ConvNormAct,
    check_spatial_dims,
    conv_class,
    make_block,
    transposed_conv_class,
)

GateKind = Literal["none", "additive"]
GATES: tuple[str, ...] = get_args(GateKind)

_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm2d, nn.BatchNorm3d)


def _initialise(root: nn.Module) -> None:
    """Kaiming normal (``a=0.01``, fan-in) convolution weights, zero biases, unit/zero affine norms, in module
    order."""
    for module in root.modules():
        if isinstance(module, _CONVS):
            nn.init.kaiming_normal_(module.weight, a=NEGATIVE_SLOPE)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class UNet3D(SegmentationNet):
    """3D UNet (``block="plain"``), residual UNet (``block="residual"``) or Attention UNet
    (``gate="additive"``) for volumetric segmentation.

    Args:
        in_channels: input channels (the MRI sequences, 4 for BraTS).
        out_channels: output channels (3 regions for sigmoid outputs, 4 classes for softmax outputs).
        depth: resolution levels including the bottleneck (≥ 2); spatial sizes must be divisible by
            ``2**(depth-1)``.
        base_width: channels at full resolution (unless ``full_res_width``); doubled at each level.
        max_width: cap on the channels of any level (≥ ``base_width``).
        full_res_width: channels of the full-resolution level alone (its encoder block, its decoder block and
            the last upsampling), if not ``base_width``; the coarser levels keep ``base_width * 2**l``. Width
            8 makes a CPU training step cheaper (``benchmarks/bench_training_speed.py``), at a cost in
            accuracy that the README's benchmarks section reports.
        block: ``"plain"`` (two conv-norm-LeakyReLU) or ``"residual"`` (the same with an identity or
            1×1×1-projection skip), in the encoder and the decoder alike.
        norm: ``"instance"`` (``InstanceNorm3d(affine=True)``) or ``"batch"`` (``BatchNorm3d``).
        dropout: ``Dropout3d`` probability between the two convolutions of each block, in [0, 1).
        deep_supervision: in training mode, return the logits of every decoder level (see :meth:`forward`).
        gate: ``"none"`` (plain skips) or ``"additive"`` (an attention gate on every skip).
        spatial_dims: 3 (volumes), or 2 for the 2D network over ``(B, C, X, Y)`` slices.

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
        spatial_dims: Literal[2, 3] = 3,
    ) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer of at least 2, got {depth!r}")
        check_spatial_dims(spatial_dims)
        divisor = int(2 ** (depth - 1))
        super().__init__(
            in_channels,
            out_channels,
            divisors=(divisor,) * spatial_dims,
            divisor_rule=f"2**(depth-1) = {divisor}",
        )
        check_positive("base_width", base_width)
        check_positive("max_width", max_width)
        if max_width < base_width:
            raise ValueError(f"max_width ({max_width}) must be at least base_width ({base_width})")
        if full_res_width is not None:
            check_positive("full_res_width", full_res_width)
        check_choice("block", block, BLOCKS)
        check_choice("norm", norm, NORMS)
        check_fraction("dropout", dropout)
        check_bool("deep_supervision", deep_supervision)
        check_choice("gate", gate, GATES)

        self.depth = depth
        self.block = block
        self.norm = norm
        self.gate = gate
        self.spatial_dims = spatial_dims
        self.deep_supervision = deep_supervision
        widths = [min(base_width * 2**level, max_width) for level in range(depth)]
        if full_res_width is not None:
            widths[0] = full_res_width
        self.widths: tuple[int, ...] = tuple(widths)
        w, dims = self.widths, spatial_dims
        dropout = float(dropout)

        self.encoder = nn.ModuleList(
            [make_block(block, in_channels, w[0], norm=norm, dropout=dropout, spatial_dims=dims)]
        )
        self.downsamples = nn.ModuleList()
        for level in range(1, depth):
            self.downsamples.append(
                ConvNormAct(w[level - 1], w[level], norm=norm, stride=2, spatial_dims=dims)
            )
            self.encoder.append(
                make_block(block, w[level], w[level], norm=norm, dropout=dropout, spatial_dims=dims)
            )
        # Decoder modules are indexed by the level they produce (0 = full resolution).
        up, conv = transposed_conv_class(dims), conv_class(dims)
        self.upsamples = nn.ModuleList(
            [up(w[level + 1], w[level], kernel_size=2, stride=2) for level in range(depth - 1)]
        )
        self.decoder = nn.ModuleList(
            [
                make_block(block, 2 * w[level], w[level], norm=norm, dropout=dropout, spatial_dims=dims)
                for level in range(depth - 1)
            ]
        )
        self.heads = nn.ModuleList(
            [conv(w[level], out_channels, kernel_size=1) for level in range(depth - 1)]
        )
        # Gates come last, after the UNet's own initialisation: with or without them, the same seed gives the
        # same UNet weights, so the Attention UNet differs from the UNet by its gates only.
        self.gates = nn.ModuleList()
        self.reset_parameters()
        if gate == "additive":
            self.gates.extend(
                AttentionGate(w[level], w[level], max(w[level] // 2, 1), dims) for level in range(depth - 1)
            )
            _initialise(self.gates)

    @property
    def supports_channels_last(self) -> bool:
        """The 3D members: their convolutions, norms (:mod:`bratseg.models.norm`), gates and concatenations
        all keep channels-last 3D."""
        return self.spatial_dims == 3

    @property
    def n_outputs(self) -> int:
        """Number of logits tensors :meth:`forward` returns in training mode (``depth-1`` with deep
        supervision, else 1)."""
        return self.depth - 1 if self.deep_supervision else 1

    def reset_parameters(self) -> None:
        """Initialise deterministically from torch's global seed.

        Convolutions and transposed convolutions: Kaiming normal (``a=0.01``, fan-in); biases: zeros; affine
        norm weights: ones, biases: zeros.
        """
        _initialise(self)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a batch of volumes.

        Args:
            x: ``(B, in_channels, X, Y, Z)`` with ``X, Y, Z`` divisible by ``2**(depth-1)``
                (``(B, in_channels, X, Y)`` for ``spatial_dims=2``).

        Returns:
            Logits ``(B, out_channels, X, Y, Z)``; with deep supervision in training mode, the list of
            ``depth-1`` logits ``[(B, out_channels, X, Y, Z), (…, X/2, Y/2, Z/2), (…, X/4, …), …]``,
            full resolution first.

        Raises:
            ValueError: if the shape of ``x`` does not fit (the message names the size and the requirement).
        """
        self.check_input(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        supervise = self.deep_supervision and self.training
        skips: list[Tensor] = [self.encoder[0](x)]
        for down, block in zip(self.downsamples, self.encoder[1:], strict=True):
            skips.append(block(down(skips[-1])))
        h = skips.pop()
        outputs: list[Tensor] = []
        for level in reversed(range(self.depth - 1)):
            h = self.upsamples[level](h)
            skip = self.gates[level](skips[level], h) if self.gates else skips[level]
            h = self.decoder[level](torch.cat([skip, h], dim=1))
            if supervise or level == 0:
                outputs.append(self.heads[level](h))
        if supervise:
            return outputs[::-1]
        return outputs[-1]
