"""Benchmark: the lesion-wise scores of bratseg against panoptica, run as brats-evaluation runs it.

``--cases`` multi-lesion pairs (default 20) are drawn on a 240×240×155 grid at 1 mm from a fixed seed: 10
to 40 metastasis-like tumours per case (edema shell, enhancing rim, necrotic core; radii 0.6-12 mm, so some
are a few voxels), and a prediction that finds most of them shifted and rescaled, misses some, splits some,
merges two by a thin bridge and adds false positives. Both sides score WT, TC and ET:

- panoptica: ``Panoptica_Evaluator`` loaded from the bundled ``config_mets.yaml`` of ``brats-evaluation``
  (one-to-one ``MaxBipartiteMatching`` on DSC >= 1e-6; instance DSC, NSD, HD95; global DSC, NSD, HD95; it
  also evaluates the empty RC group), called on the class volumes as ``brats-evaluate`` calls it (no spacing:
  distances in voxels, instance NSD at 1 voxel, global NSD at 0.5 voxel).
- ours: the case cropped once to its tumours (as ``case_lesionwise`` does), then per region
  ``lesionwise_panoptica`` (NSD tolerance 1 mm), ``dice``, and one ``surface_distances`` for the global HD95
  and the NSD at 0.5 mm: the same numbers. Agreement is checked on TP, FP, FN, F1 (``rq``), the lesion means
  ``sq_dsc``, ``sq_hd95``, ``sq_nsd``, the matched lesions one by one, and the global DSC, HD95, NSD
  (panoptica's infinite HD95 without a match reads as our 373 / 373.13 penalty).

Then the BraTS 2023 definition (``lesionwise_brats2023``, presets GLI and MET) is timed on the same cases.
The BraTS 2023 reference code is not on PyPI, so it cannot be run here; its HD95 comes from DeepMind's
``surface-distance`` (which is), so the output also gives how far that HD95 lies from ours on the same
lesions.

Run with a benchmark-only environment (panoptica 2.1.7, BraTS-evaluation 0.0.10, surface-distance 0.1: never
dependencies of the package; panoptica and brats-evaluation are AGPL) and the package sources on the path:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install panoptica==2.1.7 BraTS-evaluation==0.0.10 \
        surface-distance==0.1
    PYTHONPATH=src .venv-bench/bin/python benchmarks/bench_lesionwise.py [--cases 20]

``--spacing 1 1 2.5`` hands that spacing to panoptica (``voxelspacing``) and to ours: the lesions are then
compared in mm on an anisotropic grid (panoptica keeps its global metrics in voxels, and so does the
comparison).
"""

from __future__ import annotations

import argparse
import math
import platform
import subprocess
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.evaluation.lesions import crop_box, dilated_lesions, label_components, overlap_pairs
from bratseg.evaluation.lesionwise import (
    PANOPTICA_PENALTY,
    lesionwise_brats2023,
    lesionwise_panoptica,
)
from bratseg.evaluation.lesionwise_case import PRESETS, nsd
from bratseg.evaluation.metrics import EMPTY_HD95_MM, dice
from bratseg.evaluation.surface import hd95_from_distances, surface_dice, surface_distances
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS

REGIONS = BRATS_2021.region_names

Classes = npt.NDArray[np.uint8]
SHAPE = (240, 240, 155)
ONE_MM = (1.0, 1.0, 1.0)
WIDTHS = (4, 7, 14, 11, 7, 6, 9, 10, 10)


# --- generated cases ----------------------------------------------------------------------------------------
def _tumour(rng: np.random.Generator, radii: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], Any]:
    half = np.ceil(radii * 1.3).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    field = ndimage.gaussian_filter(rng.normal(size=grids[0].shape), 1.5)
    field *= 0.15 / (field.std() + 1e-9)
    return np.sqrt(sum((g / r) ** 2 for g, r in zip(grids, radii, strict=True))) + field, half


