"""Building blocks of the UNet family: convolution + normalisation + activation, plain and residual blocks.

Every block keeps the spatial size unless it is given ``stride=2``; tensors are ``(B, C, X, Y, Z)``, or
``(B, C, X, Y)`` with ``spatial_dims=2`` (the slice-wise 2D member of the family).
Only operations with deterministic CUDA kernels are used (convolutions, normalisation, element-wise ops), so
training runs under ``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor, nn

from bratseg.models.norm import InstanceNorm3d

NormKind = Literal["instance", "batch"]
BlockKind = Literal["plain", "residual"]
NORMS: tuple[str, ...] = get_args(NormKind)
BLOCKS: tuple[str, ...] = get_args(BlockKind)
SPATIAL_DIMS: tuple[int, ...] = (2, 3)

#: Negative slope of every LeakyReLU in the family (nnU-Net's choice).
NEGATIVE_SLOPE = 0.01


def check_spatial_dims(spatial_dims: int) -> None:
    """Raise ``ValueError`` unless ``spatial_dims`` is 2 or 3."""
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise ValueError(f"spatial_dims must be one of {SPATIAL_DIMS}, got {spatial_dims!r}")


def conv_class(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv3d`` or ``nn.Conv2d``."""
    check_spatial_dims(spatial_dims)
    return nn.Conv3d if spatial_dims == 3 else nn.Conv2d


def transposed_conv_class(spatial_dims: int) -> type[nn.ConvTranspose2d] | type[nn.ConvTranspose3d]:
    """``nn.ConvTranspose3d`` or ``nn.ConvTranspose2d``."""
    check_spatial_dims(spatial_dims)
    return nn.ConvTranspose3d if spatial_dims == 3 else nn.ConvTranspose2d


def make_norm(norm: str, channels: int, spatial_dims: int = 3) -> nn.Module:
    """``InstanceNorm3d(affine=True)`` (:class:`bratseg.models.norm.InstanceNorm3d`, which keeps channels-last
    3D inputs channels-last) or ``BatchNorm3d`` over ``channels`` (the 2D ones for ``spatial_dims=2``).

    Raises:
        ValueError: if ``norm`` is not one of :data:`NORMS` or ``spatial_dims`` not 2 or 3.
    """
    check_spatial_dims(spatial_dims)
    if norm == "instance":
        return InstanceNorm3d(channels) if spatial_dims == 3 else nn.InstanceNorm2d(channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm3d(channels) if spatial_dims == 3 else nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def make_dropout(dropout: float, spatial_dims: int = 3) -> nn.Module:
    """Channel dropout (``Dropout3d`` / ``Dropout2d``) with probability ``dropout``; the identity for 0."""
    check_spatial_dims(spatial_dims)
    if dropout <= 0:
        return nn.Identity()
    return nn.Dropout3d(dropout) if spatial_dims == 3 else nn.Dropout2d(dropout)


def conv3(in_channels: int, out_channels: int, stride: int = 1, spatial_dims: int = 3) -> nn.Module:
    """3×3×3 (3×3 for ``spatial_dims=2``) convolution with padding 1 and no bias (a normalisation always
    follows it)."""
    conv = conv_class(spatial_dims)
    return conv(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ConvNormAct(nn.Sequential):
    """3×3×3 convolution → norm → LeakyReLU(0.01).

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X/stride, Y/stride, Z/stride)`` (no ``Z``
    for ``spatial_dims=2``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, norm: str, stride: int = 1, spatial_dims: int = 3
    ) -> None:
        super().__init__(
            conv3(in_channels, out_channels, stride, spatial_dims),
            make_norm(norm, out_channels, spatial_dims),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )


class PlainBlock(nn.Module):
    """Two :class:`ConvNormAct`, with ``Dropout3d`` (``Dropout2d``) between them when ``dropout > 0``.

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X, Y, Z)`` (no ``Z`` for ``spatial_dims=2``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, norm: str, dropout: float = 0.0, spatial_dims: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm=norm, spatial_dims=spatial_dims)
        self.dropout: nn.Module = make_dropout(dropout, spatial_dims)
        self.conv2 = ConvNormAct(out_channels, out_channels, norm=norm, spatial_dims=spatial_dims)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.dropout(self.conv1(x)))
        return out


class ResidualBlock(nn.Module):
    """Pre-addition residual block (ResNet "basic block"): ``act(norm(conv(drop(cna(x)))) + skip(x))``.

    The skip is the identity when the width does not change, otherwise a 1×1×1 convolution + norm projection.

    Shapes: ``(B, in_channels, X, Y, Z)`` → ``(B, out_channels, X, Y, Z)`` (no ``Z`` for ``spatial_dims=2``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, norm: str, dropout: float = 0.0, spatial_dims: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm=norm, spatial_dims=spatial_dims)
        self.dropout: nn.Module = make_dropout(dropout, spatial_dims)
        self.conv2 = conv3(out_channels, out_channels, spatial_dims=spatial_dims)
        self.norm2 = make_norm(norm, out_channels, spatial_dims)
        self.skip: nn.Module
        if in_channels == out_channels:
            self.skip = nn.Identity()
        else:
            conv = conv_class(spatial_dims)
            self.skip = nn.Sequential(
                conv(in_channels, out_channels, kernel_size=1, bias=False),
                make_norm(norm, out_channels, spatial_dims),
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


def make_block(
    block: str, in_channels: int, out_channels: int, *, norm: str, dropout: float, spatial_dims: int = 3
) -> nn.Module:
    """A :class:`PlainBlock` (``"plain"``) or a :class:`ResidualBlock` (``"residual"``).

    Raises:
        ValueError: if ``block`` is not one of :data:`BLOCKS`.
    """
    if block == "plain":
        return PlainBlock(in_channels, out_channels, norm=norm, dropout=dropout, spatial_dims=spatial_dims)
    if block == "residual":
        return ResidualBlock(in_channels, out_channels, norm=norm, dropout=dropout, spatial_dims=spatial_dims)
    raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
