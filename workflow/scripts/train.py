"""DVC stage `train@<fold>`: train params.model on one cross-validation fold's cases, tracked in MLflow.

python workflow/scripts/train.py --cases data/preprocessed/cases --split data/preprocessed/splits.json \
    --manifest data/preprocessed/manifest.csv --fold fold0 --models models/fold0 --curves reports/train/fold0

With train.nproc = 1 the training runs in this process. With train.nproc = N > 1 this process becomes
`torchrun --standalone --nproc_per_node N` of this same command line: each of the N processes runs this
script again, finds torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and trains as that
rank. A launch of the user's own (torchrun on several nodes, train.nproc = the total number of processes)
is used as it is. Rank 0 logs to --log, rank r > 0 warnings only, to <log stem>.rank<r><suffix>.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import _entry

from bratseg.paramsfile import load_params
from bratseg.runtime import resolve_device
from bratseg.steprun import configure_logging, run_step
from bratseg.training import distributed
from bratseg.training.distributed import SINGLE, World


def log_file(log: Path, env: Mapping[str, str]) -> Path:
    """``log`` for rank 0 (and one process), ``<stem>.rank<r><suffix>`` beside it for rank r > 0."""
    rank = env.get("RANK", "0")
    return log if rank == "0" else log.with_name(f"{log.stem}.rank{rank}{log.suffix}")


def stage(args: argparse.Namespace, argv: list[str]) -> None:
    params = load_params(args.params)
    world = World.from_env(os.environ)
    tp = params.train
    if world is None and tp.nproc > 1:
        device = resolve_device(tp.device)
        distributed.check_world(tp.nproc, tp.nproc, tp.nproc, device, params.net.norm)
        if device.type == "cpu" and tp.nproc * tp.num_threads > (os.cpu_count() or 1):
            logging.getLogger("bratseg.train").warning(
                "train.nproc %d x train.num_threads %d threads on %s CPU cores: slower than it need be",
                tp.nproc,
                tp.num_threads,
                os.cpu_count(),
            )
        os.environ.setdefault("OMP_NUM_THREADS", str(tp.num_threads))  # torch's threads: train.num_threads
        configure_logging(None)  # the log file is rank 0's
        distributed.launch(Path(__file__).resolve(), argv, tp.nproc)
        return
    from bratseg.pipeline.train import run_training  # here: the launcher needs none of it (nor MLflow)

    world = world or SINGLE
    if world.distributed:
        distributed.exit_with_parent()
    if not world.main:
        logging.getLogger().setLevel(logging.WARNING)
    cohort, tracking = _entry.cohort(args), _entry.tracking_context()
    run_training(params, cohort, args.models, args.curves, tracking, world, args.fold)


def main(argv: list[str] | None = None) -> None:
    p = _entry.parser(__doc__)
    _entry.add_cohort_args(p)
    p.add_argument("--fold", default="fold0", help="the fold to train, one of params cv.fold_names")
    p.add_argument("--models", type=Path, required=True, help="output folder: best.pt, last.pt, run.json")
    p.add_argument("--curves", type=Path, required=True, help="output folder: loss.csv, val_dice.csv, PNG")
    p.add_argument("--log", type=Path, default=Path("logs/train.log"))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    run_step("train", lambda: stage(args, argv), log_file(args.log, os.environ))


if __name__ == "__main__":
    main()
