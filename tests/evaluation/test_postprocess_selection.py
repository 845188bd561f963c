"""Choosing the post-processing on out-of-fold Dice: largest-component trials, then the ET threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bratseg.evaluation.postprocess_selection import Choice, mean_dice, select_postprocessing

REGIONS = ("WT", "TC", "ET")


def table_scorer(tables: dict[Choice, list[list[float]]], default: list[list[float]]):
    """A scorer returning fixed tables per choice (``default`` for any other), recording the calls."""
    calls: list[Choice] = []

    def score(choice: Choice) -> np.ndarray:
        calls.append(choice)
        return np.asarray(tables.get(choice, default), dtype=float)

    return score, calls


def test_mean_dice_leaves_nan_out_and_reports_undefined_as_none() -> None:
    table = [[0.5, np.nan, 1.0], [0.7, np.nan, 0.0]]
    summary = mean_dice(table, REGIONS)
    assert summary == {"WT": 0.6, "TC": None, "ET": 0.5, "mean": 0.55}
    assert mean_dice(np.zeros((0, 3)), REGIONS) == {"WT": None, "TC": None, "ET": None, "mean": None}
    with pytest.raises(ValueError, match="shape"):
        mean_dice([[0.5, 0.5]], REGIONS)


def test_largest_component_adopted_only_where_it_raises_the_mean() -> None:
    base = [[0.8, 0.6, 0.5], [0.6, 0.6, 0.5]]
    wt = Choice(("WT",))
    tables = {
        wt: [[0.9, 0.6, 0.5], [0.7, 0.6, 0.5]],  # better: adopted
        Choice(("WT", "TC")): [[0.9, 0.5, 0.5], [0.7, 0.6, 0.5]],  # worse: not adopted
        Choice(("WT", "ET")): [[0.9, 0.6, 0.5], [0.7, 0.6, 0.5]],  # equal: not adopted (strictly better only)
    }
    score, _ = table_scorer(tables, base)
    selection = select_postprocessing(score, REGIONS, [0, 25], n_cases=2)
    assert selection.choice == Choice(("WT",), 0)
    assert [s["adopted"] for s in selection.steps[:3]] == [True, False, False]
    assert selection.before["mean"] == pytest.approx((0.7 + 0.6 + 0.5) / 3, abs=1e-6)
    assert selection.after["WT"] == pytest.approx(0.8)
    assert selection.to_dict()["largest_component"] == ["WT"] and selection.n_cases == 2


def test_et_threshold_is_the_best_candidate_on_top_of_the_components_smallest_of_ties() -> None:
    base = [[0.8, 0.7, 0.4]]
    tables = {
        Choice((), 50): [[0.8, 0.7, 0.6]],
        Choice((), 100): [[0.8, 0.7, 0.6]],  # tie with 50: the smaller wins
        Choice((), 200): [[0.8, 0.7, 0.5]],
    }
    score, calls = table_scorer(tables, base)
    selection = select_postprocessing(score, REGIONS, [200, 100, 50], n_cases=1)
    assert selection.choice == Choice((), 50)
    et_step = selection.steps[-1]
    assert et_step["step"] == "et_min_voxels" and et_step["chosen"] == 50
    assert [c["et_min_voxels"] for c in et_step["candidates"]] == [0, 50, 100, 200]  # 0 is always tried
    assert len(calls) == len(set(calls))  # every choice scored once
    assert math.isclose(selection.after["ET"], 0.6)


def test_nothing_is_adopted_when_nothing_helps_and_errors_are_named() -> None:
    score, _ = table_scorer({}, [[0.5, 0.5, 0.5]])
    selection = select_postprocessing(score, REGIONS, [10], n_cases=1)
    assert selection.choice == Choice() and selection.before == selection.after
    with pytest.raises(ValueError, match="et_candidates"):
        select_postprocessing(score, REGIONS, [-1], n_cases=1)
    with pytest.raises(ValueError, match="score returned shape"):
        select_postprocessing(score, REGIONS, [0], n_cases=2)