def _paint(vol: Classes, d: npt.NDArray[np.float64], half: Any, centre: npt.NDArray[np.int64]) -> None:
    """Edema shell, enhancing rim, necrotic core of a distance field ``d`` centred at ``centre``."""
    dst, src = [], []
    for c, h, n in zip(centre, half, vol.shape, strict=True):
        lo, hi = int(c - h), int(c + h + 1)
        dst.append(slice(max(lo, 0), min(hi, n)))
        src.append(slice(max(lo, 0) - lo, (2 * h + 1) - (hi - min(hi, n))))
    sub, dd = vol[tuple(dst)], d[tuple(src)]
    sub[(dd < 1.0) & (sub == 0)] = EDEMA
    sub[(dd < 0.6) & (sub != NECROSIS)] = ENHANCING
    sub[dd < 0.35] = NECROSIS


def case_pair(seed: int) -> tuple[Classes, Classes]:
    """Prediction and reference class volumes of one generated multi-lesion case."""
    rng = np.random.default_rng(seed)
    ref, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    lo, hi = np.array([50, 40, 25]), np.array([190, 200, 130])  # inside a head-sized region
    found = []
    for _ in range(int(rng.integers(10, 41))):
        centre = rng.integers(lo, hi)
        radii = rng.uniform(1.0, 12.0, 3) if rng.random() > 0.2 else rng.uniform(0.6, 1.5, 3)
        _paint(ref, *_tumour(rng, radii), centre)
        fate = rng.random()
        if fate < 0.12:
            continue  # missed
        _paint(pred, *_tumour(rng, radii * rng.uniform(0.75, 1.25, 3)), centre + rng.integers(-2, 3, 3))
        if fate > 0.9:  # split: a second piece beside it
            beside = centre + np.round(radii * 1.6).astype(int)
            _paint(pred, *_tumour(rng, np.maximum(radii * 0.4, 1.0)), beside)
        found.append(centre)
    for _ in range(int(rng.integers(2, 8))):  # false positives
        _paint(pred, *_tumour(rng, rng.uniform(0.8, 4.0, 3)), rng.integers(lo, hi))
    if len(found) >= 2:  # a thin predicted bridge merging two lesions
        a, b = found[0], found[1]
        for t in np.linspace(0.0, 1.0, 2 * int(np.abs(b - a).max()) + 2):
            pred[tuple(np.round(a + t * (b - a)).astype(int))] = EDEMA
    return pred, ref


# --- the two sides ------------------------------------------------------------------------------------------
def ours(pred: Classes, ref: Classes, spacing: tuple[float, ...] | None) -> dict[str, dict[str, Any]]:
    """What brats-evaluation reports per region, computed with bratseg on the case cropped to its tumours.

    ``spacing=None``: as brats-evaluate runs (unit spacing). Otherwise the lesions are measured in mm with
    that spacing (NSD tolerance: its smallest entry, panoptica's default) and the global HD95 and NSD in
    voxels, as panoptica measures its global metrics whatever the spacing.
    """
    sp = ONE_MM if spacing is None else spacing
    box = crop_box((pred > 0) | (ref > 0), 0)
    assert box is not None
    pr, rr = BRATS_2021.region_masks(pred[box]), BRATS_2021.region_masks(ref[box])
    out = {}
    for i, region in enumerate(REGIONS):
        p, r = pr[i], rr[i]
        lw = lesionwise_panoptica(p, r, sp, match_threshold=1e-6, nsd_tolerance_mm=min(sp))
        if p.any() and r.any():  # one surface computation for the global HD95 and NSD
            to_ref, to_pred = surface_distances(p, r, ONE_MM)
            hd, whole_nsd = hd95_from_distances(to_ref, to_pred, "pooled"), surface_dice(to_ref, to_pred, 0.5)
        else:
            hd = EMPTY_HD95_MM if p.any() or r.any() else math.nan
            whole_nsd = nsd(p, r, ONE_MM, tolerance_mm=0.5, empty="nan")
        out[region] = {
            **lw.as_dict(),
            "global_dsc": dice(p, r, empty="nan"),
            "global_hd95": hd,
            "global_nsd": whole_nsd,
            "lesions": sorted((s.volume_mm3, s.dice, s.hd95, s.nsd) for s in lw.lesions if s.detected),
        }
    return out


