"""Transfer of a trained model beyond its own cohort: real labelled MRI and a held-out generator setting.

    python benchmarks/bench_transfer.py            # models/fold0/best.pt, params.yaml, ../shared/real
    python benchmarks/bench_transfer.py --model m.pt --heldout-cases 8 --out reports/transfer

Per case it prints Dice of WT / TC / ET, predicted and true volumes (ml), the number of connected components
of the predicted and the true whole tumour (26-connectivity), and writes a slice overlay (reference filled,
prediction dashed) as PNG, plus every figure as JSON (``transfer.json``).

(a) Real cases: every labelled BraTS 2021 case under ``<real>/brats2021`` (skipped with a message when the
    folder is absent; tests and CI never need it). Each case is scored twice on its own 1 mm grid: predicted
    as given, and predicted after resampling the scans to the model's training spacing (then the prediction
    back to the 1 mm grid). The resampling lives here, by hand, until the pipeline does it itself.
(b) Out-of-generator cases: the embedded cohort generator with the held-out setting (``HELDOUT``: tumour
    shapes, contrast and acquisition families that training never sees), at the training spacing.

Both go through the preprocessing recorded in the model (ingest, N4, normalise, crop) and the inference and
post-processing of ``--params``, exactly as ``bratseg predict`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from _params import load_params  # noqa: E402
from bratseg.preprocess.cache import load_split, open_case  # noqa: E402
from bratseg.preprocess.validate import ingest_case, reference_classes  # noqa: E402
from bratseg.training.determinism import configure_determinism  # noqa: E402

from bratseg.cohort.generate import generate_case, write_case  # noqa: E402
from bratseg.config import CohortParams, InferenceParams, PostprocessParams, PreprocessParams  # noqa: E402
from bratseg.evaluation.figures import case_figure  # noqa: E402
from bratseg.evaluation.metrics import dice  # noqa: E402
from bratseg.inference.postprocess import postprocess, probabilities_to_classes  # noqa: E402
from bratseg.inference.predict import TrainedModel, restore_original  # noqa: E402
from bratseg.labels import REGIONS, classes_to_regions, regions_to_classes  # noqa: E402
from bratseg.layouts import MODALITIES, CaseFiles, case_files, discover_cases  # noqa: E402
from bratseg.preprocess.steps import bias_correct, finalise, ingest  # noqa: E402

Classes = npt.NDArray[np.uint8]
#: The held-out generator setting (overrides of the ``cohort`` section): families training never sees.
HELDOUT: dict[str, Any] = {"variant": "heldout", "seed": 90210}
#: Post-processing settings compared with ``--sweep`` (min_component_voxels, et_min_voxels) on the model grid.
SWEEP = [(0, 0), (10, 0), (25, 0), (50, 0), (100, 0), (200, 0), (50, 25), (50, 50), (100, 50)]
STRUCTURE = ndimage.generate_binary_structure(3, 3)


def predict_files(
    model: TrainedModel, files: CaseFiles, inference: InferenceParams, threshold: float, work: Path
) -> tuple[Classes, dict[str, Any]]:
    """Preprocess a raw case as at training time and segment it, before post-processing.

    Returns the classes on the case's cropped grid and the cached case's properties (to undo the crop).
    """
    preprocess = PreprocessParams.from_dict(model.meta["preprocess"])
    ingest(files, work / "ingested.npz")
    bias_correct(work / "ingested.npz", work / "n4.npz", preprocess.n4)
    finalise(work / "n4.npz", work / files.case_id, preprocess)
    case = open_case(work / files.case_id)
    probs = model.probabilities(case.image(), inference)
    return probabilities_to_classes(probs, model.meta["target"], threshold), dict(case.properties)


def post_variants(params: PostprocessParams, sweep: bool) -> list[PostprocessParams]:
    """The post-processing of ``--params`` first, then (with ``sweep``) the grid ``SWEEP``."""
    out = [params]
    if sweep:
        for components, et in SWEEP:
            v = PostprocessParams(params.threshold, components, et)
            if v != params:
                out.append(v)
    return out


def _tag(post: PostprocessParams) -> str:
    return f"min_component_voxels={post.min_component_voxels} et_min_voxels={post.et_min_voxels}"


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def _target_grid(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty image covering the field of view of ``image`` with isotropic voxels of ``spacing_mm``."""
    old_sp = np.array(image.GetSpacing())
    old_size = np.array(image.GetSize())
    size = np.maximum(np.round(old_size * old_sp / spacing_mm), 1).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # the first voxel's corner stays where it was: centre moves by half a new voxel minus half an old one
    shift = direction @ ((spacing_mm - old_sp) / 2.0)
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(tuple(float(v) for v in np.array(image.GetOrigin()) + shift))
    return grid


