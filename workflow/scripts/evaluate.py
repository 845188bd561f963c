"""DVC stage `evaluate`: predict the test split with the ensemble of the folds' models and the chosen
post-processing, write NIfTI in original space, compute BraTS metrics.

python workflow/scripts/evaluate.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --models models \
    --predictions data/predictions --scores reports/eval/cases.csv --metrics reports/eval/metrics.json
"""

from __future__ import annotations

from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.pipeline.evaluate import run_evaluation
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument(
        "--models", type=Path, required=True, help="models folder: <fold>/best.pt, postprocessing.json"
    )
    p.add_argument("--predictions", type=Path, required=True, help="output folder of segmentations")
    p.add_argument("--scores", type=Path, required=True, help="output: per-case scores (CSV)")
    p.add_argument("--metrics", type=Path, required=True, help="output: summary (JSON, DVC metrics)")
    p.add_argument("--log", type=Path, default=Path("logs/evaluate.log"))
    args = p.parse_args(argv)
    run_step(
        "evaluate",
        lambda: run_evaluation(
            load_params(args.params),
            _entry.cohort(args),
            args.models,
            args.predictions,
            args.scores,
            args.metrics,
            _entry.tracking_context(),
        ),
        args.log,
    )


if __name__ == "__main__":
    main()
