"""DVC stage `train`: train params.model on the cached cases, tracked in MLflow."""

from pathlib import Path

from _params import load_params

from bratseg.steprun import run_step
from bratseg.training.stage import run_training

run_step(
    "train",
    lambda: run_training(load_params(), Path("data/preprocessed"), Path("models"), Path("reports/train")),
    "logs/train.log",
)