def _resample(image: sitk.Image, grid: sitk.Image, linear: bool) -> sitk.Image:
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(image, grid, sitk.Transform(), interp, 0.0, image.GetPixelID())


def resample_case(files: CaseFiles, spacing_mm: float, dest: Path) -> CaseFiles:
    """Write ``files`` resampled to isotropic ``spacing_mm`` under ``dest`` (BraTS 2021 names, no seg).

    Images are low-pass filtered before linear resampling when the spacing grows (Gaussian, FWHM of the new
    voxel); the brain mask (voxels non-zero in any modality) is resampled on its own and everything outside
    it set to exactly 0, as skull-stripped inputs are.
    """
    images = {m: _read(files.images[m]) for m in MODALITIES}
    first = images[MODALITIES[0]]
    grid = _target_grid(first, spacing_mm)
    old = np.array(first.GetSpacing())
    mask_arr = np.any([sitk.GetArrayFromImage(img) != 0 for img in images.values()], axis=0)
    mask_img = sitk.GetImageFromArray(mask_arr.astype(np.float32))
    mask_img.CopyInformation(first)
    brain = sitk.GetArrayFromImage(_resample(mask_img, grid, linear=True)) >= 0.5
    folder = dest / files.case_id
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for m, img in images.items():
        sigma = np.sqrt(np.maximum(spacing_mm**2 - old**2, 0.0)) / 2.3548
        if sigma.max() > 0:
            img = sitk.SmoothingRecursiveGaussian(img, [float(s) for s in np.maximum(sigma, 1e-3)])
        arr = sitk.GetArrayFromImage(_resample(img, grid, linear=True))
        arr[~brain] = 0.0
        res = sitk.GetImageFromArray(arr.astype(np.float32))
        res.CopyInformation(grid)
        out[m] = folder / f"{files.case_id}_{m}.nii.gz"
        sitk.WriteImage(res, str(out[m]))
    return CaseFiles(files.case_id, folder, "brats2021", out, None)


def back_to_grid(classes: Classes, grid_file: Path, reference_file: Path) -> Classes:
    """Classes on the grid of ``grid_file`` brought to the grid of ``reference_file``.

    Each region mask (WT, TC, ET) is interpolated linearly and thresholded at 1/2; the nested masks are then
    resolved into classes again.
    """
    grid = _read(grid_file)
    ref = _read(reference_file)
    regions = classes_to_regions(classes)
    out = []
    for mask in regions:
        # nibabel (i, j, k) order -> SimpleITK array (k, j, i) order
        img = sitk.GetImageFromArray(np.ascontiguousarray(mask.T, dtype=np.float32))
        img.CopyInformation(grid)
        out.append(sitk.GetArrayFromImage(_resample(img, ref, linear=True)).T >= 0.5)
    return regions_to_classes(np.stack(out))


def components(mask: npt.NDArray[np.bool_]) -> int:
    """Number of 26-connected components of ``mask``."""
    return int(ndimage.label(mask, structure=STRUCTURE)[1])


