"""The models folder: which checkpoints make the model, and the post-processing chosen for them.

The pipeline writes ``models/<fold>/best.pt`` (stage ``train@<fold>``) and ``models/postprocessing.json``
(stage ``crossval``): the :class:`~bratseg.inference.postprocess.PostprocessPlan` chosen on the out-of-fold
predictions, the folds it was chosen for (with the digests of their checkpoints) and the figures behind the
choice. The evaluate stage and ``bratseg predict`` apply it; ``predict`` finds it beside the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bratseg.config import PostprocessParams
from bratseg.errors import ConfigError
from bratseg.inference.postprocess import PostprocessPlan
from bratseg.io import save_json

log = logging.getLogger(__name__)

PLAN_FILE = "postprocessing.json"
CHECKPOINT = "best.pt"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_plan(path: Path, plan: PostprocessPlan, record: dict[str, Any]) -> None:
    """``postprocessing.json``: ``{"plan": plan, **record}`` (atomic, sorted keys)."""
    save_json(path, {"plan": plan.to_dict(), **record})


def read_plan_file(path: Path) -> tuple[PostprocessPlan, dict[str, Any]]:
    """The plan of a ``postprocessing.json`` and the whole document.

    Raises:
        ConfigError: the file is unreadable or holds no valid plan (one line naming it).
    """
    try:
        document = json.loads(Path(path).read_text())
        return PostprocessPlan.from_dict(document["plan"]), document
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a post-processing file ({type(exc).__name__}: {exc})") from exc


def fold_checkpoints(models_dir: Path, folds: Sequence[str]) -> list[Path]:
    """``models_dir/<fold>/best.pt`` of each fold.

    Raises:
        ConfigError: a fold's checkpoint is missing (naming it).
    """
    paths = [Path(models_dir) / fold / CHECKPOINT for fold in folds]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"model checkpoint {missing[0]} not found (train it: dvc repro)")
    return paths


def resolve_models(paths: Sequence[Path]) -> list[Path]:
    """The checkpoints that ``--model`` names: files as they are; a folder holding ``best.pt`` is that one; a
    folder with ``postprocessing.json`` is the folds it names; any other folder its ``*/best.pt``, sorted.

    Raises:
        ConfigError: a path does not exist, or a folder holds no checkpoint (naming it).
    """
    out: list[Path] = []
    for path in (Path(p) for p in paths):
        if path.is_file():
            out.append(path)
        elif not path.is_dir():
            raise ConfigError(f"model {path} not found (train one with dvc repro)")
        elif (path / CHECKPOINT).is_file():
            out.append(path / CHECKPOINT)
        elif (path / PLAN_FILE).is_file():
            _, document = read_plan_file(path / PLAN_FILE)
            out.extend(fold_checkpoints(path, list(document.get("folds", {}))))
        else:
            found = sorted(path.glob(f"*/{CHECKPOINT}"))
            if not found:
                raise ConfigError(f"model folder {path} holds no {CHECKPOINT} (nor */{CHECKPOINT})")
            out.extend(found)
    return out


def find_plan_file(checkpoints: Sequence[Path]) -> Path | None:
    """The ``postprocessing.json`` beside the checkpoints: in a checkpoint's folder or the one above it (the
    models folder of ``models/<fold>/best.pt``). ``None`` when there is none.

    Raises:
        ConfigError: the checkpoints lie beside different files.
    """
    found: set[Path] = set()
    for checkpoint in checkpoints:
        folder = Path(checkpoint).resolve().parent
        for candidate in (folder / PLAN_FILE, folder.parent / PLAN_FILE):
            if candidate.is_file():
                found.add(candidate)
                break
    if len(found) > 1:
        raise ConfigError(f"the models lie beside different post-processing files: {sorted(map(str, found))}")
    return found.pop() if found else None


def plan_for(
    checkpoints: Sequence[Path], fallback: PostprocessParams, plan_file: Path | None = None
) -> tuple[PostprocessPlan, str]:
    """The post-processing to apply with ``checkpoints`` and where it came from.

    ``plan_file`` if given, else the file beside the checkpoints (:func:`find_plan_file`), else the plan that
    ``fallback`` (params ``postprocess``) fixes. A file chosen for other checkpoints is used, with a warning.
    """
    path = plan_file if plan_file is not None else find_plan_file(checkpoints)
    if path is None:
        return PostprocessPlan.from_params(fallback), f"params postprocess (no {PLAN_FILE} beside the models)"
    plan, document = read_plan_file(path)
    chosen_for = {entry.get("sha256") for entry in document.get("folds", {}).values()}
    others = [str(c) for c in checkpoints if sha256(Path(c)) not in chosen_for]
    if others:
        log.warning("%s was chosen for other models than %s", path, ", ".join(others))
    return plan, str(path)
