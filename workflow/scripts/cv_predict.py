"""DVC stage `cv_predict@<fold>`: the fold's model predicts the cases the fold held out (out-of-fold).

python workflow/scripts/cv_predict.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --fingerprint data/preprocessed/fingerprint.json \
    --fold fold0 --model models/fold0/best.pt --predictions data/cv_predictions/fold0

With params cv.folds = 1 there is no cross-validation: it writes an empty index and loads no model.
"""

from __future__ import annotations

from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.pipeline.cv_predict import run_cv_predict
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument("--fold", required=True, help="the fold, one of params cv.fold_names")
    p.add_argument("--model", type=Path, required=True, help="the fold's model (train@<fold>: best.pt)")
    p.add_argument("--predictions", type=Path, required=True, help="output folder of the fold's predictions")
    p.add_argument("--log", type=Path, default=Path("logs/cv_predict.log"))
    args = p.parse_args(argv)
    run_step(
        "cv_predict",
        lambda: run_cv_predict(
            load_params(args.params), _entry.cohort(args), args.model, args.fold, args.predictions
        ),
        args.log,
    )


if __name__ == "__main__":
    main()
