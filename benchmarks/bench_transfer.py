"""Transfer of a trained model beyond its own cohort: real labelled MRI and a held-out generator setting.

    python benchmarks/bench_transfer.py              # models/fold0/best.pt, params.yaml, ../shared/real
    python benchmarks/bench_transfer.py --model m.pt --heldout-cases 8 --own data/preprocessed --sweep

Per case it reports Dice of WT / TC / ET, predicted and true volumes (ml), the connected components of the
predicted whole tumour (26-connectivity) and how many of them touch no reference tumour (false-positive
components), and writes a slice overlay (reference filled, prediction dashed) as PNG. Everything goes to
``--out``: ``transfer.json`` (every row and the means), ``transfer.md`` (the tables, the CPU model, the
figures) and the PNGs.

(a) Real cases: every labelled case under ``<real>/brats2021`` (skipped with a message when the folder is
    absent; the pipeline, tests and CI never need it). Each case goes through ``bratseg predict``'s own path
    (:func:`bratseg.pipeline.predict.predict_case`: reoriented, resampled to the spacing the model was
    trained at, preprocessed as at training time, segmented, post-processed, written back onto its native
    1 mm grid as NIfTI) and is scored on that grid. ``--native`` also segments it on its own grid without
    resampling (what the pipeline did before it resampled).
(b) Out-of-generator cases: the embedded cohort generator with the held-out variant (``HELDOUT``: tumour
    shapes, contrast and acquisition families that training never sees), at the model's spacing. The
    setting is fixed here, whatever ``params.yaml``'s cohort says, so that every model meets the same cases.
(c) ``--own``: the test split of the model's own preprocessed cohort.

``--sweep`` also scores the post-processing grid ``SWEEP`` on the same network outputs, ``--thresholds``
the post-processing of ``--params`` at other probability thresholds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from bratseg.cache import PreprocessedCohort, open_case
from bratseg.cohort.generate import generate_case, write_case
from bratseg.config import CohortParams, InferenceParams, PostprocessParams, PreprocessParams
from bratseg.evaluation.figures import case_figure
from bratseg.evaluation.metrics import dice
from bratseg.inference.postprocess import classes_from_probabilities, postprocess
from bratseg.inference.predict import TrainedModel, restore_original
from bratseg.labels import label_set
from bratseg.layouts import MODALITIES, CaseFiles, case_files, discover_cases
from bratseg.paramsfile import load_params
from bratseg.pipeline.predict import ingest_options, predict_case
from bratseg.preprocess.steps.chain import preprocess_case
from bratseg.rawcase import read_case, reference_classes
from bratseg.runtime import configure_determinism

ROOT = Path(__file__).resolve().parents[1]
Classes = npt.NDArray[np.uint8]
REGIONS = ("WT", "TC", "ET")
#: The held-out generator setting: a complete cohort section, fixed here so that it does not follow the
#: training defaults. Variant ``heldout``: thresholded-field tumour shapes, one contrast table with a small
#: jitter, box-profile slices and Gaussian noise (see ``bratseg.cohort.generate``), other seeds.
HELDOUT: dict[str, Any] = {
    "n_cases": 8,
    "seed": 90210,
    "voxel_mm": 2.0,
    "field_of_view_mm": [240, 240, 155],
    "variant": "heldout",
    "tumour_mix": {"enhancing": 0.45, "cystic": 0.15, "non_enhancing": 0.4},
    "multifocal_fraction": 0.15,
    "lobes": [1, 4],
    "core_radius_mm": [7.0, 20.0],
    "edema_ratio": [1.4, 2.3],
    "non_enhancing_edema_ratio": [1.0, 1.6],
    "necrosis_ratio": [0.35, 0.75],
    "deformation_mm": 3.0,
    "rotation_deg": 8.0,
    "scale_jitter": 0.08,
    "mass_effect_mm": 5.0,
    "ventricle_mm": 4.0,
    "atrophy": 0.5,
    "contrast_jitter": 1.0,
    "gamma": 0.3,
    "texture": 0.06,
    "slice_thickness_mm": [0.0, 6.0],
    "skull_strip": 0.6,
    "distractors": 2.0,
    "bias_field": 0.4,
    "noise": 0.05,
}
#: Post-processing settings compared with ``--sweep``: (min_component_voxels, et_min_voxels, min_core_voxels,
#: et_min_mean_probability).
SWEEP = [
    (0, 0, 0, 0.0),
    (25, 0, 0, 0.0),
    (100, 0, 0, 0.0),
    (200, 0, 0, 0.0),
    (400, 0, 0, 0.0),
    (0, 50, 0, 0.0),
    (100, 50, 0, 0.0),
    (200, 50, 0, 0.0),
    (400, 50, 0, 0.0),
    (100, 50, 1, 0.0),
    (100, 50, 10, 0.0),
    (100, 50, 50, 0.0),
    (0, 50, 10, 0.0),
    (200, 50, 10, 0.0),
    (100, 100, 10, 0.0),
    (100, 150, 10, 0.0),
    (100, 200, 10, 0.0),
    (100, 50, 10, 0.5),
    (100, 50, 10, 0.6),
    (100, 50, 10, 0.65),
    (100, 50, 10, 0.7),
    (100, 50, 10, 0.75),
    (100, 0, 10, 0.65),
    (100, 0, 10, 0.7),
]
STRUCTURE = ndimage.generate_binary_structure(3, 3)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def post_variants(
    params: PostprocessParams, sweep: bool, thresholds: list[float] | None = None
) -> list[PostprocessParams]:
    """The post-processing of ``--params`` first, then (with ``sweep``) the grid ``SWEEP``, then the
    ``--params`` settings at each of ``thresholds``."""
    out = [params]
    grid = SWEEP if sweep else []
    candidates = [
        replace(params, min_component_voxels=c, et_min_voxels=e, min_core_voxels=k, et_min_mean_probability=q)
        for c, e, k, q in grid
    ]
    candidates += [replace(params, threshold=t) for t in thresholds or []]
    for variant in candidates:
        if variant not in out:
            out.append(variant)
    return out


def tag(post: PostprocessParams) -> str:
    return (
        f"thr {post.threshold:g} mcv {post.min_component_voxels} et {post.et_min_voxels} "
        f"core {post.min_core_voxels} etp {post.et_min_mean_probability:g}"
    )


def score(pred: Classes, ref: Classes, spacing: tuple[float, ...]) -> dict[str, Any]:
    """Dice per region (BraTS empty convention), volumes (ml), whole-tumour components (all, false pos.)."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    labels = label_set("brats2021")
    p, r = labels.region_masks(pred, REGIONS), labels.region_masks(ref, REGIONS)
    row: dict[str, Any] = {}
    for i, region in enumerate(REGIONS):
        row[f"dice_{region}"] = round(dice(p[i], r[i], empty="brats"), 4)
        row[f"pred_ml_{region}"] = round(float(p[i].sum()) * voxel_ml, 2)
        row[f"true_ml_{region}"] = round(float(r[i].sum()) * voxel_ml, 2)
    comps, n = ndimage.label(p[0], structure=STRUCTURE)
    hit = np.unique(comps[r[0] & (comps > 0)])
    row["components"] = int(n)
    row["fp_components"] = int(n - hit.size)
    row["true_components"] = int(ndimage.label(r[0], structure=STRUCTURE)[1])
    return row


