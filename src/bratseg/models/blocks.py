"""Building blocks of the 3D UNet family: convolution + normalisation + activation, plain and residual blocks.

Every block keeps the spatial size unless it is given ``stride=2``; all tensors are ``(B, C, X, Y, Z)``.
Only operations with deterministic CUDA kernels are used (convolutions, normalisation, element-wise ops), so
training runs under ``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor, nn

NormKind = Literal["instance", "batch"]
BlockKind = Literal["plain", "residual"]
NORMS: tuple[str, ...] = get_args(NormKind)
BLOCKS: tuple[str, ...] = get_args(BlockKind)

#: Negative slope of every LeakyReLU in the family (nnU-Net's choice).
NEGATIVE_SLOPE = 0.01


def make_norm(norm: str, channels: int) -> nn.Module:
    """``InstanceNorm3d(affine=True)`` or ``BatchNorm3d`` over ``channels``.

    Raises:
        ValueError: if ``norm`` is not one of :data:`NORMS`.
    """
    if norm == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def conv3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    """3×3×3 convolution with padding 1 and no bias (a normalisation always follows it)."""
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ConvNormAct(nn.Sequential):
    """3×3×3 convolution → norm → LeakyReLU(0.01).

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X/stride, Y/stride, Z/stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, stride: int = 1) -> None:
        super().__init__(
            conv3(in_channels, out_channels, stride),
            make_norm(norm, out_channels),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )


class PlainBlock(nn.Module):
    """Two :class:`ConvNormAct`, with ``Dropout3d`` between them when ``dropout > 0``.

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X, Y, Z)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm=norm)
        self.dropout: nn.Module = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = ConvNormAct(out_channels, out_channels, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.dropout(self.conv1(x)))
        return out


class ResidualBlock(nn.Module):
    """Pre-addition residual block (ResNet "basic block"): ``act(norm(conv(drop(cna(x)))) + skip(x))``.

    The skip is the identity when the width does not change, otherwise a 1×1×1 convolution + norm projection.

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X, Y, Z)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm=norm)
        self.dropout: nn.Module = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3(out_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)
        self.skip: nn.Module
        if in_channels == out_channels:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False), make_norm(norm, out_channels)
            )
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)

    @property
    def has_projection(self) -> bool:
        """Whether the skip path is a 1×1×1 projection rather than the identity."""
        return not isinstance(self.skip, nn.Identity)

    def forward(self, x: Tensor) -> Tensor:
        residual = self.norm2(self.conv2(self.dropout(self.conv1(x))))
        out: Tensor = self.act(residual + self.skip(x))
        return out


def make_block(block: str, in_channels: int, out_channels: int, *, norm: str, dropout: float) -> nn.Module:
    """A :class:`PlainBlock` (``"plain"``) or a :class:`ResidualBlock` (``"residual"``).

    Raises:
        ValueError: if ``block`` is not one of :data:`BLOCKS`.
    """
    if block == "plain":
        return PlainBlock(in_channels, out_channels, norm=norm, dropout=dropout)
    if block == "residual":
        return ResidualBlock(in_channels, out_channels, norm=norm, dropout=dropout)
    raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
