"""The training loop: epochs of random patches, periodic validation, best/last checkpoints, resumable.

:func:`train` is a sequence of named steps: :func:`build_state` (network, loss, optimiser, schedule, or the
state of an interrupted run), then per epoch :func:`train_epoch`, :func:`validate_epoch` (which also keeps
``best.pt``), :func:`save_last` and a progress line. How a model is validated is not this module's business:
the caller passes a :data:`Validator` (the pipeline's sliding-window validation on whole cases), so training
depends on no other phase.

Given a :class:`~bratseg.training.distributed.World` of several processes (``train.nproc``), every rank
runs this same loop on its share of each global batch, in DDP; rank 0 alone writes the checkpoints, logs
progress and calls ``on_epoch`` (see :mod:`bratseg.training.distributed` for what is reduced, and why the
result is the one-process result up to rounding). One process runs exactly as it always has.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from bratseg.cache import CachedCase
from bratseg.config import Params
from bratseg.labels import BRATS_2021, LabelSet
from bratseg.models.base import use_channels_last
from bratseg.models.checkpoint import save_checkpoint
from bratseg.models.registry import build_model
from bratseg.runtime import amp_dtype, configure_determinism, epoch_seed, seed_everything
from bratseg.training import distributed
from bratseg.training.distributed import SINGLE, World
from bratseg.training.losses import build_loss
from bratseg.training.optim import build_optimizer, build_scheduler
from bratseg.training.sampler import PatchDataset, rank_indices

log = logging.getLogger(__name__)
GRAD_CLIP = 12.0  # nnU-Net's gradient-norm clip
#: Per-epoch values that vary between identical runs: logged and tracked, never stored in a checkpoint.
TIMING_KEYS = ("patches_per_s", "loader_wait_s", "train_time_s", "epoch_time_s")

#: Scores a model in eval mode: ``{"val_dice_WT": …, …, "val_dice_mean": …}``; ``val_dice_mean`` selects
#: ``best.pt``.
Validator = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class TrainResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


@dataclass
class TrainingState:
    """Everything that changes during training and is saved in ``last.pt`` to resume."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    start_epoch: int = 0


def build_state(
    params: Params,
    device: torch.device,
    resume: dict[str, Any] | None,
    world: World = SINGLE,
    labels: LabelSet = BRATS_2021,
) -> TrainingState:
    """Seeded network (one output per training region or class of ``labels``), optimiser, schedule and
    gradient scaler; restored from ``resume`` when given.

    Every rank seeds alike, so all start from the same weights (DDP checks it by broadcasting rank 0's)."""
    tp = params.train
    configure_determinism(tp.num_threads)
    seed_everything(tp.seed)
    model: nn.Module = build_model(params.model, 4, labels.n_outputs(tp.target), params.net).to(device)
    if use_channels_last(model, tp.channels_last, device):
        log.info("channels-last 3D weights and activations (train.channels_last)")
    model = distributed.prepare_model(model, world, device)
    optimizer = build_optimizer(model, tp)
    scheduler = build_scheduler(optimizer, tp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype(device, tp.amp) == torch.float16)
    state = TrainingState(model, optimizer, scheduler, scaler)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        state.history = json.loads(resume["history"])
        state.best_epoch, state.best_score = int(resume["best_epoch"]), float(resume["best_score"])
        state.start_epoch = int(resume["epoch"])
        log.info("resuming after epoch %d of %d", state.start_epoch, tp.epochs)
    return state