class Segmenter:
    """A trained model with the evaluation's inference settings: raw case -> classes on its native grid."""

    def __init__(self, path: Path, inference: InferenceParams) -> None:
        self.path = path
        self.model = TrainedModel.load(path, "cpu")
        self.inference = inference
        self.preprocess = PreprocessParams.from_dict(self.model.meta["preprocess"])

    @property
    def spacing(self) -> float:
        target = self.model.meta.get("target_spacing_mm")
        return float(target[0]) if target else float(self.model.meta.get("cohort", {}).get("voxel_mm", 2.0))

    def segment(
        self, files: CaseFiles, posts: list[PostprocessParams], work: Path, native: bool = False
    ) -> list[Classes]:
        """Classes on the native grid per post-processing of ``posts`` (one preprocessing and inference).

        The steps of :func:`~bratseg.pipeline.predict.predict_case`, with the inference shared by the
        post-processing variants; ``native`` keeps the case's own grid instead of the model's spacing.
        """
        options = ingest_options(self.model.meta)
        if native:
            options = replace(options, target_spacing=None)
        preprocess_case(files, work / files.case_id, self.preprocess, options=options, work_dir=work)
        case = open_case(work / files.case_id)
        probs = self.model.probabilities(case.image(), self.inference)
        return self.decode(probs, posts, case.properties)

    def decode(
        self, probs: npt.NDArray[np.float32], posts: list[PostprocessParams], properties: dict[str, Any]
    ) -> list[Classes]:
        out = []
        for post in posts:
            raw, _ = classes_from_probabilities(probs, self.model.meta["target"], post, self.model.labels)
            classes, _ = postprocess(raw, post)
            out.append(restore_original(classes.astype(np.uint8), properties)[0])
        return out


