"""The layout-keeping instance norm: the built-in function on channels-first inputs, bit for bit; on
channels-last inputs a channels-last output whose values and gradients match a float64 reference, also for
activations whose mean dwarfs their spread (where ``GroupNorm(C, C)``'s channels-last backward loses 1e-2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bratseg.models.norm import CHANNELS_LAST, InstanceNorm3d, is_channels_last

SHAPE = (2, 5, 7, 6, 9)


def _pair(seed: int = 0) -> tuple[InstanceNorm3d, nn.InstanceNorm3d]:
    """Ours and torch's, with the same random affine parameters."""
    torch.manual_seed(seed)
    ours, torchs = InstanceNorm3d(SHAPE[1]), nn.InstanceNorm3d(SHAPE[1], affine=True)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-1.0, 1.0)
    torchs.load_state_dict(ours.state_dict())
    return ours, torchs


def _run(norm: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    norm.zero_grad()
    y = norm(x)
    y.backward(dy)
    return y.detach(), x.grad, norm.weight.grad, norm.bias.grad  # type: ignore[return-value]


def test_is_an_affine_instance_norm_with_torchs_state():
    ours, torchs = _pair()
    assert isinstance(ours, nn.InstanceNorm3d) and ours.affine and not ours.track_running_stats
    assert ours.state_dict().keys() == torchs.state_dict().keys() == {"weight", "bias"}


def test_channels_first_input_takes_the_builtin_path_bit_for_bit():
    ours, torchs = _pair()
    x, dy = torch.randn(SHAPE) * 3 + 2, torch.randn(SHAPE)
    for a, b in zip(_run(ours, x, dy), _run(torchs, x, dy), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_channels_last_matches_float64_and_keeps_the_layout(offset: float):
    ours, torchs = _pair()
    x, dy = torch.randn(SHAPE) * 3 + offset, torch.randn(SHAPE)
    got = _run(ours, x.contiguous(memory_format=CHANNELS_LAST), dy.contiguous(memory_format=CHANNELS_LAST))
    want = _run(torchs.double(), x.double(), dy.double())
    assert is_channels_last(got[0]) and is_channels_last(got[1])
    for name, a, b in zip(("output", "input grad", "weight grad", "bias grad"), got, want, strict=True):
        error = float((a.double() - b).abs().max() / b.abs().max())
        assert error < 1e-4, f"{name}: relative error {error:.2g}"


def test_samples_are_normalised_independently_and_repeatably():
    ours, _ = _pair()
    x = (torch.randn(3, *SHAPE[1:]) * 2 + 5).contiguous(memory_format=CHANNELS_LAST)
    whole = ours(x)
    assert torch.equal(whole, ours(x))
    for n in range(3):
        assert torch.equal(whole[n : n + 1], ours(x[n : n + 1]))


def test_is_channels_last_needs_a_real_channels_last_layout():
    x = torch.randn(SHAPE)
    assert not is_channels_last(x)
    assert is_channels_last(x.contiguous(memory_format=CHANNELS_LAST))
    assert not is_channels_last(torch.randn(2, 1, 3, 3, 3).contiguous(memory_format=CHANNELS_LAST))  # both
    assert not is_channels_last(torch.randn(2, 5, 7, 6))


def test_wrong_channel_count_is_a_one_line_error():
    ours, _ = _pair()
    x = torch.randn(2, 4, 5, 5, 5).contiguous(memory_format=CHANNELS_LAST)
    with pytest.raises(ValueError, match=r"expected 5 channels, got shape \(2, 4, 5, 5, 5\)"):
        ours(x)
