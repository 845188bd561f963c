"""By-hand check on real MRI: Dice per region of ``bratseg predict``, and its resampling self-consistency.

Never run by the tests or CI: it needs real scans (by default ``../shared/real`` beside the repository: a
labelled BraTS 2021-layout case and an unlabelled BraTS 2023 case, 1 mm) and a trained model::

    python scripts/validate_real.py --model models/fold0/best.pt [--real ../shared/real] [--params P]

For every case found under ``--real`` (any layout ``bratseg.layouts`` reads), three paths with the same model:

A. ``predict``: the code of ``bratseg predict`` (:func:`bratseg.pipeline.predict.predict_case`): the case is
   resampled to the spacing recorded in the model, segmented, and written back on its native 1 mm grid.
B. ``pre-resampled``: the raw files resampled to the model's spacing beforehand, outside the pipeline
   (nibabel ``resample_to_output``, world space, RAS output grid; images spline order 3 inside the resampled
   brain mask, zero outside; the reference nearest neighbour), then the same ``predict_case``, which finds
   them at the model's spacing and does not resample.
C. ``native`` (``--native``): the model applied at the case's own spacing without resampling (the behaviour
   before resampling existed; slow at 1 mm on a CPU).

Printed: Dice per evaluated region against the reference (A and C at 1 mm; B at its own grid against the
reference resampled with it, and mapped back to 1 mm with nearest neighbour), the agreement of A and B
(Dice between the two predictions at 1 mm, also for an unlabelled case), and the self-consistency check of
the issue: ``|Dice(A) - Dice(B)| <= 0.02`` per region.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to, resample_to_output

from bratseg.cache import open_case
from bratseg.inference.predict import TrainedModel, predict_cached_case
from bratseg.labels import LabelSet
from bratseg.layouts import MODALITIES, CaseFiles, case_files, discover_cases
from bratseg.paramsfile import load_params
from bratseg.pipeline.predict import predict_case
from bratseg.preprocess.steps.chain import preprocess_case
from bratseg.preprocess.steps.ingest import IngestOptions
from bratseg.rawcase import read_segmentation

TOLERANCE = 0.02
REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


def find_cases(real: Path) -> list[CaseFiles]:
    """The cases under the sub-folders of ``real`` that have all four images (a folder of other material,
    e.g. ``brats2021-algorithms`` with the same case ids and only segmentations, is skipped)."""
    cases: list[CaseFiles] = []
    for sub in sorted(p for p in real.iterdir() if p.is_dir()):
        try:
            found = discover_cases(sub)
        except ValueError:
            continue
        cases.extend(c for c in found if all(Path(c.images[m]).exists() for m in MODALITIES))
    return cases


def classes_of(path: Path, labels: LabelSet, case_id: str) -> np.ndarray:
    return read_segmentation(case_id, path, labels)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(a & b) / total


def region_dice(labels: LabelSet, got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    masks = zip(labels.region_names, labels.region_masks(got), labels.region_masks(want), strict=True)
    return {name: dice(g, w) for name, g, w in masks}


def pre_resample(files: CaseFiles, root: Path, spacing: list[float]) -> CaseFiles:
    """The case's files resampled to ``spacing`` outside the pipeline, written as a case of its layout."""
    folder = root / files.case_id
    folder.mkdir(parents=True)
    t1 = nib.load(files.images["t1"])
    nonzero = np.any([np.asanyarray(nib.load(files.images[m]).dataobj) != 0 for m in MODALITIES], axis=0)
    brain = nib.Nifti1Image(nonzero.astype(np.float32), t1.affine)
    mask = np.asarray(resample_to_output(brain, spacing, order=1).dataobj) >= 0.5
    for modality in MODALITIES:
        img = nib.load(files.images[modality])
        data = np.asarray(img.dataobj, dtype=np.float32)
        out = resample_to_output(nib.Nifti1Image(data, img.affine), spacing, order=3)
        values = np.where(mask, np.asarray(out.dataobj), 0).astype(np.float32)
        nib.save(nib.Nifti1Image(values, out.affine), folder / Path(files.images[modality]).name)
    if files.seg is not None:
        seg = nib.load(files.seg)
        out = resample_to_output(nib.Nifti1Image(np.asarray(seg.dataobj), seg.affine), spacing, order=0)
        nib.save(nib.Nifti1Image(np.rint(out.dataobj).astype(np.uint8), out.affine), folder / files.seg.name)
    return case_files(folder, files.layout, files.labels)