def figure(
    files: CaseFiles, pred: Classes, ref: Classes, spacing: tuple[float, ...], title: str, path: Path
) -> str:
    image = read_case(files).image
    path.write_bytes(case_figure({m: image[i] for i, m in enumerate(MODALITIES)}, ref, pred, spacing, title))
    return path.name


def rows_for(
    set_name: str,
    case_id: str,
    mode: str,
    posts: list[PostprocessParams],
    preds: list[Classes],
    ref: Classes,
    spacing: tuple[float, ...],
    seconds: float,
) -> list[dict[str, Any]]:
    return [
        {
            "set": set_name,
            "case": case_id,
            "mode": mode,
            "post": tag(post),
            **score(pred, ref, spacing),
            "seconds": round(seconds, 1),
            "figure": "",
        }
        for post, pred in zip(posts, preds, strict=True)
    ]


def run_real(
    args: argparse.Namespace, seg: Segmenter, posts: list[PostprocessParams]
) -> list[dict[str, Any]]:
    folder = args.real / "brats2021"
    cases = [c for c in discover_cases(folder) if c.seg is not None] if folder.is_dir() else []
    if not cases:
        print(f"real cases: none ({folder} holds no labelled case)")
        return []
    rows = []
    for files in cases:
        raw = read_case(files)
        assert raw.classes is not None
        ref, spacing = raw.classes, tuple(float(s) for s in raw.geometry.spacing)
        # the command's own path: bratseg predict, written on the native grid
        t0 = time.perf_counter()
        out_nii = args.out / f"real_{files.case_id}_pred.nii.gz"
        predict_case(files, seg.path, out_nii, seg.inference, posts[0], "cpu")
        img: Any = nib.load(out_nii)
        written = files.convention.to_classes(np.asarray(img.dataobj).astype(np.int64))
        mode = f"predict ({seg.spacing:g} mm)"
        new = rows_for(
            "real", files.case_id, mode, posts[:1], [written], ref, spacing, time.perf_counter() - t0
        )
        new[0]["figure"] = figure(
            files,
            written,
            ref,
            spacing,
            f"{files.case_id}: bratseg predict",
            args.out / f"real_{files.case_id}.png",
        )
        if len(posts) > 1:
            with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
                preds = seg.segment(files, posts, Path(tmp))
            same = bool(np.array_equal(preds[0], written))
            print(f"{files.case_id}: the shared-inference path equals bratseg predict: {same}")
            new += rows_for("real", files.case_id, mode, posts[1:], preds[1:], ref, spacing, 0.0)
        if args.native:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
                preds = seg.segment(files, posts, Path(tmp), native=True)
            native = rows_for(
                "real",
                files.case_id,
                "native 1 mm grid",
                posts,
                preds,
                ref,
                spacing,
                time.perf_counter() - t0,
            )
            native[0]["figure"] = figure(
                files,
                preds[0],
                ref,
                spacing,
                f"{files.case_id}: on its 1 mm grid",
                args.out / f"real_{files.case_id}_native.png",
            )
            new += native
        for row in new:
            if row["post"] == tag(posts[0]):
                print(line(row), flush=True)
        rows += new
    return rows


