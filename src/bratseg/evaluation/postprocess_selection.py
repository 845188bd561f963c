"""Choosing the post-processing on the out-of-fold predictions, as nnU-Net's ``find_best_configuration`` does.

Greedy, in two steps, each judged by the **mean Dice** (the mean over the evaluated regions of the mean over
cases of each region's Dice, NaN cases left out) of the out-of-fold predictions:

1. per region, in the label set's order (WT, TC, ET, ...): keeping only its largest connected component is
   adopted when it raises the mean Dice above that of the choice so far (strictly: a change that alters no
   prediction is not adopted);
2. the ET -> NETC small-volume relabel: among the candidate thresholds (0, off, always among them), the one of
   the highest mean Dice on top of step 1; of equal ones the smallest.

The criterion is the mean over all regions, not the region's own Dice, because keeping the largest
whole-tumour component also removes the core and enhancing voxels of the other components. How a choice is
applied and scored is the caller's: :func:`select_postprocessing` receives a scorer (choice -> per-case,
per-region Dice), so it stays pure, and the orchestration runs the post-processing of ``bratseg.inference``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Decimals of the figures recorded (so the selection file is byte-stable across platforms' last bits).
DIGITS = 6


@dataclass(frozen=True)
class Choice:
    """The selectable part of a post-processing plan."""

    largest_component: tuple[str, ...] = ()
    et_min_voxels: int = 0


#: A choice -> Dice ``(n_cases, n_regions)`` of the out-of-fold cases, regions in the order given to the
#: selection.
Scorer = Callable[[Choice], npt.NDArray[np.floating[Any]]]


@dataclass(frozen=True)
class Selection:
    """The chosen post-processing and the figures that justified it.

    Attributes:
        choice: what was chosen.
        before: mean Dice per region and their ``mean`` without any selected post-processing.
        after: the same with ``choice``.
        steps: every trial in order, JSON-able (``{"step": "largest_component", "region", "dice_before",
            "dice_after", "adopted"}`` and ``{"step": "et_min_voxels", "candidates": [{"et_min_voxels",
            "dice"}], "chosen"}``).
        n_cases: out-of-fold cases the figures are over.
    """

    choice: Choice
    before: dict[str, float | None]
    after: dict[str, float | None]
    steps: tuple[dict[str, Any], ...]
    n_cases: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "largest_component": list(self.choice.largest_component),
            "et_min_voxels": self.choice.et_min_voxels,
            "n_cases": self.n_cases,
            "dice_before": self.before,
            "dice_after": self.after,
            "steps": list(self.steps),
        }


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), DIGITS)


def mean_dice(table: npt.ArrayLike, regions: Sequence[str]) -> dict[str, float | None]:
    """Mean Dice per region over cases (NaN left out) and ``mean``, their mean (``None`` where undefined).

    Args:
        table: ``(n_cases, n_regions)`` Dice.
        regions: the names of the columns.
    """
    values = np.asarray(table, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(regions):
        raise ValueError(f"table must have shape (n_cases, {len(regions)}), got {values.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: undefined, reported as None
        per_region = np.nanmean(values, axis=0) if values.shape[0] else np.full(len(regions), np.nan)
        overall = np.nanmean(per_region) if not np.isnan(per_region).all() else np.nan
    out = {r: _round(v) for r, v in zip(regions, per_region, strict=True)}
    out["mean"] = _round(float(overall))
    return out


def _criterion(summary: dict[str, float | None]) -> float:
    value = summary["mean"]
    return -np.inf if value is None else value


def select_postprocessing(
    score: Scorer,
    regions: Sequence[str],
    et_candidates: Sequence[int],
    n_cases: int,
) -> Selection:
    """Choose the largest-component regions and the ET relabel threshold (see the module docstring).

    Args:
        score: the out-of-fold Dice of a choice, ``(n_cases, len(regions))``.
        regions: the evaluated regions, in the label set's order (the largest-component trials go in it).
        et_candidates: thresholds (voxels) of the ET -> NETC relabel to try; 0 (off) is always tried.
        n_cases: the number of out-of-fold cases (recorded; the scorer's tables must have as many rows).

    Returns:
        The :class:`Selection`. With no case, nothing is adopted (the figures are ``None``).

    Raises:
        ValueError: a negative candidate, or a scorer table of the wrong shape.
    """
    if any(int(t) < 0 for t in et_candidates):
        raise ValueError(f"et_candidates must be >= 0, got {list(et_candidates)}")
    regions = tuple(regions)
    cache: dict[Choice, dict[str, float | None]] = {}

    def summary(choice: Choice) -> dict[str, float | None]:
        if choice not in cache:
            table = np.asarray(score(choice), dtype=np.float64)
            if table.shape != (n_cases, len(regions)):
                raise ValueError(f"score returned shape {table.shape}, expected ({n_cases}, {len(regions)})")
            cache[choice] = mean_dice(table, regions)
        return cache[choice]

    current = Choice()
    before = summary(current)
    steps: list[dict[str, Any]] = []
    for region in regions:
        trial = Choice((*current.largest_component, region), current.et_min_voxels)
        base, new = summary(current), summary(trial)
        adopted = _criterion(new) > _criterion(base)
        steps.append(
            {
                "step": "largest_component",
                "region": region,
                "dice_before": base,
                "dice_after": new,
                "adopted": bool(adopted),
            }
        )
        if adopted:
            current = trial
    thresholds = sorted({0, *(int(t) for t in et_candidates)})
    trials = [(t, summary(Choice(current.largest_component, t))) for t in thresholds]
    best = max(trials, key=lambda item: (_criterion(item[1]), -item[0]))[0]
    steps.append(
        {
            "step": "et_min_voxels",
            "candidates": [{"et_min_voxels": t, "dice": d} for t, d in trials],
            "chosen": best,
        }
    )
    current = Choice(current.largest_component, best)
    return Selection(current, before, summary(current), tuple(steps), n_cases)