class ModelLoss(nn.Module):
    """The network (under autocast) and its loss (in float32) as one module, ``(image, target) -> loss``.

    In DDP this is the wrapped module, so DDP finds the parameters the *loss* uses: the lowest
    deep-supervision head, of loss weight 0, is computed by the network but used by no loss term.
    """

    def __init__(
        self, model: nn.Module, loss: nn.Module, device_type: str, autocast: torch.dtype | None
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.device_type = device_type
        self.autocast = autocast

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dtype = self.autocast
        with torch.autocast(self.device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            outputs = self.model(image)
        loss: torch.Tensor = self.loss(outputs, target)
        return loss


def train_epoch(
    state: TrainingState,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
) -> tuple[list[float], float]:
    """One pass over ``loader`` (``step``: a :class:`ModelLoss`, in DDP on several processes): the
    per-step losses and the seconds spent waiting for batches."""
    state.model.train()
    t_wait, losses = 0.0, []
    t_fetch = time.perf_counter()
    for image, target in loader:
        t_wait += time.perf_counter() - t_fetch
        image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
        state.optimizer.zero_grad(set_to_none=True)
        loss = step(image, target)
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(state.model.parameters(), GRAD_CLIP)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        losses.append(float(loss.detach()))
        t_fetch = time.perf_counter()
    return losses, t_wait


def save_best(
    model_dir: Path,
    state: TrainingState,
    meta: dict[str, Any],
    epoch: int,
    score: float,
    write: bool = True,
) -> None:
    """``best.pt``: weights and metadata only (nothing run-specific), so equal runs give equal bytes.

    Every rank records the best epoch; only the one with ``write`` (rank 0) writes the file."""
    state.best_epoch, state.best_score = epoch, score
    if not write:
        return
    save_checkpoint(
        model_dir / "best.pt",
        {"model": state.model.state_dict(), "meta": meta, "epoch": epoch, "val_dice_mean": score},
    )


def validate_epoch(
    state: TrainingState,
    validate: Validator | None,
    epoch: int,
    due: bool,
    model_dir: Path,
    meta: dict[str, Any],
    world: World = SINGLE,
) -> dict[str, float]:
    """Validate when ``due`` and keep ``best.pt`` on improvement; without a validator, the latest model is
    the best one. Returns the validation scores (empty when none were computed).

    Every rank calls ``validate`` (which may share the cases out and gather the scores) and gets the same
    scores, so all ranks agree on the best epoch; rank 0 writes ``best.pt``."""
    if validate is None:
        save_best(model_dir, state, meta, epoch, math.nan, write=world.main)
        return {}
    if not due:
        return {}
    state.model.eval()
    scores = validate(state.model)
    if scores["val_dice_mean"] > state.best_score:
        save_best(model_dir, state, meta, epoch, scores["val_dice_mean"], write=world.main)
    return scores


def save_last(model_dir: Path, state: TrainingState, epoch: int, fingerprint: str, complete: bool) -> None:
    """``last.pt``: the full state after ``epoch``, to resume an interrupted run of the same training."""
    save_checkpoint(
        model_dir / "last.pt",
        {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(),
            "epoch": epoch,
            # JSON text, not a list of dicts: pickle's sharing of identical key strings would make a
            # resumed run's bytes differ from an uninterrupted one with the same values.
            "history": json.dumps(state.history, sort_keys=True),
            "best_epoch": state.best_epoch,
            "best_score": state.best_score,
            "fingerprint": fingerprint,
            "complete": complete,
        },
    )


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _log_epoch(row: dict[str, float], epochs: int, epoch_times: list[float]) -> None:
    regions = [k.removeprefix("val_dice_") for k in row if k.startswith("val_dice_") and k != "val_dice_mean"]
    val = " ".join(f"{r} {row[f'val_dice_{r}']:.3f}" for r in regions)
    eta = float(np.mean(epoch_times)) * (epochs - int(row["epoch"]))
    log.info(
        "epoch %d/%d  loss %.4f  lr %.2e  %s%.1f patches/s  loader wait %.0f%%  %.1f s  ETA %s",
        int(row["epoch"]),
        epochs,
        row["train_loss"],
        row["lr"],
        f"val Dice {val}  " if val else "",
        row["patches_per_s"],
        100 * row["loader_wait_s"] / row["train_time_s"],
        row["epoch_time_s"],
        _format_eta(eta),
    )


def train(
    params: Params,
    train_cases: Sequence[CachedCase],
    model_dir: Path,
    *,
    meta: dict[str, Any],
    device: torch.device,
    fingerprint: str,
    validate: Validator | None,
    labels: LabelSet = BRATS_2021,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    world: World = SINGLE,
) -> TrainResult:
    """Train ``params.model``; write ``last.pt`` every epoch and ``best.pt`` on improvement.

    ``labels`` is the cohort's label set (network outputs and targets follow it). ``validate`` scores the
    model every ``train.val_every`` epochs and after the last one (``None``: no
    validation cases, the latest model is kept as the best). ``resume`` is the state of an interrupted run
    with the same ``fingerprint``; training continues after its last completed epoch and ends with the same
    weights as an uninterrupted run.

    ``world``: this process's rank among ``train.nproc`` training processes (every rank calls ``train``
    with the same arguments and passes ``resume`` alike); ``on_epoch`` is called on rank 0 only. The
    history's losses are the means over the ranks; its timings are rank 0's.
    """
    tp = params.train
    state = build_state(params, device, resume, world, labels)
    loss_fn = build_loss(
        tp.target, tp.loss, tp.focal_gamma, cast(int, state.model.n_outputs), distributed.global_sums(world)
    )
    net = cast(nn.Module, torch.compile(state.model)) if tp.compile else state.model
    step = distributed.wrap_model(
        ModelLoss(net, loss_fn, device.type, amp_dtype(device, tp.amp)), world, device
    )
    dataset = PatchDataset(
        train_cases,
        patch_size=tp.patch_size,
        samples_per_epoch=tp.iterations_per_epoch * tp.batch_size,
        foreground_fraction=tp.foreground_fraction,
        target=tp.target,
        seed=tp.seed,
        augment_params=tp.augment,
        labels=labels,
    )
    loader = DataLoader(
        dataset,
        batch_size=tp.batch_size // world.size,
        sampler=rank_indices(len(dataset), tp.batch_size, world.rank, world.size),
        num_workers=tp.num_workers,
    )
    epoch_times: list[float] = []
    for epoch in range(state.start_epoch, tp.epochs):
        torch.manual_seed(epoch_seed(tp.seed, epoch))
        dataset.set_epoch(epoch)
        t_epoch = time.perf_counter()
        losses, t_wait = train_epoch(state, loader, step, device)
        losses = distributed.mean_over_ranks(losses, world)
        train_time = time.perf_counter() - t_epoch
        row: dict[str, float] = {
            "epoch": float(epoch + 1),
            "train_loss": float(np.mean(losses)),
            "lr": float(state.optimizer.param_groups[0]["lr"]),
            "patches_per_s": len(dataset) / train_time,
            "loader_wait_s": t_wait,
            "train_time_s": train_time,
        }
        last_epoch = epoch + 1 == tp.epochs
        due = (epoch + 1) % tp.val_every == 0 or last_epoch
        row.update(validate_epoch(state, validate, epoch + 1, due, model_dir, meta, world))
        epoch_times.append(time.perf_counter() - t_epoch)
        row["epoch_time_s"] = epoch_times[-1]
        state.history.append({k: v for k, v in row.items() if k not in TIMING_KEYS})
        if not world.main:
            continue
        save_last(model_dir, state, epoch + 1, fingerprint, last_epoch)
        _log_epoch(row, tp.epochs, epoch_times)
        if on_epoch is not None:
            on_epoch(row)
    return TrainResult(best_epoch=state.best_epoch, best_score=state.best_score, history=state.history)