def run_heldout(
    args: argparse.Namespace, seg: Segmenter, posts: list[PostprocessParams]
) -> list[dict[str, Any]]:
    cohort = CohortParams.from_dict({**HELDOUT, "n_cases": args.heldout_cases, "voxel_mm": seg.spacing})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        work = Path(tmp)
        for index in range(cohort.n_cases):
            t0 = time.perf_counter()
            case = generate_case(index, cohort)
            write_case(case, work / "raw")
            files = case_files(work / "raw" / case.case_id)
            preds = seg.segment(files, posts, work / "cases")
            raw = read_case(files)
            assert raw.classes is not None
            spacing = tuple(float(s) for s in raw.geometry.spacing)
            new = rows_for(
                "heldout",
                case.case_id,
                case.tumour_type,
                posts,
                preds,
                raw.classes,
                spacing,
                time.perf_counter() - t0,
            )
            if index < args.heldout_figures:
                new[0]["figure"] = figure(
                    files,
                    preds[0],
                    raw.classes,
                    spacing,
                    f"{case.case_id} (held-out generator, {case.tumour_type})",
                    args.out / f"heldout_{case.case_id}.png",
                )
            print(line(new[0]), flush=True)
            rows += new
    return rows


def run_own(args: argparse.Namespace, seg: Segmenter, posts: list[PostprocessParams]) -> list[dict[str, Any]]:
    root = Path(args.own)
    cohort = PreprocessedCohort(
        root / "cases", root / "splits.json", root / "manifest.csv", root / "fingerprint.json"
    )
    rows = []
    for case in cohort.load_split()["test"]:
        t0 = time.perf_counter()
        probs = seg.model.probabilities(case.image(), seg.inference)
        preds = seg.decode(probs, posts, case.properties)
        ref = reference_classes(case.properties)
        spacing = tuple(float(s) for s in case.properties["geometry"]["spacing"])
        new = rows_for(
            "own", case.case_id, "test split", posts, preds, ref, spacing, time.perf_counter() - t0
        )
        print(line(new[0]), flush=True)
        rows += new
    return rows


