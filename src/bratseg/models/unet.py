"""One parameterised 3D UNet family; the UNet and the ResUNet differ only by the block type.

Layout, for ``depth`` resolution levels with widths ``w[l] = min(base_width * 2**l, max_width)``::

    level 0    block(in → w0) ──────────────── skip ──→ cat → block(2·w0 → w0) → head → logits
    level 1    down → block(w1 → w1) ── skip ──→ cat → block(2·w1 → w1) → head (deep supervision)
    ...                                        ↑ up(w[l+1] → w[l])
    level d-1  down → block (bottleneck) ──────┘

- ``down`` is a strided (2) 3×3×3 convolution + norm + LeakyReLU, never max-pooling;
- ``up`` is a transposed convolution (kernel 2, stride 2), never trilinear or nearest interpolation, so
  the CUDA backward pass has deterministic kernels under ``torch.use_deterministic_algorithms(True)``;
- skips are concatenated (skip first, then the upsampled features);
- each decoder level has its own 1×1×1 output head; the full-resolution head gives the logits and the others
  are used for deep supervision only. The heads always exist, so a checkpoint does not depend on
  ``deep_supervision``, which is a runtime switch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from bratseg.errors import check_choice
from bratseg.models.blocks import BLOCKS, NEGATIVE_SLOPE, NORMS, ConvNormAct, make_block


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class UNet3D(nn.Module):
    """3D UNet (``block="plain"``) or residual UNet (``block="residual"``) for volumetric segmentation.

    Args:
        in_channels: input channels (the MRI sequences, 4 for BraTS).
        out_channels: output channels (3 regions for sigmoid outputs, 4 classes for softmax outputs).
        depth: resolution levels including the bottleneck (≥ 2); spatial sizes must be divisible by
            ``2**(depth-1)``.
        base_width: channels at full resolution; doubled at each level.
        max_width: cap on the channels of any level (≥ ``base_width``).
        block: ``"plain"`` (two conv-norm-LeakyReLU) or ``"residual"`` (the same with an identity or
            1×1×1-projection skip), in the encoder and the decoder alike.
        norm: ``"instance"`` (``InstanceNorm3d(affine=True)``) or ``"batch"`` (``BatchNorm3d``).
        dropout: ``Dropout3d`` probability between the two convolutions of each block, in [0, 1).
        deep_supervision: in training mode, return the logits of every decoder level (see :meth:`forward`).

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
        block: Literal["plain", "residual"] = "plain",
        norm: Literal["instance", "batch"] = "instance",
        dropout: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        _check_positive("in_channels", in_channels)
        _check_positive("out_channels", out_channels)
        _check_positive("base_width", base_width)
        _check_positive("max_width", max_width)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer of at least 2, got {depth!r}")
        if max_width < base_width:
            raise ValueError(f"max_width ({max_width}) must be at least base_width ({base_width})")
        check_choice("block", block, BLOCKS)
        check_choice("norm", norm, NORMS)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.block = block
        self.norm = norm
        self.deep_supervision = bool(deep_supervision)
        self.widths: tuple[int, ...] = tuple(min(base_width * 2**level, max_width) for level in range(depth))
        w = self.widths
        dropout = float(dropout)

        self.encoder = nn.ModuleList([make_block(block, in_channels, w[0], norm=norm, dropout=dropout)])
        self.downsamples = nn.ModuleList()
        for level in range(1, depth):
            self.downsamples.append(ConvNormAct(w[level - 1], w[level], norm=norm, stride=2))
            self.encoder.append(make_block(block, w[level], w[level], norm=norm, dropout=dropout))
        # Decoder modules are indexed by the level they produce (0 = full resolution).
        self.upsamples = nn.ModuleList(
            [
                nn.ConvTranspose3d(w[level + 1], w[level], kernel_size=2, stride=2)
                for level in range(depth - 1)
            ]
        )
        self.decoder = nn.ModuleList(
            [
                make_block(block, 2 * w[level], w[level], norm=norm, dropout=dropout)
                for level in range(depth - 1)
            ]
        )
        self.heads = nn.ModuleList(
            [nn.Conv3d(w[level], out_channels, kernel_size=1) for level in range(depth - 1)]
        )
        self.reset_parameters()

    @property
    def size_divisor(self) -> int:
        """Every spatial size of the input must be a multiple of this: ``2**(depth-1)``."""
        return int(2 ** (self.depth - 1))

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
        for module in self.modules():
            if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):
                nn.init.kaiming_normal_(module.weight, a=NEGATIVE_SLOPE)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.InstanceNorm3d | nn.BatchNorm3d) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, X, Y, Z)`` with sizes divisible by
        :attr:`size_divisor`."""
        if x.ndim != 5:
            raise ValueError(f"input must have shape (B, C, X, Y, Z), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {self.in_channels}")
        spatial = tuple(int(s) for s in x.shape[2:])
        divisor = self.size_divisor
        if any(s % divisor for s in spatial):
            raise ValueError(
                f"input spatial size {spatial} must be divisible by 2**(depth-1) = {divisor} along every axis"
            )

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
        supervise = self.deep_supervision and self.training
        skips: list[Tensor] = [self.encoder[0](x)]
        for down, block in zip(self.downsamples, self.encoder[1:], strict=True):
            skips.append(block(down(skips[-1])))
        h = skips.pop()
        outputs: list[Tensor] = []
        for level in reversed(range(self.depth - 1)):
            h = self.upsamples[level](h)
            h = self.decoder[level](torch.cat([skips[level], h], dim=1))
            if supervise or level == 0:
                outputs.append(self.heads[level](h))
        if supervise:
            return outputs[::-1]
        return outputs[-1]