def native_prediction(files: CaseFiles, model_path: Path, output: Path, params: Any) -> None:
    """Path C: the model at the case's own spacing (no resampling), written like predict_case writes."""
    from bratseg.config import PreprocessParams
    from bratseg.inference.predict import write_segmentation

    model = TrainedModel.load(model_path, "cpu")
    with tempfile.TemporaryDirectory(prefix="validate-native-") as tmp:
        preprocess = PreprocessParams.from_dict(model.meta["preprocess"])
        preprocess_case(
            files, Path(tmp) / "case", preprocess, options=IngestOptions(), work_dir=Path(tmp) / "w"
        )
        case = open_case(Path(tmp) / "case")
        classes, geometry, _ = predict_cached_case(model, case, params.inference, params.postprocess)
    write_segmentation(output, classes, geometry, files.labels)


def back_to(path: Path, reference: Path) -> np.ndarray:
    """The label file ``path`` on the grid of ``reference`` (nearest neighbour, world space)."""
    return np.rint(np.asarray(resample_from_to(nib.load(path), nib.load(reference), order=0).dataobj)).astype(
        np.int64
    )


def fmt(d: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in d.items())


def validate(files: CaseFiles, model_path: Path, params: Any, work: Path, native: bool) -> dict[str, Any]:
    model = TrainedModel.load(model_path, "cpu")
    spacing = model.meta.get("target_spacing_mm")
    if spacing is None:
        raise SystemExit(f"{model_path}: the model records no training spacing (trained before resampling)")
    labels = files.convention
    result: dict[str, Any] = {"case": files.case_id, "labels": labels.name, "model_spacing_mm": spacing}
    out = work / files.case_id
    out.mkdir(parents=True)
    start = time.perf_counter()
    predict_case(files, model_path, out / "A.nii.gz", params.inference, params.postprocess, "cpu")
    result["seconds_A"] = time.perf_counter() - start
    pre = pre_resample(files, work / "pre-resampled", list(spacing))
    start = time.perf_counter()
    predict_case(pre, model_path, out / "B.nii.gz", params.inference, params.postprocess, "cpu")
    result["seconds_B"] = time.perf_counter() - start
    a = classes_of(out / "A.nii.gz", labels, files.case_id)
    b_native = labels.to_classes(back_to(out / "B.nii.gz", Path(files.images["t1"])))
    result["agreement_A_B"] = region_dice(labels, a, b_native)
    if native:
        start = time.perf_counter()
        native_prediction(files, model_path, out / "C.nii.gz", params)
        result["seconds_C"] = time.perf_counter() - start
    if files.seg is not None and pre.seg is not None:
        ref = classes_of(files.seg, labels, files.case_id)
        result["dice_A"] = region_dice(labels, a, ref)
        b = classes_of(out / "B.nii.gz", labels, files.case_id)
        result["dice_B"] = region_dice(labels, b, classes_of(pre.seg, labels, files.case_id))
        result["dice_B_at_native"] = region_dice(labels, b_native, ref)
        if native:
            result["dice_C"] = region_dice(labels, classes_of(out / "C.nii.gz", labels, files.case_id), ref)
        # the check, on the native grid (where predict delivers and the reference lives), and with B
        # scored on its own 2 mm grid against the reference resampled with it (the by-hand way)
        result["diff_native"] = {
            r: abs(result["dice_A"][r] - result["dice_B_at_native"][r]) for r in labels.region_names
        }
        result["diff_own_grid"] = {
            r: abs(result["dice_A"][r] - result["dice_B"][r]) for r in labels.region_names
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained model (models/fold0/best.pt)")
    parser.add_argument("--real", type=Path, default=REAL, help="folder of real cases")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="inference and postprocess")
    parser.add_argument("--native", action="store_true", help="also path C (no resampling; slow at 1 mm)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cases = find_cases(args.real)
    if not cases:
        print(f"no case found under {args.real}", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory(prefix="validate-real-") as tmp:
        for files in cases:
            r = validate(files, args.model, params, Path(tmp), args.native)
            results.append(r)
            print(f"\n{r['case']} ({r['labels']}; model trained at {r['model_spacing_mm']} mm)")
            for key, what in (
                ("dice_A", "A predict (resampled to the model, back to 1 mm)"),
                ("dice_B", "B pre-resampled by hand (at the model's spacing)"),
                ("dice_B_at_native", "B mapped back to 1 mm (nearest)"),
                ("dice_C", "C native 1 mm, no resampling"),
                ("agreement_A_B", "A vs B agreement at 1 mm"),
            ):
                if key in r:
                    print(f"  {what:<52} {fmt(r[key])}")
            for key, what in (("diff_native", "both at 1 mm"), ("diff_own_grid", "B at its own grid")):
                if key in r:
                    ok = all(v <= TOLERANCE for v in r[key].values())
                    verdict = "PASS" if ok else "FAIL"
                    print(f"  |Dice A - Dice B| <= {TOLERANCE}, {what:<18} {verdict}  {fmt(r[key])}")
            print(
                "  seconds: " + ", ".join(f"{k[-1]} {v:.0f}" for k, v in r.items() if k.startswith("seconds"))
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
