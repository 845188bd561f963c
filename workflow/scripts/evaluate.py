"""DVC stage `evaluate`: predict the test split, write NIfTI in original space, compute BraTS metrics."""

from pathlib import Path

from _params import load_params

from bratseg.evaluation.stage import run_evaluation
from bratseg.steprun import run_step

run_step(
    "evaluate",
    lambda: run_evaluation(
        load_params(),
        Path("data/preprocessed"),
        Path("models"),
        Path("data/predictions"),
        Path("reports/eval"),
    ),
    "logs/evaluate.log",
)
