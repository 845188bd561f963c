"""Additive attention gate on a UNet skip connection (Oktay et al., "Attention U-Net: Learning Where to Look
for the Pancreas", MIDL 2018, eq. 1–2).

For a skip ``x`` and a gating signal ``g`` at the same resolution::

    q     = ψᵀ · relu(W_xᵀ x + W_gᵀ g + b_g) + b_ψ      (1×1×1 convolutions, F_int intermediate channels)
    α     = sigmoid(q)                                  (B, 1, X, Y, Z): one coefficient per voxel
    x̂     = α · x

In the paper ``g`` comes from the next coarser level and ``W_x`` is strided, with ``α`` resampled back by
trilinear interpolation. Here ``g`` is that coarser level already brought to the skip's resolution by the
decoder's transposed convolution (as in MONAI's ``AttentionUnet``), so no interpolation is needed: the CUDA
backward of trilinear interpolation is not deterministic, that of a transposed convolution is.
"""

from __future__ import annotations

from torch import Tensor, nn

from bratseg.models.base import check_positive
from bratseg.models.blocks import conv_class


class AttentionGate(nn.Module):
    """Additive attention gate: ``x · sigmoid(ψ(relu(W_x x + W_g g + b_g)) + b_ψ)``.

    Args:
        skip_channels: channels of the skip ``x``.
        gate_channels: channels of the gating signal ``g``.
        inter_channels: intermediate channels ``F_int`` (the paper uses half the skip's).
        spatial_dims: 3, or 2 for the slice-wise network.

    Shapes: ``x (B, skip_channels, *S)``, ``g (B, gate_channels, *S)`` → ``(B, skip_channels, *S)``.

    Raises:
        ValueError: naming the argument, if a channel count is not a positive integer.
    """

    def __init__(
        self, skip_channels: int, gate_channels: int, inter_channels: int, spatial_dims: int = 3
    ) -> None:
        super().__init__()
        check_positive("skip_channels", skip_channels)
        check_positive("gate_channels", gate_channels)
        check_positive("inter_channels", inter_channels)
        conv = conv_class(spatial_dims)
        self.w_x = conv(skip_channels, inter_channels, kernel_size=1, bias=False)
        self.w_g = conv(gate_channels, inter_channels, kernel_size=1, bias=True)  # bias: b_g
        self.psi = conv(inter_channels, 1, kernel_size=1, bias=True)  # bias: b_ψ
        self.act = nn.ReLU()

    def coefficients(self, x: Tensor, g: Tensor) -> Tensor:
        """Attention coefficients ``α`` in (0, 1), shape ``(B, 1, *S)``.

        Raises:
            ValueError: if ``x`` and ``g`` differ in batch or spatial size.
        """
        if x.shape[0] != g.shape[0] or x.shape[2:] != g.shape[2:]:
            raise ValueError(
                f"skip {tuple(x.shape)} and gating signal {tuple(g.shape)} must share batch and spatial size"
            )
        out: Tensor = self.psi(self.act(self.w_x(x) + self.w_g(g))).sigmoid()
        return out

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """The gated skip ``α · x``, shape of ``x``."""
        return x * self.coefficients(x, g)
