"""Training curves: CSV files for ``dvc plots`` and a PNG for people and MLflow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from bratseg.io import atomic_path

#: Colours of the validation Dice curves (regions of other label sets take matplotlib's cycle).
COLOURS = {"WT": "#2b8cbe", "TC": "#e6550d", "ET": "#31a354"}


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_curves(
    history: Sequence[dict[str, float]], out_dir: Path, regions: Sequence[str] = ("WT", "TC", "ET")
) -> list[Path]:
    """Write ``loss.csv`` (every epoch), ``val_dice.csv`` (validated epochs) and ``curves.png``.

    ``regions`` are the validated regions, in column order (a resumed history is read back from JSON with
    sorted keys, so the order cannot come from it). Timing columns are left out of the CSV files so that
    they are identical between two runs.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(list(history))
    loss = frame[["epoch", "train_loss", "lr"]].astype({"epoch": int})
    columns = ["epoch", *[f"val_dice_{r}" for r in regions], "val_dice_mean"]
    val_cols = [c for c in columns if c in frame.columns]
    dice = frame[val_cols].dropna() if len(val_cols) > 1 else pd.DataFrame(columns=columns)
    dice = dice.astype({"epoch": int})
    paths = [out_dir / "loss.csv", out_dir / "val_dice.csv", out_dir / "curves.png"]
    _write_csv(loss, paths[0])
    _write_csv(dice, paths[1])

    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    ax_loss.plot(loss["epoch"], loss["train_loss"], marker="o", ms=3, color="#333333")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Loss")
    ax_loss.grid(alpha=0.3)
    for region in regions:
        col = f"val_dice_{region}"
        if col in dice:
            ax_dice.plot(dice["epoch"], dice[col], marker="o", ms=3, label=region, color=COLOURS.get(region))
    ax_dice.set(xlabel="epoch", ylabel="Dice", title="Validation Dice", ylim=(0, 1))
    ax_dice.grid(alpha=0.3)
    if len(dice):
        ax_dice.legend(loc="lower right")
    best = dice["val_dice_mean"].max() if "val_dice_mean" in dice and len(dice) else math.nan
    fig.suptitle(f"{len(loss)} epochs, best mean validation Dice {best:.3f}")
    with atomic_path(paths[2]) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    return paths
