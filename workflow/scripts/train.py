"""DVC stage `train`: train params.model on the cached cases, tracked in MLflow.

python workflow/scripts/train.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --models models --curves reports/train
"""

from __future__ import annotations

from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.pipeline.train import run_training
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument("--models", type=Path, required=True, help="output folder: best.pt, last.pt, run.json")
    p.add_argument("--curves", type=Path, required=True, help="output folder: loss.csv, val_dice.csv, PNG")
    p.add_argument("--log", type=Path, default=Path("logs/train.log"))
    args = p.parse_args(argv)
    run_step(
        "train",
        lambda: run_training(
            load_params(args.params), _entry.cohort(args), args.models, args.curves, _entry.tracking_context()
        ),
        args.log,
    )


if __name__ == "__main__":
    main()