def theirs(
    evaluator: Any, pred: Classes, ref: Classes, spacing: tuple[float, ...] | None
) -> dict[str, dict[str, Any]]:
    """panoptica's results per region, named like ours."""
    kwargs = {} if spacing is None else {"voxelspacing": spacing}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = evaluator.evaluate(pred, ref, verbose=False, **kwargs)
    out = {}
    for region in REGIONS:
        d = results[region.lower()].to_dict(True)
        out[region] = {
            "tp": d["tp"], "fp": d["fp"], "fn": d["fn"], "f1": d["rq"],
            "lesion_dice": d["sq_dsc"], "lesion_hd95": d["sq_hd95"], "lesion_nsd": d["sq_nsd"],
            "global_dsc": d["global_bin_dsc"], "global_hd95": d["global_bin_hd95"],
            "global_nsd": d["global_bin_nsd"],
            "lesions": sorted(
                (float(x["volume"]), x["sq_dsc"], x["sq_hd95"], x["sq_nsd"])
                for x in d["reference_instances"] if x["is_matched"]
            ),
        }  # fmt: skip
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Largest absolute difference per metric; NaN equals NaN, panoptica's ∞ equals our HD95 penalty."""

    def gap(x: float, y: float, penalty: float) -> float:
        y = penalty if math.isinf(y) else y
        return 0.0 if (math.isnan(x) and math.isnan(y)) else abs(x - y)

    out = {}
    for key in ("tp", "fp", "fn", "f1", "lesion_dice", "lesion_nsd", "global_dsc", "global_nsd"):
        out[key] = gap(float(a[key]), float(b[key]), math.nan)
    out["lesion_hd95"] = gap(a["lesion_hd95"], float(b["lesion_hd95"]), PANOPTICA_PENALTY)
    out["global_hd95"] = gap(a["global_hd95"], float(b["global_hd95"]), EMPTY_HD95_MM)
    if len(a["lesions"]) != len(b["lesions"]):
        out["per_lesion"] = math.inf
    else:
        pairs = zip(a["lesions"], b["lesions"], strict=True)
        gaps = (abs(x - float(y)) for p, q in pairs for x, y in zip(p, q, strict=True))
        out["per_lesion"] = max(gaps, default=0.0)
    return out


