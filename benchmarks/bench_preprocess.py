"""Per-case preprocessing: time per step, N4 quality per setting, and scaling from 1 to 2 cores.

Usage::

    python benchmarks/bench_preprocess.py            # default cohort size (2 mm, 120 x 120 x 78)
    python benchmarks/bench_preprocess.py --full     # also the full BraTS grid (1 mm, 240 x 240 x 155)
    python benchmarks/bench_preprocess.py --quick    # fewer repeats, cheap N4 settings only
    python benchmarks/bench_preprocess.py --resampling   # table 4 only (also part of --full)

Input: a synthetic case from ``bratseg.cohort.generate.generate_case`` (the cohort section of ``params.yaml``
with ``voxel_mm`` overridden).

Tables:

1. Time per step (``ingest``, ``bias_correct``, ``finalise``: ``bratseg.preprocess.steps.chain``, real files
   in a temporary folder, one ITK thread), with the settings of ``params.yaml``.
2. N4 quality per setting, including SimpleITK's defaults (shrink 1, iterations [50, 50, 50, 50]):
   ``removed`` is the fraction of the true log-bias variance inside the brain that the estimate explains,
   ``1 - var(true - est) / var(true)`` (both centred: N4 leaves a global scale free); ``CoV`` is the
   coefficient of variation of white matter before, after and with the true field divided out (the floor).
3. Scaling: two cases sequentially vs in two processes, and one case with 1 vs 2 ITK threads, with the
   byte-for-byte comparison of the outputs (same threads twice; 1 vs 2 threads).
4. Resampling: the whole chain (ingest -> reorient and resample -> N4 -> crop -> cache,
   ``preprocess_case`` with ``IngestOptions``) for a 1 mm 240 x 240 x 155 case kept at 1 mm and resampled to
   2 mm, and for a 0.5 x 0.5 x 5 mm clinical-like case (the 1 mm case sampled in-plane at 0.5 mm, averaged
   over 5 mm slabs) resampled to 2 mm and to 1 mm. Each run in a fresh process on one core (BLAS and ITK one
   thread): seconds per step and the process's peak RSS. Then the image resampling alone (4 channels, 1 mm
   -> 2 mm): ``ndimage.zoom`` order 3 in 3D (the obvious implementation), the separable order 3 the
   pipeline uses, and order 1; seconds and the largest difference from ``ndimage.zoom`` order 3.

The figures measured on the project's 2-core machine are in the README's benchmark table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import yaml

from bratseg.config import CohortParams, N4Params, PreprocessParams
from bratseg.layouts import MODALITIES, CaseFiles, case_files
from bratseg.preprocess.bias import n4_correct
from bratseg.preprocess.steps.bias_correct import bias_correct
from bratseg.preprocess.steps.chain import preprocess_case
from bratseg.preprocess.steps.ingest import IngestOptions, ingest

ROOT = Path(__file__).resolve().parents[1]
FOV_MM = (240.0, 240.0, 155.0)
QUALITY_HEADER = ["case", "setting", "shrink", "iterations", "modalities", "s/mod", "removed"]
QUALITY_HEADER += ["CoV before", "CoV after", "CoV true field"]


@dataclasses.dataclass
class Synthetic:
    case_id: str
    images: dict[str, np.ndarray]
    seg: np.ndarray
    affine: np.ndarray
    bias_fields: dict[str, np.ndarray]
    brain_mask: np.ndarray
    white_matter: np.ndarray


def _params_yaml() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "params.yaml").read_text()))


def synthetic_case(voxel_mm: float, index: int = 0) -> Synthetic:
    """Case ``index`` of the synthetic cohort at ``voxel_mm``."""
    from bratseg.cohort.generate import generate_case

    raw = _params_yaml()["cohort"]
    params = CohortParams.from_dict({**raw, "voxel_mm": voxel_mm, "n_cases": max(raw["n_cases"], index + 1)})
    c = generate_case(index, params)
    return Synthetic(
        c.case_id,
        c.images,
        c.seg,
        c.affine,
        c.bias_fields,
        c.brain_mask,
        c.white_matter,
    )


def write_nifti(case: Synthetic, root: Path) -> CaseFiles:
    """The case as int16 images + uint8 segmentation in the BraTS 2021 layout (like the cohort stage)."""
    folder = root / case.case_id
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {m: np.clip(np.rint(case.images[m]), 0, 32767).astype(np.int16) for m in MODALITIES}
    arrays["seg"] = case.seg.astype(np.uint8)
    for key, data in arrays.items():
        img = nib.Nifti1Image(data, case.affine)
        img.set_qform(case.affine, code=1)
        img.set_sform(case.affine, code=1)
        nib.save(img, folder / f"{case.case_id}_{key}.nii.gz")
    return case_files(folder, "brats2021")


def preprocess_params(n4: N4Params | None = None) -> PreprocessParams:
    params = PreprocessParams.from_dict(_params_yaml()["preprocess"])
    return params if n4 is None else dataclasses.replace(params, n4=n4)


def run_case(files: CaseFiles, work: Path, params: PreprocessParams, threads: int = 1) -> dict[str, float]:
    """All three steps on one case; seconds per step."""
    interim = work / "interim" / files.case_id
    times = preprocess_case(files, work / "cases" / files.case_id, params, work_dir=interim, threads=threads)
    times["total"] = sum(times.values())
    return times


def _run_case_job(args: tuple[str, str, dict[str, Any]]) -> dict[str, float]:
    folder, work, params = args
    return run_case(case_files(Path(folder), "brats2021"), Path(work), PreprocessParams.from_dict(params))


def cpu_model() -> str:
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line)
    except (OSError, StopIteration, subprocess.CalledProcessError):
        return "unknown"


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def n4_settings(full: bool, quick: bool) -> list[tuple[str, N4Params]]:
    """The N4 settings compared at one grid size (SimpleITK's defaults are too slow for the full grid)."""
    base = preprocess_params().n4
    defaults = N4Params(
        enabled=True,
        shrink_factor=1,
        fit_spacing_mm=1.0,
        iterations=(50, 50, 50, 50),
        convergence=0.001,
        control_points=4,
        histogram_bins=200,
    )
    four_levels = (50, 50, 50, 50)
    old = dataclasses.replace(base, iterations=(50, 50, 30))
    if full:
        settings = [
            ("params.yaml", base),
            ("shrink 8, [50,50,30]", dataclasses.replace(old, shrink_factor=8)),
            ("shrink 8, 4x50 its", dataclasses.replace(base, shrink_factor=8, iterations=four_levels)),
        ]
        if not quick:
            settings.append(("shrink 4, [50,50,30]", dataclasses.replace(old, shrink_factor=4)))
        return settings
    settings = [
        ("params.yaml", base),
        ("shrink 4, [50,50,30]", dataclasses.replace(old, shrink_factor=4)),
        ("shrink 2", dataclasses.replace(base, shrink_factor=2)),
        ("shrink 4, 4x50 its", dataclasses.replace(base, shrink_factor=4, iterations=four_levels)),
    ]
    if not quick:
        settings += [("defaults, shrink 2", dataclasses.replace(defaults, shrink_factor=2))]
        settings += [("SimpleITK defaults", defaults)]
    return settings


def bench_steps(cases: dict[str, tuple[Synthetic, CaseFiles]], work: Path, repeats: int) -> None:
    """Table 1: seconds per step with params.yaml's settings."""
    rows = []
    for label, (_, files) in cases.items():
        for name, params in [("params.yaml", preprocess_params())]:
            tag = f"steps-{label}-{name}".replace(" ", "_")
            runs = [run_case(files, work / f"{tag}-{r}", params) for r in range(repeats)]
            best = {k: min(t[k] for t in runs) for k in runs[0]}
            props = json.loads((work / f"{tag}-0" / "cases" / files.case_id / "properties.json").read_text())
            shape = "x".join(str(s) for s in props["geometry"]["shape"])
            fitted = "x".join(str(s) for s in props["n4"]["modalities"]["t1"]["fitted_shape"])
            steps = [best["ingest"], best["bias_correct"], best["finalise"], best["total"]]
            rows.append([label, name, shape, fitted, *steps])
    n4 = preprocess_params().n4
    table(
        f"1. seconds per step per case (best of {repeats}; 1 ITK thread; params.yaml N4: shrink "
        f"{n4.shrink_factor}, iterations {list(n4.iterations)}, {n4.control_points} control points)",
        ["case", "settings", "grid", "N4 fit grid", "ingest", "bias_correct", "finalise", "total"],
        rows,
    )


def n4_quality(case: Synthetic, n4: N4Params, modalities: tuple[str, ...]) -> dict[str, float]:
    """Mean over ``modalities``: time, fraction of the log-bias variance removed, white-matter CoVs."""
    spacing = tuple(float(s) for s in np.linalg.norm(case.affine[:3, :3], axis=0))
    brain, wm = case.brain_mask, case.white_matter
    keys = ("seconds", "removed", "cov_before", "cov_after", "cov_true")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for m in modalities:
        image = np.clip(np.rint(case.images[m]), 0, 32767).astype(np.float32)
        start = time.perf_counter()
        corrected, log_bias, _ = n4_correct(image, brain, (spacing[0], spacing[1], spacing[2]), n4, threads=1)
        out["seconds"].append(time.perf_counter() - start)
        true = np.log(case.bias_fields[m][brain].astype(np.float64))
        est = log_bias[brain].astype(np.float64)
        true, est = true - true.mean(), est - est.mean()
        out["removed"].append(1 - float(np.var(true - est) / np.var(true)))
        unbiased = image / case.bias_fields[m]
        for key, img in (("cov_before", image), ("cov_after", corrected), ("cov_true", unbiased)):
            v = img[wm]
            out[key].append(float(v.std() / v.mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def bench_quality(cases: dict[str, tuple[Synthetic, CaseFiles]], quick: bool) -> None:
    modalities = ("t1",) if quick else MODALITIES
    rows = []
    for label, (case, _) in cases.items():
        for name, n4 in n4_settings(label.startswith("full"), quick):
            q = n4_quality(case, n4, modalities)
            quality = [q["seconds"], q["removed"], q["cov_before"], q["cov_after"], q["cov_true"]]
            rows.append(
                [label, name, n4.shrink_factor, str(list(n4.iterations)), ",".join(modalities), *quality]
            )
    table("2. N4 quality (mean over modalities; seconds per modality, 1 ITK thread)", QUALITY_HEADER, rows)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def bench_scaling(label: str, case: Synthetic, params: PreprocessParams, work: Path) -> None:
    """Table 3: two cases in one process vs two; one case's bias_correct with 1 vs 2 ITK threads."""
    second = synthetic_case(float(np.linalg.norm(case.affine[:3, 0])), index=1)
    folders = [write_nifti(c, work / "raw-scaling").folder for c in (case, second)]
    jobs = [(str(f), str(work / f"scale-{i}"), params.to_dict()) for i, f in enumerate(folders)]
    start = time.perf_counter()
    for job in jobs:
        _run_case_job(job)
    sequential = time.perf_counter() - start
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        list(pool.map(_sleep, [1.0, 1.0]))  # start both workers before timing
        start = time.perf_counter()
        list(pool.map(_run_case_job, [(j[0], j[1] + "-par", j[2]) for j in jobs]))
        parallel = time.perf_counter() - start

    files = case_files(folders[0], "brats2021")
    ingest(files, work / "threads" / "ingested.npz")
    outputs, seconds = {}, {}
    for name, threads in (("1a", 1), ("1b", 1), ("2a", 2), ("2b", 2)):
        out = work / "threads" / f"n4-{name}.npz"
        start = time.perf_counter()
        bias_correct(work / "threads" / "ingested.npz", out, params.n4, threads)
        seconds[name] = time.perf_counter() - start
        with np.load(out) as data:
            outputs[name] = data["image"]
    one, two = min(seconds["1a"], seconds["1b"]), min(seconds["2a"], seconds["2b"])
    setting = f"N4 shrink {params.n4.shrink_factor}"
    rows = [
        [label, setting, "2 cases, sequential", sequential, 1.0],
        [label, setting, "2 cases, 2 processes", parallel, sequential / parallel],
        [label, setting, "bias_correct, 1 ITK thread", one, 1.0],
        [label, setting, "bias_correct, 2 ITK threads", two, one / two],
    ]
    table(
        "3. scaling (wall seconds; speed-up vs 1 core)",
        ["case", "settings", "run", "seconds", "speed-up"],
        rows,
    )
    same = {
        k: outputs[a].tobytes() == outputs[b].tobytes() for k, a, b in (("1", "1a", "1b"), ("2", "2a", "2b"))
    }
    a, b = outputs["1a"].astype(np.float64), outputs["2a"].astype(np.float64)
    diff = float(np.abs(a - b).max() / np.abs(a).max())
    print(
        f"   bias_correct output byte-identical across two runs: 1 thread {same['1']}, "
        f"2 threads {same['2']}; 1 vs 2 threads identical: {a.tobytes() == b.tobytes()} "
        f"(largest difference {diff:.2g} of the intensity range)"
    )


ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def clinical_case(case: Synthetic) -> Synthetic:
    """0.5 x 0.5 x 5 mm from a 1 mm case: in-plane linear upsampling, 5 mm slabs averaged (480 x 480 x 31)."""
    from scipy import ndimage

    nz = case.seg.shape[2] // 5
    centre = slice(2, nz * 5, 5)
    brain = np.repeat(np.repeat(case.brain_mask[:, :, centre], 2, 0), 2, 1)
    images = {}
    for m, v in case.images.items():
        slab = v[:, :, : nz * 5].reshape(*v.shape[:2], nz, 5).mean(-1)
        images[m] = np.where(brain, ndimage.zoom(slab, (2, 2, 1), order=1, mode="nearest", grid_mode=True), 0)
    seg = np.repeat(np.repeat(case.seg[:, :, centre], 2, 0), 2, 1)
    affine = case.affine @ np.array([[0.5, 0, 0, -0.25], [0, 0.5, 0, -0.25], [0, 0, 5.0, 2.0], [0, 0, 0, 1]])
    wm = np.repeat(np.repeat(case.white_matter[:, :, centre], 2, 0), 2, 1)
    return Synthetic(case.case_id, images, seg, affine, {}, brain, wm)


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``: per address space, so a spawned process starts afresh;
    ``ru_maxrss`` would carry the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _resampling_job(args: tuple[str, str, dict[str, Any], list[float] | None, int]) -> dict[str, Any]:
    """One chain in this (fresh, one-thread) process: seconds per step, peak RSS, the processed grid."""
    folder, work, params, target, order = args
    before = peak_rss_mb()
    files = case_files(Path(folder), "brats2021")
    options = IngestOptions(
        target_spacing=None if target is None else (target[0], target[1], target[2]), image_order=order
    )
    times = preprocess_case(
        files,
        Path(work) / "case",
        PreprocessParams.from_dict(params),
        options=options,
        work_dir=Path(work) / "interim",
        threads=1,
    )
    props = json.loads((Path(work) / "case" / "properties.json").read_text())
    return {
        **times,
        "total": sum(times.values()),
        "grid": props["transforms"]["resampling"]["shape"],
        "peak_mb": peak_rss_mb(),
        "imports_mb": before,
    }


def _zoom_job(args: tuple[str]) -> list[list[Any]]:
    """Image resampling alone, 1 mm -> 2 mm, 4 channels, one thread: scipy 3D zoom vs separable vs order 1."""
    from scipy import ndimage

    from bratseg.spatial import resample

    (folder,) = args
    from bratseg.rawcase import read_case

    case = read_case(case_files(Path(folder), "brats2021"))
    mask = np.any(case.image != 0, axis=0)
    shape = resample.target_shape(mask.shape, case.geometry.spacing, (2.0, 2.0, 2.0))
    factors = [n / o for n, o in zip(shape, mask.shape, strict=True)]

    def scipy_zoom(order: int) -> np.ndarray:
        return np.stack(
            [ndimage.zoom(c, factors, order=order, mode="nearest", grid_mode=True) for c in case.image]
        )

    runs = {
        "ndimage.zoom order 3 (3D)": lambda: scipy_zoom(3),
        "separable order 3 (pipeline)": lambda: np.stack(
            [resample._zoom(c, shape, 3, None) for c in case.image]
        ),
        "ndimage.zoom order 1": lambda: scipy_zoom(1),
    }
    out, rows = {}, []
    for name, fn in runs.items():
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            out[name] = fn()
            seconds.append(time.perf_counter() - start)
        rows.append([name, min(seconds)])
    ref = out["ndimage.zoom order 3 (3D)"]
    inside = np.broadcast_to(resample._zoom(mask.astype(np.float32), shape, 1, None) >= 0.5, ref.shape)
    scale = float(np.abs(ref[inside]).max())
    for row, name in zip(rows, runs, strict=True):
        diff = np.abs(out[name] - ref)[inside]
        row += [rows[0][1] / row[1], f"{float(diff.max()) / scale:.1e}", f"{float(diff.mean()) / scale:.1e}"]
    return rows


def _in_fresh_process(fn: Any, args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, args).result()


def bench_resampling(work: Path, params: PreprocessParams, repeats: int = 2) -> None:
    """Table 4: the chain with resampling, one core, peak memory; then the image resampling alone."""
    os.environ.update(ONE_THREAD)  # inherited by the spawned processes (BLAS threads)
    one_mm = synthetic_case(1.0)
    raw = {
        "1 mm": write_nifti(one_mm, work / "raw-1mm"),
        "0.5x0.5x5": write_nifti(clinical_case(one_mm), work / "raw-clinical"),
    }
    del one_mm
    order = params.resample.image_order
    runs = [
        ("1 mm", None, order),
        ("1 mm", [2.0, 2.0, 2.0], order),
        ("1 mm", [2.0, 2.0, 2.0], 1),
        ("0.5x0.5x5", None, order),
        ("0.5x0.5x5", [2.0, 2.0, 2.0], order),
        ("0.5x0.5x5", [1.0, 1.0, 1.0], order),
    ]
    rows = []
    for i, (label, target, image_order) in enumerate(runs):
        jobs = [
            (str(raw[label].folder), str(work / f"resample-{i}-{r}"), params.to_dict(), target, image_order)
            for r in range(repeats)
        ]
        runs_of = [_in_fresh_process(_resampling_job, job) for job in jobs]
        t = {
            k: min(run[k] for run in runs_of) if isinstance(runs_of[0][k], float) else runs_of[0][k]
            for k in runs_of[0]
        }
        t["peak_mb"] = max(run["peak_mb"] for run in runs_of)
        grid = "x".join(str(v) for v in t["grid"])
        rows.append(
            [
                label,
                "native" if target is None else f"{target[0]:g} mm",
                image_order,
                grid,
                t["ingest"],
                t["bias_correct"],
                t["finalise"],
                t["total"],
                round(t["peak_mb"]),
                round(t["imports_mb"]),
            ]
        )
    table(
        "4. resampling: ingest (read, reorient, resample) -> N4 -> crop -> cache, seconds per case on one "
        f"core (best of {repeats} fresh processes, BLAS and ITK 1 thread; N4 shrink "
        f"{params.n4.shrink_factor})",
        [
            "case",
            "target",
            "image order",
            "processed grid",
            "ingest",
            "bias_correct",
            "finalise",
            "total",
            "peak RSS MB",
            "after imports MB",
        ],
        rows,
    )
    zoom_rows = _in_fresh_process(_zoom_job, (str(raw["1 mm"].folder),))
    table(
        "   image resampling alone, 1 mm 240x240x155 -> 2 mm, 4 channels, one thread (best of 2); difference "
        "from ndimage.zoom order 3 inside the brain, relative to its largest value",
        ["method", "seconds", "speed-up", "max diff", "mean diff"],
        zoom_rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also the full 240 x 240 x 155 grid")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and N4 settings, t1 only")
    parser.add_argument("--resampling", action="store_true", help="only table 4 (resampling)")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}")
    if args.resampling:
        with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
            bench_resampling(Path(tmp), preprocess_params(), repeats=1 if args.quick else 2)
        return
    sizes = [("default 2 mm", 2.0)] + ([("full 1 mm", 1.0)] if args.full else [])
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        work = Path(tmp)
        cases = {}
        for label, voxel in sizes:
            case = synthetic_case(voxel)
            cases[label] = (case, write_nifti(case, work / f"raw-{voxel:g}mm"))
            print(
                f"{label}: {case.case_id}, grid {case.seg.shape}, brain {int(case.brain_mask.sum())} voxels"
            )
        bench_steps(cases, work, repeats=1 if args.quick else 3)
        bench_quality(cases, args.quick)
        bench_scaling("default 2 mm", cases["default 2 mm"][0], preprocess_params(), work / "scale-2mm")
        if args.full:
            bench_scaling("full 1 mm", cases["full 1 mm"][0], preprocess_params(), work / "scale-1mm")
            bench_resampling(work / "resampling", preprocess_params(), repeats=1 if args.quick else 2)


if __name__ == "__main__":
    main()
