"""Merge a parameter profile (a partial params.yaml) into params.yaml, in place.

python workflow/scripts/apply_profile.py tests/profiles/tiny.yaml [--params params.yaml]
"""

import argparse
from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)
import yaml

from bratseg.config import deep_merge
from bratseg.io import atomic_path
from bratseg.paramsfile import load_params
from bratseg.steprun import run_step


def apply(profile: Path, params: Path) -> None:
    """Validate the merged parameters, then replace ``params`` (its comments are not kept)."""
    merged = deep_merge(yaml.safe_load(params.read_text()), yaml.safe_load(profile.read_text()))
    with atomic_path(params) as tmp:
        tmp.write_text(yaml.safe_dump(merged, sort_keys=False))
        load_params(tmp)  # an invalid result never replaces params.yaml


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    run_step("apply_profile", lambda: apply(args.profile, args.params))
