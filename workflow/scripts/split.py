"""DVC stage `split`: the cohort manifest and the train/val/test split over the cached cases.

python workflow/scripts/split.py --cases data/preprocessed/cases --manifest data/preprocessed/manifest.csv \
    --parquet data/preprocessed/manifest.parquet --split data/preprocessed/splits.json \
    --fingerprint data/preprocessed/fingerprint.json

Its own stage, so that a change of the split (params `split`, `cv.folds`) reruns no preprocessing. The
Snakemake rule `manifest` calls the same function when the workflow is run on its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)

from bratseg.paramsfile import load_params
from bratseg.preprocess.steps.manifest import ManifestFiles, cached_case_dirs, write_manifest
from bratseg.steprun import run_step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file")
    p.add_argument("--cases", type=Path, required=True, help="folder of cached cases (preprocess stage)")
    p.add_argument("--manifest", type=Path, required=True, help="output: manifest (CSV)")
    p.add_argument("--parquet", type=Path, required=True, help="output: manifest (Parquet)")
    p.add_argument("--split", type=Path, required=True, help="output: splits.json")
    p.add_argument("--fingerprint", type=Path, required=True, help="output: fingerprint.json")
    p.add_argument("--log", type=Path, default=Path("logs/split.log"))
    args = p.parse_args(argv)
    out = ManifestFiles(args.manifest, args.parquet, args.split, args.fingerprint)

    def split() -> None:
        params = load_params(args.params)
        write_manifest(cached_case_dirs(args.cases), out, params.split, params.data.labels, params.cv.folds)

    run_step("split", split, args.log)


if __name__ == "__main__":
    main()
