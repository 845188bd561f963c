"""Determinism settings: what ``configure_determinism`` turns on and off; results that do not depend on it."""

from __future__ import annotations

import torch

from bratseg.models.registry import build_model
from bratseg.netparams import NetParams
from bratseg.runtime import configure_determinism
from bratseg.training.losses import build_loss


def _train_weights(fill: bool) -> torch.Tensor:
    configure_determinism(1)
    torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
    torch.manual_seed(0)
    net = NetParams(depth=3, base_width=4, max_width=16, norm="instance", dropout=0.0, deep_supervision=True)
    model = build_model("unet", 4, 3, net)
    loss = build_loss("regions", "dice_ce", 2.0, model.n_outputs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 12, 20, 16, generator=g)
    y = (torch.rand(1, 3, 12, 20, 16, generator=g) < 0.2).float()
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_configure_determinism_turns_on_deterministic_kernels_and_off_the_nan_fill():
    configure_determinism(1)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]


def test_training_reads_no_uninitialised_memory():
    """With the NaN fill on, a kernel reading memory it never wrote would give NaN or other weights."""
    try:
        filled = _train_weights(True)
    finally:
        configure_determinism(1)  # the fill off again for the tests that follow, whatever happened
    assert torch.isfinite(filled).all()
    assert torch.equal(filled, _train_weights(False))
