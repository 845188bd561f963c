"""Rewrite the package part of each dvc.yaml stage's deps from the import closure of the code it runs.

    python scripts/sync_dvc_deps.py          # rewrite dvc.yaml in place
    python scripts/sync_dvc_deps.py --check  # exit 1 if dvc.yaml is not what it would write

A package folder is listed as one dependency when the stage runs every module in it. Only the
``- src/bratseg...`` lines of each stage's ``deps`` are touched; comments and everything else stay.
tests/test_dvc_deps.py checks the same rule on every test run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from test_dvc_deps import runs_of, stages  # noqa: E402  (the rule lives with its test)


def collapse(files: set[str]) -> list[str]:
    """Files, with a package folder in their place when every module under it is among them."""
    out = set(files)
    for folder in sorted({str(Path(f).parent) for f in files}, key=len):
        under = (ROOT / folder).rglob("*.py")
        modules = {p.relative_to(ROOT).as_posix() for p in under if p.name != "__init__.py"}
        if folder != "src/bratseg" and modules and modules <= out:
            out = (out - modules) | {folder}
    return sorted(out, key=lambda d: (d.count("/") == 2, d))


def rewrite(text: str, stages: dict) -> str:
    lines = text.split("\n")
    out: list[str] = []
    stage = None
    in_deps = False
    inserted = False
    for line in lines:
        top = line.startswith("  ") and not line.startswith("   ")
        if top and line.split(":")[0].strip() in stages:
            stage = line.split(":")[0].strip()
        stripped = line.strip()
        if stripped == "deps:":
            in_deps, inserted = True, False
        elif in_deps and not stripped.startswith("- "):
            in_deps = False
        if in_deps and stripped.startswith("- src/bratseg"):
            if not inserted and stage in stages:
                indent = line[: line.index("-")]
                out.extend(f"{indent}- {d}" for d in collapse(runs_of(stage, stages[stage])))
                inserted = True
            continue
        out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    new = rewrite(text, stages())
    if args.check:
        print("dvc.yaml deps are current" if new == text else "dvc.yaml deps differ from the import closure")
        return int(new != text)
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
