"""The training loop: epochs of random patches, periodic validation, best/last checkpoints, resumable."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from bratseg.config import Params
from bratseg.evaluation.metrics import dice
from bratseg.inference.postprocess import probabilities_to_classes
from bratseg.inference.predict import probability_fn
from bratseg.inference.sliding_window import sliding_window_predict
from bratseg.labels import REGIONS, classes_to_regions, n_outputs
from bratseg.models.registry import build_model
from bratseg.preprocess.cache import CachedCase
from bratseg.training.checkpoint import save_checkpoint
from bratseg.training.determinism import amp_dtype, configure_determinism, epoch_seed, seed_everything
from bratseg.training.losses import build_loss
from bratseg.training.optim import build_optimizer, build_scheduler
from bratseg.training.sampler import PatchDataset

log = logging.getLogger(__name__)
GRAD_CLIP = 12.0  # nnU-Net's gradient-norm clip
#: Per-epoch values that vary between identical runs: logged and tracked, never stored in a checkpoint.
TIMING_KEYS = ("patches_per_s", "loader_wait_s", "train_time_s", "epoch_time_s")


@dataclass(frozen=True)
class TrainResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


def validate(
    model: nn.Module, cases: Sequence[CachedCase], params: Params, device: torch.device
) -> dict[str, float]:
    """Mean Dice per region over whole validation cases (sliding window, BraTS empty-mask convention)."""
    model.eval()
    predictor = probability_fn(model, params.train.target)
    scores: dict[str, list[float]] = {r: [] for r in REGIONS}
    for case in cases:
        probs = sliding_window_predict(
            case.image(),
            predictor,
            patch_size=params.train.patch_size,
            n_outputs=n_outputs(params.train.target),
            overlap=params.train.val_overlap,
            batch_size=params.train.batch_size,
            device=device,
            amp_dtype=amp_dtype(device, params.train.amp),
        )
        pred = classes_to_regions(probabilities_to_classes(probs, params.train.target, 0.5))
        label = case.label()
        assert label is not None
        ref = classes_to_regions(np.asarray(label))
        for i, region in enumerate(REGIONS):
            scores[region].append(dice(pred[i], ref[i], empty="brats"))
    out = {f"val_dice_{r}": float(np.mean(v)) for r, v in scores.items()}
    out["val_dice_mean"] = float(np.mean([out[f"val_dice_{r}"] for r in REGIONS]))
    return out


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def train(
    params: Params,
    train_cases: Sequence[CachedCase],
    val_cases: Sequence[CachedCase],
    model_dir: Path,
    *,
    meta: dict[str, Any],
    device: torch.device,
    fingerprint: str,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``params.model``; write ``last.pt`` every epoch and ``best.pt`` on improvement.

    ``resume`` is the state of an interrupted run with the same ``fingerprint`` (see ``stage.py``); training
    continues after its last completed epoch and ends with the same weights as an uninterrupted run.
    """
    tp = params.train
    configure_determinism(tp.num_threads)
    seed_everything(tp.seed)
    out_ch = n_outputs(tp.target)
    model = build_model(params.model, 4, out_ch, params.net).to(device)
    loss_fn = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs)
    optimizer = build_optimizer(model, tp)
    scheduler = build_scheduler(optimizer, tp)
    autocast = amp_dtype(device, tp.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)

    history: list[dict[str, float]] = []
    best_epoch, best_score, start_epoch = -1, -math.inf, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        history = json.loads(resume["history"])
        best_epoch, best_score = int(resume["best_epoch"]), float(resume["best_score"])
        start_epoch = int(resume["epoch"])
        log.info("resuming after epoch %d of %d", start_epoch, tp.epochs)
    step_model: Callable[[torch.Tensor], Any] = torch.compile(model) if tp.compile else model

    dataset = PatchDataset(
        train_cases,
        patch_size=tp.patch_size,
        samples_per_epoch=tp.iterations_per_epoch * tp.batch_size,
        foreground_fraction=tp.foreground_fraction,
        target=tp.target,
        seed=tp.seed,
        augment_params=tp.augment,
    )
    loader = DataLoader(dataset, batch_size=tp.batch_size, shuffle=False, num_workers=tp.num_workers)
    epoch_times: list[float] = []
    for epoch in range(start_epoch, tp.epochs):
        torch.manual_seed(epoch_seed(tp.seed, epoch))
        dataset.set_epoch(epoch)
        model.train()
        t_epoch = time.perf_counter()
        t_wait, losses = 0.0, []
        t_fetch = time.perf_counter()
        for image, target in loader:
            t_wait += time.perf_counter() - t_fetch
            image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                outputs = step_model(image)
            loss = loss_fn(outputs, target)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(float(loss.detach()))
            t_fetch = time.perf_counter()
        train_time = time.perf_counter() - t_epoch
        row: dict[str, float] = {
            "epoch": float(epoch + 1),
            "train_loss": float(np.mean(losses)),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "patches_per_s": len(dataset) / train_time,
            "loader_wait_s": t_wait,
            "train_time_s": train_time,
        }
        last_epoch = epoch + 1 == tp.epochs
        if val_cases and ((epoch + 1) % tp.val_every == 0 or last_epoch):
            row.update(validate(model, val_cases, params, device))
            if row["val_dice_mean"] > best_score:
                best_epoch, best_score = epoch + 1, row["val_dice_mean"]
                save_checkpoint(
                    model_dir / "best.pt",
                    {
                        "model": model.state_dict(),
                        "meta": meta,
                        "epoch": epoch + 1,
                        "val_dice_mean": best_score,
                    },
                )
        elif not val_cases:  # nothing to select on: the latest model is the best one
            best_epoch, best_score = epoch + 1, math.nan
            save_checkpoint(
                model_dir / "best.pt",
                {"model": model.state_dict(), "meta": meta, "epoch": epoch + 1, "val_dice_mean": math.nan},
            )
        epoch_times.append(time.perf_counter() - t_epoch)
        row["epoch_time_s"] = epoch_times[-1]
        history.append({k: v for k, v in row.items() if k not in TIMING_KEYS})
        save_checkpoint(
            model_dir / "last.pt",
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                # JSON text, not a list of dicts: pickle's sharing of identical key strings would make a
                # resumed run's bytes differ from an uninterrupted one with the same values.
                "history": json.dumps(history, sort_keys=True),
                "best_epoch": best_epoch,
                "best_score": best_score,
                "fingerprint": fingerprint,
                "complete": last_epoch,
            },
        )
        val = " ".join(f"{r} {row[f'val_dice_{r}']:.3f}" for r in REGIONS if f"val_dice_{r}" in row)
        eta = float(np.mean(epoch_times)) * (tp.epochs - epoch - 1)
        log.info(
            "epoch %d/%d  loss %.4f  lr %.2e  %s%.1f patches/s  loader wait %.0f%%  %.1f s  ETA %s",
            epoch + 1,
            tp.epochs,
            row["train_loss"],
            row["lr"],
            f"val Dice {val}  " if val else "",
            row["patches_per_s"],
            100 * t_wait / train_time,
            epoch_times[-1],
            _format_eta(eta),
        )
        if on_epoch is not None:
            on_epoch(row)
    return TrainResult(best_epoch=best_epoch, best_score=best_score, history=history)
