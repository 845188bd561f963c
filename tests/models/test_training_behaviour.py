"""Every model trains: bit-identical optimiser steps under deterministic algorithms, bf16 autocast; the UNet
family overfits a tiny synthetic problem (CPU)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from bratseg.config import DynUNetParams, ModelParams, NetParams
from bratseg.models import MODELS, UNet3D, build_model
from bratseg.training.losses import build_loss


def tiny_problem(size: int = 16, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Nested spheres (enhancing rim, necrotic centre, edema shell); the input holds noisy class indicators.

    Returns ``(1, 3, S, S, S)`` float input and ``(1, S, S, S)`` int64 classes 0..3.
    """
    g = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(float(size))] * 3, indexing="ij"))
    radius = ((grid - size / 2) ** 2).sum(0).sqrt() * (16 / size)
    classes = torch.zeros((size,) * 3, dtype=torch.long)
    classes[radius < 6] = 2
    classes[radius < 4] = 3
    classes[radius < 2] = 1
    x = torch.stack([(classes == k).float() for k in (1, 2, 3)])
    x = x + noise * torch.randn(x.shape, generator=g)
    return x[None], classes[None]


def regions_of(classes: torch.Tensor) -> torch.Tensor:
    """``(B, *spatial)`` classes → ``(B, 3, *spatial)`` float WT / TC / ET masks."""
    wt, tc, et = classes > 0, (classes == 1) | (classes == 3), classes == 3
    return torch.stack([wt, tc, et], dim=1).float()


def train_steps(
    tiny_section: Callable[..., ModelParams],
    tiny_spatial: Callable[[str], tuple[int, int, int]],
    name: str,
    steps: int,
    *,
    seed: int = 0,
) -> tuple[nn.Module, torch.Tensor]:
    """``steps`` AdamW steps of ``name`` (every dropout on) on a fixed random batch; the model and its eval
    output on that batch afterwards."""
    torch.manual_seed(seed)
    extra = {"attn_dropout": 0.1, "drop_path": 0.1} if name == "swinunetr" else {}
    model = build_model(name, 4, 3, tiny_section(name, dropout=0.2, **extra))
    loss_fn = build_loss("regions", "dice_focal", 2.0, model.n_outputs)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    spatial = tiny_spatial(name)
    x = torch.randn((2, 4, *spatial), generator=g)
    target = regions_of(torch.randint(0, 4, (2, *spatial), generator=g))
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn(model(x), target).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    return model, out


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.usefixtures("deterministic")
def test_training_steps_are_bit_identical(
    tiny_section: Callable[..., ModelParams], tiny_spatial: Callable[[str], tuple[int, int, int]], name: str
) -> None:
    a, out_a = train_steps(tiny_section, tiny_spatial, name, 3)
    b, out_b = train_steps(tiny_section, tiny_spatial, name, 3)
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key
    assert torch.equal(out_a, out_b)
    initial, _ = train_steps(tiny_section, tiny_spatial, name, 0)
    moved = [
        k for k, v in initial.state_dict().items() if v.is_floating_point() and not torch.equal(v, state_a[k])
    ]
    assert len(moved) > len(state_a) // 2, "the optimiser steps changed too few tensors"
    other, _ = train_steps(tiny_section, tiny_spatial, name, 0, seed=1)
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in initial.state_dict().items())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_autocast_forward_and_backward(
    tiny_section: Callable[..., ModelParams], tiny_spatial: Callable[[str], tuple[int, int, int]], name: str
) -> None:
    torch.manual_seed(0)
    section = tiny_section(name)
    if isinstance(section, NetParams):  # one decoder level: one output head, used whatever deep_supervision
        section = tiny_section(name, depth=2)
    elif isinstance(section, DynUNetParams):  # no auxiliary heads
        section = tiny_section(name, deep_supervision=False)
    model = build_model(name, 4, 4, section)
    spatial = tiny_spatial(name)
    x = torch.randn(2, 4, *spatial)
    classes = torch.randint(0, 4, (2, *spatial))
    loss_fn = build_loss("classes", "dice_ce", 2.0, model.n_outputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(x)
        first = outputs[0] if isinstance(outputs, list) else outputs
        assert first.dtype == torch.bfloat16
        loss = loss_fn(outputs, classes)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    non_finite = {n: int((~torch.isfinite(p.grad)).sum()) for n, p in model.named_parameters()
                  if p.grad is not None and not torch.isfinite(p.grad).all()}
    assert not missing, f"no gradient: {missing}"
    assert not non_finite, f"non-finite gradient entries per parameter: {non_finite}"


FAMILY: dict[str, dict[str, Any]] = {
    "unet": {},
    "resunet": {"block": "residual"},
    "attention_unet": {"gate": "additive"},
}


@pytest.mark.parametrize("name", sorted(FAMILY))
@pytest.mark.parametrize("target", ["regions", "classes"])
def test_overfits_a_tiny_problem(name: str, target: str) -> None:
    torch.manual_seed(0)
    x, classes = tiny_problem(16)
    y = regions_of(classes) if target == "regions" else classes
    out_channels = 3 if target == "regions" else 4
    model = UNet3D(3, out_channels, depth=3, base_width=8, deep_supervision=True, **FAMILY[name])
    loss_fn = build_loss(target, "dice_ce", 2.0, model.n_outputs)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-2)
    model.eval()
    with torch.no_grad():
        initial = loss_fn(model(x), y).item()
    model.train()
    for _ in range(40):
        optimiser.zero_grad()
        loss_fn(model(x), y).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(x)
        final = loss_fn(logits, y).item()
    assert isinstance(logits, torch.Tensor)
    assert final < initial / 10, (initial, final)
    if target == "classes":
        accuracy = (logits.argmax(1) == classes).float().mean().item()
        assert accuracy > 0.95
    else:
        assert ((logits > 0).float() == y).float().mean().item() > 0.95
