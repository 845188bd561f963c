"""DVC stage `crossval`: the post-processing chosen on the out-of-fold predictions; per-fold, pooled scores.

python workflow/scripts/crossval.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --fingerprint data/preprocessed/fingerprint.json \
    --predictions data/cv_predictions --models models --plan models/postprocessing.json \
    --scores reports/cv/cases.csv --metrics reports/cv/metrics.json
"""

from __future__ import annotations

from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.pipeline.crossval import run_crossval
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument("--predictions", type=Path, required=True, help="folder of <fold>/ (cv_predict stages)")
    p.add_argument("--models", type=Path, required=True, help="models folder: <fold>/run.json (MLflow runs)")
    p.add_argument("--plan", type=Path, required=True, help="output: postprocessing.json")
    p.add_argument("--scores", type=Path, required=True, help="output: per-case out-of-fold scores (CSV)")
    p.add_argument(
        "--metrics", type=Path, required=True, help="output: per-fold, pooled scores (JSON)"
    )
    p.add_argument("--log", type=Path, default=Path("logs/crossval.log"))
    args = p.parse_args(argv)
    run_step(
        "crossval",
        lambda: run_crossval(
            load_params(args.params),
            _entry.cohort(args),
            args.predictions,
            args.models,
            (args.plan, args.scores, args.metrics),
            _entry.tracking_context(),
        ),
        args.log,
    )


if __name__ == "__main__":
    main()
