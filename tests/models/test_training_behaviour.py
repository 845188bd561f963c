"""The family trains: deterministic steps, autocast, and overfitting a tiny synthetic problem (CPU)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bratseg.config import NetParams
from bratseg.models import MODELS, UNet3D, build_model
from bratseg.training.losses import build_loss


@pytest.fixture
def deterministic() -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


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


def train_steps(name: str, steps: int, *, dropout: float = 0.0, lr: float = 1e-2) -> UNet3D:
    torch.manual_seed(0)
    net = NetParams(
        depth=3, base_width=4, max_width=16, norm="instance", dropout=dropout, deep_supervision=True
    )
    model = build_model(name, 3, 3, net)
    loss_fn = build_loss("regions", "dice_focal", 2.0, model.n_outputs)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, classes = tiny_problem(8)
    target = regions_of(classes)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        optimiser.step()
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.usefixtures("deterministic")
def test_training_steps_are_bit_identical(name: str) -> None:
    a = train_steps(name, 2, dropout=0.2)
    b = train_steps(name, 2, dropout=0.2)
    for (key, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), key
    initial = train_steps(name, 0, dropout=0.2)
    assert not torch.equal(initial.state_dict()["heads.0.weight"], a.state_dict()["heads.0.weight"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_autocast_forward_and_loss(name: str) -> None:
    torch.manual_seed(0)
    model = UNet3D(3, 4, depth=2, base_width=4, block=MODELS[name], deep_supervision=True)
    x, classes = tiny_problem(8)
    loss_fn = build_loss("classes", "dice_ce", 2.0, model.n_outputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(x)
        assert outputs[0].dtype == torch.bfloat16
        loss = loss_fn(outputs, classes)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("target", ["regions", "classes"])
def test_overfits_a_tiny_problem(name: str, target: str) -> None:
    torch.manual_seed(0)
    x, classes = tiny_problem(16)
    y = regions_of(classes) if target == "regions" else classes
    out_channels = 3 if target == "regions" else 4
    model = UNet3D(3, out_channels, depth=3, base_width=8, block=MODELS[name], deep_supervision=True)
    loss_fn = build_loss(target, "dice_ce", 2.0, model.n_outputs)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-2)
    model.eval()
    with torch.no_grad():
        initial = loss_fn(model(x), y).item()
    model.train()
    for _ in range(30):
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
