"""Optimiser and learning-rate schedule from the training parameters."""

from __future__ import annotations

import math

import torch
from torch import nn

from bratseg.config import TrainParams


def build_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum (nnU-Net's choice)."""
    if params.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=params.lr,
            momentum=params.momentum,
            nesterov=True,
            weight_decay=params.weight_decay,
        )
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {params.optimizer!r}")


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``."""
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"lr_schedule must be 'poly', 'cosine' or 'constant', got {schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, params: TrainParams
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule over ``epochs * iterations_per_epoch`` steps."""
    total = params.epochs * params.iterations_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(params.lr_schedule, step, total)
    )
