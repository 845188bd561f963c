"""Tiny settings of every architecture (CPU-sized), the input shape each accepts, and a recorder of the
low-level (aten) operations a forward and backward pass runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bratseg.config import DynUNetParams, ModelParams, NetParams, SegResNetParams, SwinUNETRParams

TINY_NET = NetParams(depth=3, base_width=4, max_width=16, norm="instance", dropout=0.0, deep_supervision=True)


def _tiny_section(name: str, **overrides: Any) -> ModelParams:
    """The settings of ``name`` with tiny widths, deep supervision where the network has it."""
    base: ModelParams
    if name in ("unet", "resunet", "attention_unet", "unet2d"):
        base = TINY_NET
    elif name == "segresnet":
        base = SegResNetParams(
            init_filters=4, blocks_down=(1, 1, 1), blocks_up=(1, 1), norm="group", num_groups=2, dropout=0.0
        )
    elif name == "swinunetr":
        base = SwinUNETRParams(
            feature_size=12,
            depths=(1, 1, 1, 1),
            num_heads=(3, 3, 3, 3),
            window_size=4,
            norm="batch",
            dropout=0.0,
            attn_dropout=0.0,
            drop_path=0.0,
            use_v2=False,
        )
    elif name == "dynunet":
        base = DynUNetParams(
            depth=3,
            base_width=4,
            max_width=16,
            norm="instance",
            dropout=0.0,
            res_block=False,
            deep_supervision=True,
        )
    else:
        raise KeyError(name)
    return type(base).from_dict({**base.to_dict(), **overrides})


def _tiny_spatial(name: str) -> tuple[int, int, int]:
    """A small input size the tiny settings of ``name`` accept (SwinUNETR needs multiples of 32)."""
    return {"swinunetr": (32, 32, 32), "unet2d": (16, 8, 3)}.get(name, (16, 8, 8))


@pytest.fixture
def tiny_section() -> Callable[..., ModelParams]:
    """``tiny_section(name, **overrides)``: the tiny settings of ``name``."""
    return _tiny_section


@pytest.fixture
def tiny_spatial() -> Callable[[str], tuple[int, int, int]]:
    """``tiny_spatial(name)``: an input size the tiny settings of ``name`` accept."""
    return _tiny_spatial


class OpRecorder(TorchDispatchMode):
    """Collects the names of the aten operations (forward and backward) run inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def record_ops() -> Callable[[Callable[[], None]], set[str]]:
    def run(step: Callable[[], None]) -> set[str]:
        recorder = OpRecorder()
        with recorder:
            step()
        return recorder.ops

    return run


@pytest.fixture
def deterministic() -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
