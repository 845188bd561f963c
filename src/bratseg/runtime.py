"""Seeding and deterministic execution, on CPU and CUDA."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from bratseg.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' but no CUDA device is available (use auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


def configure_determinism(num_threads: int) -> None:
    """Deterministic algorithms everywhere, fixed CPU thread count.

    Must run before the first CUDA call: cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when it initialises.
    A kernel without a deterministic implementation then raises instead of silently varying.

    Deterministic mode also fills every newly allocated tensor with NaN by default (to expose kernels that
    read memory they never wrote); no kernel of this project's networks does (the weights are bit-identical
    either way, ``tests/test_runtime.py``), and the filling took 15 % of a CPU training step
    (``benchmarks/bench_training_speed.py``), so it is off.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.set_num_threads(num_threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A per-epoch seed, so a run resumed at an epoch boundary continues exactly (dropout, etc.)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` on ``device``; mixed precision is used on CUDA only."""
    if device.type != "cuda" or amp == "none":
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
