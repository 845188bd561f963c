"""Imports run one way: phases depend on shared modules, never on each other.

Layers of ``src/bratseg`` (read from the source, so a lazy import inside a function counts too):

- phases: ``cohort``, ``preprocess``, ``training``, ``inference``, ``evaluation`` (subpackages);
- orchestration: ``pipeline`` (the DVC stages, ``predict`` for new cases) and ``cli``: they compose phases;
- shared: every other module (configuration, labels, layouts, raw-case reader, cached-case format, spatial
  transforms, runtime, tracking, models and their checkpoints).

A phase imports shared modules only (the models are shared, so inference, evaluation and training use them);
shared modules import no phase; nothing but orchestration imports orchestration.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bratseg"
PHASES = ("cohort", "preprocess", "training", "inference", "evaluation")
ORCHESTRATION = ("pipeline", "cli")


def layer(module: str) -> tuple[str, str]:
    """``("phase", "training")``, ``("orchestration", "pipeline")`` or ``("shared", name)``."""
    top = module.split(".")[1] if "." in module else module
    if top in PHASES:
        return "phase", top
    if top in ORCHESTRATION:
        return "orchestration", top
    return "shared", top


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("bratseg.") or node.module == "bratseg":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bratseg."))
    return found


EDGES = sorted((src, dst) for src, path in modules().items() for dst in imports(path) if dst != "bratseg")


def test_the_graph_is_not_empty():
    assert len(EDGES) > 100
    assert ("bratseg.pipeline.train", "bratseg.training.loop") in EDGES


@pytest.mark.parametrize("phase", PHASES)
def test_a_phase_imports_no_other_phase_and_no_orchestration(phase):
    bad = [
        (src, dst)
        for src, dst in EDGES
        if layer(src) == ("phase", phase) and layer(dst)[0] != "shared" and layer(dst) != ("phase", phase)
    ]
    assert bad == []


def test_inference_and_evaluation_do_not_import_training():
    phases = ("inference", "evaluation")
    bad = [(s, d) for s, d in EDGES if layer(s)[1] in phases and layer(d)[1] == "training"]
    assert bad == []


def test_shared_modules_import_no_phase_and_no_orchestration():
    bad = [(s, d) for s, d in EDGES if layer(s)[0] == "shared" and layer(d)[0] != "shared"]
    assert bad == []


def test_layer_rules_catch_a_violation():
    """The rules above would see a phase importing another one (a guard against a vacuous check)."""
    assert layer("bratseg.inference.predict") == ("phase", "inference")
    assert layer("bratseg.training.loop")[0] == "phase" and layer("bratseg.models.unet")[0] == "shared"
    assert layer("bratseg.pipeline.train")[0] == "orchestration"
