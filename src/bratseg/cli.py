"""Command line: ``bratseg predict`` segments new cases with a trained model; ``bratseg evaluate`` scores
segmentation files as the BraTS challenges do (see :mod:`bratseg.pipeline.evaluate_files`).

    bratseg predict --model models --case BraTS-GLI-00042-000/ --output seg.nii.gz
    bratseg predict --model models/fold0/best.pt models/fold1/best.pt --case BraTS-GLI-00042-000/ \\
        --output seg.nii.gz
    bratseg predict --model models --t1 a.nii.gz --t1ce b.nii.gz --t2 c.nii.gz --flair d.nii.gz \\
        --output seg.nii.gz

A case goes through the same preprocessing steps as the training data (ingest, N4, normalise, crop), with
the preprocessing parameters recorded in the model, then sliding-window inference with the ``inference``
section of ``--params`` (default: ./params.yaml): several models (``--model`` takes checkpoints, or the
models folder: every fold the pipeline trained) are an ensemble, their probabilities averaged. The
post-processing is the one the pipeline chose for the models (``postprocessing.json`` in the checkpoints'
folder or the one above it), else the ``postprocess`` section of ``--params``. The segmentation is
written on the exact grid of the input and in its label convention (enhancing tumour 4 for BraTS 2020/2021,
3 for 2023+). Like the pipeline scripts, this entry point reads the YAML (through
:mod:`bratseg.paramsfile`, with the pipeline's schema); the library itself does not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bratseg.errors import BratsegError, ConfigError
from bratseg.labels import LABEL_SETS
from bratseg.layouts import LAYOUTS, MODALITIES, CaseFiles, case_files
from bratseg.paramsfile import load_params
from bratseg.steprun import run_step


def _files_from_args(args: argparse.Namespace) -> CaseFiles:
    singles = {m: getattr(args, m) for m in MODALITIES}
    if args.case is not None:
        if any(singles.values()):
            raise ConfigError("predict: give either --case or the four modality files, not both")
        if not args.case.is_dir():
            raise ConfigError(f"predict: case folder {args.case} does not exist")
        try:
            return case_files(args.case, args.layout, args.labels)
        except ValueError as exc:
            raise ConfigError(f"predict: {exc}") from exc
    missing = [f"--{m}" for m, p in singles.items() if p is None]
    if missing:
        raise ConfigError(f"predict: give --case, or --t1 --t1ce --t2 --flair (missing {' '.join(missing)})")
    layout = "brats2021" if args.layout == "auto" else args.layout
    labels = LAYOUTS[layout].labels if args.labels == "auto" else args.labels
    case_id = args.case_id or Path(singles["t1"]).name.split(".")[0]
    images = {m: Path(p) for m, p in singles.items()}
    return CaseFiles(case_id, Path(singles["t1"]).parent, layout, images, None, labels, (labels,))


def _predict(args: argparse.Namespace) -> None:
    from bratseg.pipeline.predict import predict_case

    files = _files_from_args(args)
    params = load_params(args.params)
    for model in args.model:
        if not model.exists():
            raise ConfigError(f"predict: model {model} not found (train one with dvc repro)")
    if args.output.exists() and not args.overwrite:
        raise BratsegError(f"predict: {args.output} exists (pass --overwrite to replace it)")
    info = predict_case(
        files, args.model, args.output, params.inference, params.postprocess, args.device, args.postprocessing
    )
    print(
        f"{files.case_id}: wrote {args.output} ({files.convention.name} labels; {info['models']} model(s); "
        f"post-processing {info['postprocessing']}, from {info['postprocessing_from']}; {info})"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from bratseg.pipeline.evaluate_files import evaluate_files

    params = load_params(args.params).metrics
    document, errors = evaluate_files(
        args.pred,
        args.ref,
        params,
        labels=args.labels,
        preset=args.preset,
        matching=args.matching,
        hd95_units=args.hd95_units,
        output=args.output,
        csv=args.csv,
    )
    summary = document["summary"]
    for region, stats in (summary.get("dice") or {}).items():
        if isinstance(stats, dict):
            lesion = (summary.get("lesion_dice") or {}).get(region, {})
            n = summary["n_cases"]
            print(f"{region}: Dice {stats['mean']} (lesion-wise {lesion.get('mean')}) over {n} case(s)")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if errors:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bratseg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="segment one case with a trained model")
    p.add_argument(
        "--model",
        type=Path,
        nargs="+",
        required=True,
        help="trained model(s): checkpoints (models/fold0/best.pt ...) or the models folder (an ensemble)",
    )
    p.add_argument(
        "--postprocessing",
        type=Path,
        help="a postprocessing.json to apply (default: the one beside the models, else params postprocess)",
    )
    p.add_argument("--case", type=Path, help="a BraTS case folder (2018-2025 naming)")
    for m in MODALITIES:
        p.add_argument(f"--{m}", type=Path, help=f"{m} image (instead of --case)")
    p.add_argument("--case-id", help="case id for messages when giving single files (default: t1 file name)")
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *LAYOUTS],
        help="file naming (single files default to brats2021)",
    )
    p.add_argument(
        "--labels",
        default="auto",
        choices=["auto", *LABEL_SETS],
        help="label set of the output (auto: from the layout; single files: brats2021, enhancing = 4)",
    )
    p.add_argument("--output", type=Path, required=True, help="segmentation to write (.nii.gz)")
    p.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="the pipeline's parameters; inference and postprocess are used (default: params.yaml)",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    e = sub.add_parser("evaluate", help="score segmentations against references (BraTS metrics)")
    e.add_argument("--pred", type=Path, required=True, help="a prediction file, or a folder of them")
    e.add_argument(
        "--ref", type=Path, required=True, help="the reference file, or a folder (paired by BraTS id)"
    )
    e.add_argument("--labels", default="auto", choices=["auto", *LABEL_SETS], help="label set of the files")
    e.add_argument(
        "--preset", choices=["gli", "men", "met", "ped", "ssa"], help="lesion-wise challenge preset"
    )
    e.add_argument("--matching", choices=["brats2023", "panoptica"], help="lesion matching")
    e.add_argument("--hd95-units", choices=["mm", "voxel"], help="HD95 in millimetres or voxels")
    e.add_argument("--output", type=Path, help="JSON with one entry per case and the summary")
    e.add_argument("--csv", type=Path, help="CSV with one row per case")
    e.add_argument("--params", type=Path, default=Path("params.yaml"), help="metrics defaults (params.yaml)")
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        run_step("evaluate", lambda: _evaluate(args))
    else:
        run_step("predict", lambda: _predict(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
