"""DVC stage `report`: slice overlays, score distributions and a self-contained HTML page.

python workflow/scripts/report.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --predictions data/predictions --scores reports/eval/cases.csv \
    --metrics reports/eval/metrics.json --curves reports/train/fold0/curves.png --run models/fold0/run.json \
    --postprocessing models/postprocessing.json --html reports/report.html --figures reports/figures
"""

from __future__ import annotations

from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.pipeline.report import ReportInputs, run_report
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument("--predictions", type=Path, required=True, help="folder of segmentations (evaluate)")
    p.add_argument("--scores", type=Path, required=True, help="per-case scores (evaluate)")
    p.add_argument("--metrics", type=Path, required=True, help="summary (evaluate)")
    p.add_argument("--curves", type=Path, required=True, help="training curves PNG (train)")
    p.add_argument("--run", type=Path, required=True, help="run.json of the training's MLflow run")
    p.add_argument("--postprocessing", type=Path, help="postprocessing.json (crossval): shown in the report")
    p.add_argument("--html", type=Path, required=True, help="output: the report page")
    p.add_argument("--figures", type=Path, required=True, help="output folder: figures")
    p.add_argument("--log", type=Path, default=Path("logs/report.log"))
    args = p.parse_args(argv)
    inputs = ReportInputs(
        _entry.cohort(args),
        args.predictions,
        args.scores,
        args.metrics,
        args.curves,
        args.run,
        args.postprocessing,
    )
    run_step(
        "report",
        lambda: run_report(
            load_params(args.params), inputs, args.html, args.figures, _entry.tracking_context()
        ),
        args.log,
    )


if __name__ == "__main__":
    main()