def brats2023_case(pred: Classes, ref: Classes, preset: str) -> list[Any]:
    """The BraTS 2023 lesion-wise scores of WT, TC and ET with a challenge preset."""
    p = PRESETS[preset]
    return [
        lesionwise_brats2023(
            pr,
            rr,
            ONE_MM,
            dilation_iterations=p.dilation_iterations,
            volume_threshold_mm3=p.volume_threshold_mm3,
        )
        for pr, rr in zip(BRATS_2021.region_masks(pred), BRATS_2021.region_masks(ref), strict=True)
    ]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def deepmind_gap(pred: Classes, ref: Classes, k: int, thr: float) -> list[float]:
    """DeepMind surface-distance's HD95 (the 2023 reference code's) minus ours, per detected lesion."""
    import surface_distance  # benchmark-only

    gaps = []
    for p, r in zip(BRATS_2021.region_masks(pred), BRATS_2021.region_masks(ref), strict=True):
        lesions, blobs = dilated_lesions(r, k)
        comps = label_components(p)
        blob_ids, comp_ids, _ = overlap_pairs(blobs, comps.labels, comps.n)
        ours_lw = lesionwise_brats2023(p, r, ONE_MM, dilation_iterations=k, volume_threshold_mm3=thr)
        for i, score in enumerate(ours_lw.lesions, start=1):
            if not (score.scored and score.detected):
                continue
            lesion, hits = lesions.labels == i, np.isin(comps.labels, comp_ids[blob_ids == i])
            sd = surface_distance.compute_surface_distances(lesion, hits, ONE_MM)
            gaps.append(float(surface_distance.compute_robust_hausdorff(sd, 95)) - score.hd95)
    return gaps


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs, both sides")
    parser.add_argument("--deepmind-cases", type=int, default=3, help="cases for the DeepMind HD95 gap")
    parser.add_argument("--spacing", type=float, nargs=3, default=None,
                        help="spacing handed to panoptica (default: none, as brats-evaluate)")  # fmt: skip
    args = parser.parse_args()

    from panoptica import Panoptica_Evaluator  # benchmark-only

    config = files("brats_evaluation").joinpath("configs", "config_mets.yaml")
    evaluator = Panoptica_Evaluator.load_from_config(str(config))
    spacing = None if args.spacing is None else tuple(args.spacing)
    grid = "1 mm, no spacing given to panoptica" if spacing is None else f"spacing {spacing} mm"
    print(f"CPU: {cpu_model()}; {args.cases} cases of {SHAPE} voxels, {grid}, seed {args.seed}, "
          f"best of {args.repeat}")  # fmt: skip
    columns = ["case", "lesions", "TP/FP/FN (WT)", "panoptica s", "ours s", "ratio", "max |Δ|"]
    print(" ".join(f"{c:>{w}}" for c, w in zip([*columns, "GLI 2023 s", "MET 2023 s"], WIDTHS, strict=True)))
    worst: dict[str, float] = {}
    t_theirs, t_ours, t_gli, t_met = [], [], [], []
    for case in range(args.cases):
        pred, ref = case_pair(args.seed + case)
        tt, want = timed(lambda: theirs(evaluator, pred, ref, spacing), args.repeat)  # noqa: B023
        to, got = timed(lambda: ours(pred, ref, spacing), args.repeat)  # noqa: B023
        tg, _ = timed(lambda: brats2023_case(pred, ref, "gli"), args.repeat)  # noqa: B023
        tm, _ = timed(lambda: brats2023_case(pred, ref, "met"), args.repeat)  # noqa: B023
        case_worst = 0.0
        for region in REGIONS:
            for key, value in differences(got[region], want[region]).items():
                worst[key] = max(worst.get(key, 0.0), value)
                case_worst = max(case_worst, value)
        t_theirs.append(tt)
        t_ours.append(to)
        t_gli.append(tg)
        t_met.append(tm)
        n_lesions = int(ndimage.label(ref > 0, structure=np.ones((3, 3, 3)))[1])
        wt = want["WT"]
        counts = f"{wt['tp']}/{wt['fp']}/{wt['fn']}"
        row = [case, n_lesions, counts, f"{tt:.2f}", f"{to:.2f}", f"{tt / to:.1f}", f"{case_worst:.1e}"]
        row += [f"{tg:.2f}", f"{tm:.2f}"]
        print(" ".join(f"{c:>{w}}" for c, w in zip(row, WIDTHS, strict=True)))
    ratios = np.array(t_theirs) / np.array(t_ours)
    print(f"\nper case: panoptica {np.mean(t_theirs):.2f} s, ours {np.mean(t_ours):.2f} s (mean)")
    print(f"speed-up: mean {ratios.mean():.1f}x, median {np.median(ratios):.1f}x, min {ratios.min():.1f}x, "
          f"total time {sum(t_theirs) / sum(t_ours):.1f}x")  # fmt: skip
    print(f"BraTS 2023 definition, ours, per case (WT, TC, ET): GLI preset {np.mean(t_gli):.2f} s, "
          f"MET preset {np.mean(t_met):.2f} s")  # fmt: skip
    print("largest |ours - panoptica| over all cases and regions:")
    for key, value in worst.items():
        print(f"  {key:<12} {value:.3e}")
    ok = all(v <= 1e-6 for v in worst.values())
    print(f"agreement to 1e-6: {'yes' if ok else 'NO'}")
    gaps: list[float] = []
    for case in range(min(args.deepmind_cases, args.cases)):
        gaps += deepmind_gap(*case_pair(args.seed + case), 3, 50.0)
    if gaps:
        g = np.abs(np.array(gaps))
        n = min(args.deepmind_cases, args.cases)
        print(f"lesion HD95 of DeepMind surface-distance (the 2023 reference code's) minus ours (pooled), "
              f"GLI preset, {len(gaps)} lesions of {n} cases:")  # fmt: skip
        print(f"  mean {np.mean(gaps):+.3f} mm, mean |Δ| {g.mean():.3f} mm, "
              f"median |Δ| {np.median(g):.3f} mm, max |Δ| {g.max():.3f} mm")  # fmt: skip


if __name__ == "__main__":
    main()
