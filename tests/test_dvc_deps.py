"""One answer to "which code does a step run": its import closure (bratseg.codedeps).

The Snakemake rules take their code inputs from it and the training fingerprint hashes it, by construction;
dvc.yaml lists the code of each stage by hand, so this test checks that every stage lists exactly the
package files its scripts import (no more: a stage must not rerun for code it does not run; no less: an
edit must rerun it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bratseg.codedeps import INFRASTRUCTURE, PACKAGE_DIR, closure, relative
from bratseg.pipeline import train as train_stage

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


def stages() -> dict:
    """Stage name -> its body (a ``foreach`` stage's ``do``: every generated stage runs the same code)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def rule_scripts(smk: Path) -> dict[str, Path]:
    """Rule name -> its script, read from a Snakemake rule file."""
    text = smk.read_text()
    out = {}
    for match in re.finditer(r"^rule (\w+):(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
        script = re.search(r'script:\s*"\.\./scripts/(\w+\.py)"', match.group(2))
        if script:
            out[match.group(1)] = SCRIPTS / script.group(1)
    return out


def stage_scripts(name: str, stage: dict) -> list[Path]:
    """The scripts a stage runs: a `python workflow/scripts/x.py` command, or the Snakemake rules of the
    rule files it depends on (restricted to --allowed-rules), plus the modules the Snakefile imports."""
    cmd = stage["cmd"]
    direct = re.findall(r"python (workflow/scripts/\w+\.py)", cmd)
    if direct:
        return [ROOT / d for d in direct]
    assert cmd.startswith("snakemake"), f"stage {name}: unexpected command {cmd!r}"
    allowed = re.search(r"--allowed-rules ([\w ]+)", cmd)
    rules: dict[str, Path] = {}
    for dep in stage["deps"]:
        if dep.endswith(".smk") and not dep.endswith("common.smk"):
            rules.update(rule_scripts(ROOT / dep))
    if allowed:
        rules = {r: s for r, s in rules.items() if r in allowed.group(1).split()}
    return sorted(set(rules.values()))


def snakefile_modules() -> set[str]:
    """Package files the Snakefile and common.smk import when the workflow is parsed."""
    text = (ROOT / "Snakefile").read_text() + (ROOT / "workflow/rules/common.smk").read_text()
    names = re.findall(r"^from bratseg\.([\w.]+) import", text, flags=re.M)
    files = {PACKAGE_DIR.joinpath(*n.split(".")).with_suffix(".py") for n in names}
    direct = {f for f in files if f.name not in INFRASTRUCTURE}
    return set(relative(closure(files), ROOT)) | set(relative(direct, ROOT))


def helper_scripts(scripts: list[Path]) -> set[Path]:
    """The helper modules (``workflow/scripts/_*.py``) the scripts import, directly or through each other."""
    found: set[Path] = set()
    todo = list(scripts)
    while todo:
        text = todo.pop().read_text()
        for helper in SCRIPTS.glob("_*.py"):
            if helper not in found and re.search(rf"^import {helper.stem}\b", text, re.M):
                found.add(helper)
                todo.append(helper)
    return found


def declared_package_files(deps: list[str]) -> set[str]:
    """The package's .py files a stage's deps name (a folder names every file under it)."""
    out = set()
    for dep in deps:
        path = ROOT / dep
        if dep.startswith("src/bratseg") and path.is_dir():
            out.update(relative(path.rglob("*.py"), ROOT))
        elif dep.startswith("src/bratseg"):
            out.add(dep)
    return {f for f in out if not f.endswith("__init__.py")}


def runs_of(name: str, stage: dict) -> set[str]:
    """The package files a stage runs: the closure of its scripts (and of the Snakefile's imports)."""
    runs = set(relative(closure(stage_scripts(name, stage)), ROOT))
    if stage["cmd"].startswith("snakemake"):
        runs |= snakefile_modules()
    return runs


@pytest.mark.parametrize("name", list(stages()))
def test_stage_lists_exactly_the_code_it_runs(name):
    stage = stages()[name]
    scripts = stage_scripts(name, stage)
    assert scripts, f"stage {name} runs no script"
    deps = stage["deps"]
    for script in scripts:
        assert str(script.relative_to(ROOT)) in deps, f"dvc.yaml stage {name} lacks its script {script}"
    helpers = helper_scripts(scripts)
    assert SCRIPTS / "_repo.py" in helpers  # every script runs this repository's own package
    for helper in helpers:
        assert str(helper.relative_to(ROOT)) in deps, f"dvc.yaml stage {name} lacks {helper}"
    runs = runs_of(name, stage)
    declared = declared_package_files(deps)
    # (python scripts/sync_dvc_deps.py rewrites the lists from the closure)
    assert sorted(runs - declared) == [], f"dvc.yaml stage {name} lacks deps"
    assert sorted(declared - runs) == [], f"dvc.yaml stage {name} depends on code it does not run"


def test_training_fingerprint_hashes_the_code_that_trains():
    script = set(relative(closure([SCRIPTS / "train.py"]), ROOT))
    fingerprint = set(relative(closure([Path(train_stage.__file__)]), ROOT))
    # everything the stage runs but reading the parameter file (which cannot change the weights)
    assert script - fingerprint == {"src/bratseg/paramsfile.py"}
    assert fingerprint <= script


def test_closure_follows_imports_inside_functions_and_parent_packages(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from bratseg.preprocess.steps.chain import preprocess_case\n")
    files = set(relative(closure([script]), ROOT))
    assert "src/bratseg/preprocess/steps/chain.py" in files
    assert {"src/bratseg/preprocess/bias.py", "src/bratseg/rawcase.py"} <= files  # transitively
    assert not any(f.endswith(("__init__.py", "errors.py", "steprun.py")) for f in files)
