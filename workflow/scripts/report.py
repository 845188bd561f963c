"""DVC stage `report`: slice overlays, score distributions and a self-contained HTML page."""

from pathlib import Path

from _params import load_params

from bratseg.evaluation.publish import run_report
from bratseg.steprun import run_step

run_step(
    "report",
    lambda: run_report(
        load_params(), Path("data/preprocessed"), Path("data/predictions"), Path("reports"), Path("models")
    ),
    "logs/report.log",
)
