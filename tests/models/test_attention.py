"""The additive attention gate (Oktay et al. 2018, eq. 1-2) and its place in the Attention UNet."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bratseg.models.attention import AttentionGate
from bratseg.models.unet import UNet3D


@pytest.mark.parametrize(
    ("args", "spatial_dims", "x_shape", "g_shape"),
    [
        ((6, 10, 3), 3, (2, 6, 5, 4, 3), (2, 10, 5, 4, 3)),
        ((1, 1, 1), 3, (1, 1, 3, 3, 3), (1, 1, 3, 3, 3)),
        ((4, 8, 2), 2, (3, 4, 7, 5), (3, 8, 7, 5)),
    ],
)
def test_gate_keeps_the_skip_shape(
    args: tuple[int, int, int], spatial_dims: int, x_shape: tuple[int, ...], g_shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    gate = AttentionGate(*args, spatial_dims=spatial_dims)
    x, g = torch.randn(x_shape), torch.randn(g_shape)
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (x_shape[0], 1, *x_shape[2:])
    assert bool(((alpha > 0) & (alpha < 1)).all())
    assert gate(x, g).shape == x_shape


def test_gate_follows_the_published_definition() -> None:
    """alpha = sigmoid(psi^T relu(W_x^T x + W_g^T g + b_g) + b_psi), computed here voxel by voxel."""
    torch.manual_seed(0)
    gate = AttentionGate(3, 5, 4)
    for p in gate.parameters():
        nn.init.normal_(p)
    x, g = torch.randn(2, 3, 4, 3, 2), torch.randn(2, 5, 4, 3, 2)
    w_x = gate.w_x.weight.flatten(1)  # (F_int, C_x)
    w_g, b_g = gate.w_g.weight.flatten(1), gate.w_g.bias
    psi, b_psi = gate.psi.weight.flatten(1), gate.psi.bias
    xv = x.movedim(1, -1)  # (..., C_x)
    gv = g.movedim(1, -1)
    q = torch.relu(xv @ w_x.T + gv @ w_g.T + b_g) @ psi.T + b_psi
    expected = torch.sigmoid(q).movedim(-1, 1)
    torch.testing.assert_close(gate.coefficients(x, g), expected)
    torch.testing.assert_close(gate(x, g), x * expected)


def test_gate_at_zero_passes_half_the_skip() -> None:
    gate = AttentionGate(2, 2, 1)
    with torch.no_grad():
        for p in gate.psi.parameters():
            p.zero_()
    x = torch.randn(1, 2, 3, 3, 3)
    torch.testing.assert_close(gate(x, torch.randn(1, 2, 3, 3, 3)), 0.5 * x)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"skip_channels": 0}, "skip_channels"),
        ({"gate_channels": -1}, "gate_channels"),
        ({"inter_channels": 1.5}, "inter_channels"),
        ({"spatial_dims": 4}, "spatial_dims"),
    ],
)
def test_gate_illegal_arguments(kwargs: dict[str, Any], argument: str) -> None:
    values: dict[str, Any] = {"skip_channels": 4, "gate_channels": 4, "inter_channels": 2, **kwargs}
    with pytest.raises(ValueError, match=argument):
        AttentionGate(**values)


def test_gate_rejects_mismatched_inputs() -> None:
    gate = AttentionGate(2, 2, 1)
    with pytest.raises(ValueError, match=r"skip \(1, 2, 4, 4, 4\) and gating signal \(1, 2, 2, 2, 2\)"):
        gate(torch.randn(1, 2, 4, 4, 4), torch.randn(1, 2, 2, 2, 2))


def test_attention_unet_gates_every_skip_with_the_upsampled_level() -> None:
    torch.manual_seed(0)
    model = UNet3D(2, 3, depth=3, base_width=4, gate="additive").eval()
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    hooks = [
        g.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(i[1].shape))))
        for g in model.gates
    ]
    with torch.no_grad():
        model(torch.randn(1, 2, 8, 8, 8))
    for h in hooks:
        h.remove()
    # decoder order: level 1 (4^3, width 8) then level 0 (8^3, width 4); skip and gating signal alike
    assert seen == [((1, 8, 4, 4, 4), (1, 8, 4, 4, 4)), ((1, 4, 8, 8, 8), (1, 4, 8, 8, 8))]
    assert [g.w_x.out_channels for g in model.gates] == [2, 4]  # F_int = half the skip's channels


def test_gates_change_the_output() -> None:
    """Closing every gate (alpha -> 0) removes the skips: the output changes, so the gates are in the path."""
    torch.manual_seed(0)
    model = UNet3D(2, 3, depth=3, base_width=4, gate="additive").eval()
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        before = model(x)
        for gate in model.gates:
            gate.psi.bias.fill_(-1e4)
        after = model(x)
    assert isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor)
    assert not torch.allclose(before, after)
