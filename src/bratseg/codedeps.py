"""Which package sources a step runs: the import closure of a script or module, read from the source.

One answer serves every place that must know it: the Snakemake rules list these files as inputs (an edit
reruns the step), the training fingerprint hashes them (a checkpoint of other code is never resumed), and a
test checks that each DVC stage lists exactly them as dependencies.

The closure follows every ``import bratseg...`` and ``from bratseg... import ...`` statement anywhere in a
file (also inside functions and ``TYPE_CHECKING`` blocks), so it over-approximates what one run executes,
never under-approximates it. Package markers, the error classes and the step runner cannot change a result
and are left out (:data:`INFRASTRUCTURE`).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
#: Modules that cannot change a result: package markers, error classes, the step runner (logging, exit codes)
#: and this module (it only decides which files are inputs).
INFRASTRUCTURE = frozenset({"__init__.py", "errors.py", "steprun.py", "codedeps.py"})


def _imported_modules(path: Path) -> tuple[set[str], set[Path]]:
    """Absolute dotted names of the package's modules that ``path`` imports (``bratseg.x.y``), and the
    sibling scripts it imports by bare name (``import _entry`` beside a workflow script)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    siblings: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
            siblings.update(path.parent / f"{a.name}.py" for a in node.names if "." not in a.name)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == PACKAGE
        ):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # submodules imported by name
    inside = PACKAGE_DIR in path.parents
    return names, set() if inside else {s for s in siblings if s.is_file()}


def _module_file(name: str) -> Path | None:
    """The source file of the dotted module ``name`` of this package, or ``None`` if it is no module."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def closure(entries: Iterable[Path | str]) -> list[Path]:
    """Package source files reachable by imports from ``entries`` (scripts or package files), sorted.

    Parent packages' ``__init__.py`` files are followed too (importing ``a.b`` runs ``a/__init__.py``), and so
    are the helper scripts a script imports from its own folder.
    Files of :data:`INFRASTRUCTURE` and the entries themselves (unless they are package files) are not
    listed.
    """
    todo = [Path(e).resolve() for e in entries]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names, siblings = _imported_modules(path)
        todo.extend(siblings - seen)
        for name in names:
            parts = name.split(".")
            for i in range(2, len(parts) + 1):  # the module and every parent package
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    inside = [p for p in seen if PACKAGE_DIR in p.parents and p.name not in INFRASTRUCTURE]
    return sorted(inside)


def relative(paths: Iterable[Path], root: Path) -> list[str]:
    """``paths`` relative to ``root`` as POSIX strings (the form dvc.yaml and Snakemake use)."""
    return [p.resolve().relative_to(root.resolve()).as_posix() for p in paths]


def sources_hash(paths: Iterable[Path]) -> str:
    """Short hash of the files' package-relative names and contents (not their timestamps)."""
    h = hashlib.sha256()
    for path in sorted(Path(p).resolve() for p in paths):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