def line(row: dict[str, Any]) -> str:
    dices = " ".join(f"{r} {row[f'dice_{r}']:.3f}" for r in REGIONS)
    vols = " ".join(f"{r} {row[f'pred_ml_{r}']:.1f}/{row[f'true_ml_{r}']:.1f}" for r in REGIONS)
    return (
        f"{row['set']:8s} {row['case']:16s} {row['mode']:18s} Dice {dices} | ml pred/true {vols} | "
        f"components {row['components']} ({row['fp_components']} false) / {row['true_components']} | "
        f"{row['seconds']:.0f} s"
    )


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Means per (set, mode for real cases, post-processing)."""
    keys = [f"dice_{r}" for r in REGIONS] + ["components", "fp_components"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        mode = r["mode"] if r["set"] == "real" else "all"
        groups.setdefault(f"{r['set']} | {mode} | {r['post']}", []).append(r)
    return {
        k: {"cases": len(v), **{key: round(float(np.mean([r[key] for r in v])), 4) for key in keys}}
        for k, v in groups.items()
    }


def markdown(
    args: argparse.Namespace,
    seg: Segmenter,
    rows: list[dict[str, Any]],
    summary: dict[str, dict[str, float]],
    posts: list[PostprocessParams],
) -> str:
    out = [
        "# Transfer benchmark",
        "",
        f"Model `{args.model}` (trained at {seg.spacing:g} mm); post-processing `{tag(posts[0])}` "
        f"(threshold {posts[0].threshold}); CPU {cpu_model()}.",
        "",
        "## Per case (default post-processing)",
        "",
        "| set | case | mode | Dice WT | Dice TC | Dice ET | WT ml pred / true | TC ml pred / true | "
        "components (false) / true | figure |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["post"] != tag(posts[0]):
            continue
        fig = f"![{r['case']}]({r['figure']})" if r["figure"] else ""
        out.append(
            f"| {r['set']} | {r['case']} | {r['mode']} | {r['dice_WT']:.3f} | {r['dice_TC']:.3f} | "
            f"{r['dice_ET']:.3f} | {r['pred_ml_WT']:.1f} / {r['true_ml_WT']:.1f} | "
            f"{r['pred_ml_TC']:.1f} / {r['true_ml_TC']:.1f} | {r['components']} ({r['fp_components']}) / "
            f"{r['true_components']} | {fig} |"
        )
    out += [
        "",
        "## Means",
        "",
        "| set | mode | post-processing | cases | Dice WT | Dice TC | Dice ET | "
        "components | false-positive components |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in summary.items():
        s, mode, post = key.split(" | ")
        out.append(
            f"| {s} | {mode} | {post} | {m['cases']:g} | {m['dice_WT']:.3f} | {m['dice_TC']:.3f} | "
            f"{m['dice_ET']:.3f} | {m['components']:.1f} | {m['fp_components']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "fold0" / "best.pt")
    parser.add_argument(
        "--params",
        type=Path,
        default=ROOT / "params.yaml",
        help="inference and post-processing settings (sections inference, postprocess)",
    )
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "real")
    parser.add_argument(
        "--native",
        action="store_true",
        help="also segment the real cases on their own grid, without resampling",
    )
    parser.add_argument("--heldout-cases", type=int, default=8)
    parser.add_argument("--heldout-figures", type=int, default=2)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument(
        "--own",
        type=Path,
        default=None,
        help="also score the test split of this preprocessed cohort (e.g. data/preprocessed)",
    )
    parser.add_argument("--sweep", action="store_true", help="also score the post-processing grid SWEEP")
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        metavar="T",
        help="also score the --params post-processing at these probability thresholds (each in (0, 1))",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "transfer")
    args = parser.parse_args()
    if any(not 0.0 < t < 1.0 for t in args.thresholds or []):
        parser.error(f"--thresholds: each must lie in (0, 1), got {args.thresholds}")
    if not args.model.is_file():
        raise SystemExit(f"bench_transfer: model {args.model} not found (train one with dvc repro)")
    args.out.mkdir(parents=True, exist_ok=True)
    params = load_params(args.params)
    configure_determinism(params.train.num_threads)
    seg = Segmenter(args.model, params.inference)
    posts = post_variants(params.postprocess, args.sweep, args.thresholds)
    print(f"model {args.model}, trained at {seg.spacing:g} mm, CPU {cpu_model()}; default {tag(posts[0])}")
    rows: list[dict[str, Any]] = []
    if not args.skip_real:
        rows += run_real(args, seg, posts)
    if args.heldout_cases > 0:
        rows += run_heldout(args, seg, posts)
    if args.own is not None:
        rows += run_own(args, seg, posts)
    summary = summarise(rows)
    for key, value in summary.items():
        print(f"mean {key}: {value}")
    (args.out / "transfer.json").write_text(
        json.dumps({"cpu": cpu_model(), "model": str(args.model), "rows": rows, "summary": summary}, indent=2)
        + "\n"
    )
    (args.out / "transfer.md").write_text(markdown(args, seg, rows, summary, posts))
    print(f"wrote {args.out / 'transfer.json'}, {args.out / 'transfer.md'} and the figures beside them")


if __name__ == "__main__":
    main()