def score(pred: Classes, ref: Classes, spacing: tuple[float, ...]) -> dict[str, Any]:
    """Dice per region (BraTS empty convention), volumes (ml) and whole-tumour component counts."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    p, r = classes_to_regions(pred), classes_to_regions(ref)
    row: dict[str, Any] = {}
    for i, region in enumerate(REGIONS):
        row[f"dice_{region}"] = round(dice(p[i], r[i], empty="brats"), 4)
        row[f"pred_ml_{region}"] = round(float(p[i].sum()) * voxel_ml, 2)
        row[f"true_ml_{region}"] = round(float(r[i].sum()) * voxel_ml, 2)
    row["pred_components"] = components(p[0])
    row["true_components"] = components(r[0])
    return row


def overlay(files: CaseFiles, pred: Classes, ref: Classes, title: str, path: Path) -> None:
    case = ingest_case(files)
    images = {m: case.image[i] for i, m in enumerate(MODALITIES)}
    path.write_bytes(case_figure(images, ref, pred, case.geometry.spacing, title))


def _ref_classes(files: CaseFiles) -> tuple[Classes, tuple[float, ...]]:
    case = ingest_case(files)
    assert case.classes is not None
    return case.classes, tuple(float(s) for s in case.geometry.spacing)


def real_cases(real: Path) -> list[CaseFiles]:
    folder = real / "brats2021"
    if not folder.is_dir():
        return []
    return [c for c in discover_cases(folder) if c.seg is not None]


def run_real(args: argparse.Namespace, model: TrainedModel, spacing_mm: float) -> list[dict[str, Any]]:
    params = load_params(args.params)
    variants = post_variants(params.postprocess, args.sweep)
    rows = []
    for files in real_cases(args.real):
        ref, spacing = _ref_classes(files)
        for mode in ("as given", f"resampled to {spacing_mm:g} mm"):
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
                work = Path(tmp)
                native = mode == "as given"
                source = files if native else resample_case(files, spacing_mm, work / "resampled")
                threshold = params.postprocess.threshold
                raw, props = predict_files(model, source, params.inference, threshold, work)
                for k, post in enumerate(variants):
                    classes, info = postprocess(raw, post)
                    pred, _ = restore_original(classes.astype(np.uint8), props)
                    if not native:
                        pred = back_to_grid(pred, source.images["t1"], files.images["t1"])
                    row = {"set": "real", "case": files.case_id, "mode": mode, "post": _tag(post),
                           **score(pred, ref, spacing), "removed_components": info["components_removed"],
                           "seconds": round(time.perf_counter() - t0, 1), "figure": ""}
                    if k == 0:
                        png = args.out / f"real_{files.case_id}_{'native' if native else 'resampled'}.png"
                        overlay(files, pred, ref, f"{files.case_id} ({mode})", png)
                        row["figure"] = png.name
                        print(_line(row), flush=True)
                    rows.append(row)
    return rows


def heldout_params(cohort: CohortParams, n_cases: int, spacing_mm: float) -> CohortParams:
    return CohortParams.from_dict({**cohort.to_dict(), **HELDOUT, "n_cases": n_cases, "voxel_mm": spacing_mm})


def run_heldout(args: argparse.Namespace, model: TrainedModel, spacing_mm: float) -> list[dict[str, Any]]:
    params = load_params(args.params)
    variants = post_variants(params.postprocess, args.sweep)
    cohort = heldout_params(params.cohort, args.heldout_cases, spacing_mm)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        work = Path(tmp)
        for index in range(cohort.n_cases):
            t0 = time.perf_counter()
            case = generate_case(index, cohort)
            write_case(case, work / "raw")
            files = case_files(work / "raw" / case.case_id)
            raw, props = predict_files(model, files, params.inference, params.postprocess.threshold, work)
            ref, spacing = _ref_classes(files)
            for k, post in enumerate(variants):
                classes, info = postprocess(raw, post)
                pred, _ = restore_original(classes.astype(np.uint8), props)
                row = {"set": "heldout", "case": case.case_id, "mode": case.tumour_type, "post": _tag(post),
                       **score(pred, ref, spacing), "removed_components": info["components_removed"],
                       "seconds": round(time.perf_counter() - t0, 1), "figure": ""}
                if k == 0:
                    if index < args.heldout_figures:
                        png = args.out / f"heldout_{case.case_id}.png"
                        title = f"{case.case_id} (held-out generator, {case.tumour_type})"
                        overlay(files, pred, ref, title, png)
                        row["figure"] = png.name
                    print(_line(row), flush=True)
                rows.append(row)
    return rows


def run_own(args: argparse.Namespace, model: TrainedModel) -> list[dict[str, Any]]:
    """The test split of the model's own cohort (``--own``: data/preprocessed of this workspace)."""
    params = load_params(args.params)
    variants = post_variants(params.postprocess, args.sweep)
    rows = []
    for case in load_split(args.own)["test"]:
        t0 = time.perf_counter()
        probs = model.probabilities(case.image(), params.inference)
        raw = probabilities_to_classes(probs, model.meta["target"], params.postprocess.threshold)
        ref = reference_classes(case.properties)
        spacing = tuple(float(s) for s in case.properties["spacing"])
        for k, post in enumerate(variants):
            classes, info = postprocess(raw, post)
            pred, _ = restore_original(classes.astype(np.uint8), case.properties)
            row = {"set": "own", "case": case.case_id, "mode": "test split", "post": _tag(post),
                   **score(pred, ref, spacing), "removed_components": info["components_removed"],
                   "seconds": round(time.perf_counter() - t0, 1), "figure": ""}
            if k == 0:
                print(_line(row), flush=True)
            rows.append(row)
    return rows


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _line(row: dict[str, Any]) -> str:
    dices = " ".join(f"{r} {row[f'dice_{r}']:.3f}" for r in REGIONS)
    vols = " ".join(f"{r} {row[f'pred_ml_{r}']:.1f}/{row[f'true_ml_{r}']:.1f}" for r in REGIONS)
    return (
        f"{row['set']:8s} {row['case']:16s} {row['mode']:22s} Dice {dices} | ml pred/true {vols} | "
        f"components {row['pred_components']}/{row['true_components']} | {row['seconds']:.0f} s"
    )


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [f"dice_{r}" for r in REGIONS] + ["pred_components", "true_components"]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "fold0" / "best.pt")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "real")
    parser.add_argument("--spacing", type=float, default=None,
                        help="training spacing in mm (default: cohort.voxel_mm of the model's params.json)")
    parser.add_argument("--heldout-cases", type=int, default=8)
    parser.add_argument("--heldout-figures", type=int, default=2)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--own", type=Path, default=None,
                        help="also score the test split of this cache (e.g. data/preprocessed)")
    parser.add_argument("--sweep", action="store_true", help="also score the post-processing grid SWEEP")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "transfer")
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"bench_transfer: model {args.model} not found (train one with dvc repro)")
    args.out.mkdir(parents=True, exist_ok=True)
    spacing = args.spacing
    if spacing is None:
        trained = args.model.parent / "params.json"
        spacing = float(json.loads(trained.read_text())["cohort"]["voxel_mm"]) if trained.exists() else 2.0
    params = load_params(args.params)
    configure_determinism(params.train.num_threads)
    model = TrainedModel.load(args.model, "cpu")
    print(f"model {args.model}, training spacing {spacing:g} mm, CPU {cpu_model()}")
    print(f"postprocess {_tag(params.postprocess)}")
    rows: list[dict[str, Any]] = []
    if args.skip_real or not real_cases(args.real):
        print(f"real cases: skipped ({args.real / 'brats2021'} holds no labelled case)" if not args.skip_real
              else "real cases: skipped (--skip-real)")
    else:
        rows += run_real(args, model, spacing)
    if args.heldout_cases > 0:
        rows += run_heldout(args, model, spacing)
    if args.own is not None:
        rows += run_own(args, model)
    summary: dict[str, Any] = {}
    for name in ("real", "heldout", "own"):
        subset = [r for r in rows if r["set"] == name]
        modes = sorted({r["mode"] for r in subset}) if name == "real" else ["all"]
        for mode in modes:
            for post in dict.fromkeys(r["post"] for r in subset):
                chosen = [r for r in subset if r["post"] == post and (mode == "all" or r["mode"] == mode)]
                if chosen:
                    summary[f"{name} {mode} | {post}"] = _means(chosen)
    for key, value in summary.items():
        print(f"mean {key}: {value}")
    (args.out / "transfer.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.out / 'transfer.json'} and the figures beside it")


if __name__ == "__main__":
    main()
