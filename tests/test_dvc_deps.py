"""dvc.yaml stays honest: each stage depends on the package code its script runs, and the training
fingerprint (what a checkpoint must match to be resumed) covers the same code as the train stage."""

import modulefinder
from pathlib import Path

import pytest
import yaml

from bratseg.training.stage import TRAINING_CODE

ROOT = Path(__file__).resolve().parents[1]
#: Modules that cannot change a result: package markers, error classes, the step runner (logging, exit codes).
INFRASTRUCTURE = {"__init__.py", "errors.py", "steprun.py"}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def package_modules(script: Path) -> set[str]:
    finder = modulefinder.ModuleFinder(path=[str(ROOT / "workflow" / "scripts"), str(ROOT / "src")])
    finder.run_script(str(script))
    files = {
        Path(m.__file__) for name, m in finder.modules.items() if name.startswith("bratseg") and m.__file__
    }
    return {str(f.relative_to(ROOT)) for f in files if f.name not in INFRASTRUCTURE}


@pytest.mark.parametrize("stage", ["train", "evaluate", "report"])
def test_stage_depends_on_the_code_it_runs(stage):
    deps = [d.rstrip("/") for d in stages()[stage]["deps"]]
    script = ROOT / "workflow" / "scripts" / f"{stage}.py"
    assert str(script.relative_to(ROOT)) in deps
    missing = sorted(
        m for m in package_modules(script) if not any(m == d or m.startswith(d + "/") for d in deps)
    )
    assert not missing, f"dvc.yaml stage {stage} lacks deps: {missing}"


def test_training_fingerprint_covers_the_train_stage_code():
    deps = stages()["train"]["deps"]
    package = sorted(d.removeprefix("src/bratseg/") for d in deps if d.startswith("src/bratseg/"))
    assert sorted(TRAINING_CODE) == package
