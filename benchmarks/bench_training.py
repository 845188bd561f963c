"""Training throughput: patches/s and time per step for UNet and ResUNet, and whether data loading keeps up.

    python benchmarks/bench_training.py                 # default CPU profile from params.yaml
    python benchmarks/bench_training.py --gpu-profile   # on CUDA: 128^3 x 4 channels, batch 2, bf16 vs fp32
    python benchmarks/bench_training.py --nproc 2       # also 1 vs 2 DDP processes, same global batch
    python benchmarks/bench_training.py --gpu-profile --nproc 8   # 1 vs 8 GPUs, bf16, 128^3, 2 per GPU

For each architecture it runs real training steps (the project's sampler, augmentation, loss, optimiser) and
splits the time into *loader wait* (the step waiting for the next batch) and *compute*. Loading is not the
bottleneck when the wait is a small share of the step. The baseline beside it is the obvious alternative
input path: reading each patch's case from its NIfTI files instead of the memory-mapped cache.
Cached cases come from data/preprocessed when present, else a small synthetic cache is built in a temp dir.

``--nproc N`` runs the same steps in 1 and in N processes of DDP (``bratseg.training.distributed``: the ranks'
shares of the sample stream, batch Dice over the global batch, gradient all-reduce), each configuration in
fresh processes. On CPU both get the same global batch (``train.batch_size``) and the same cores
(``train.num_threads`` threads for one process, ``num_threads // N`` for each of N): does splitting the batch
over processes beat threads? On CUDA (``--gpu-profile``) every GPU trains 2 patches of 128^3 in bf16, so
N GPUs step on N times the batch (weak scaling): patches/s and the scaling efficiency.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bratseg.cache import CachedCase, open_case
from bratseg.config import Params, PreprocessParams, deep_merge, parse_params
from bratseg.labels import BRATS_2021
from bratseg.models.registry import build_model
from bratseg.paramsfile import load_params
from bratseg.runtime import amp_dtype, configure_determinism
from bratseg.training import distributed
from bratseg.training.distributed import SINGLE, World
from bratseg.training.loop import ModelLoss
from bratseg.training.losses import build_loss
from bratseg.training.optim import build_optimizer
from bratseg.training.sampler import PatchDataset, rank_indices

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())


def cached_cases(params: Params, n: int) -> tuple[list[CachedCase], list[dict[str, str]]]:
    """Cached cases (and their raw NIfTI sources) from data/preprocessed, or built from the generator."""
    cache = ROOT / "data" / "preprocessed" / "cases"
    dirs = sorted(p for p in cache.iterdir() if (p / "label.npy").exists())[:n] if cache.is_dir() else []
    if len(dirs) < n:
        from bratseg.cohort.generate import generate_case, write_case
        from bratseg.layouts import case_files
        from bratseg.preprocess.steps.chain import preprocess_case

        tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
        prep = PreprocessParams.from_dict(deep_merge(params.preprocess.to_dict(), {"n4": {"enabled": False}}))
        dirs = []
        for i in range(n):
            case = generate_case(i, params.cohort)
            write_case(case, tmp / "raw")
            files = case_files(tmp / "raw" / case.case_id)
            preprocess_case(files, tmp / "cases" / case.case_id, prep)
            dirs.append(tmp / "cases" / case.case_id)
    cases = [open_case(d) for d in dirs]
    return cases, [c.properties["sources"] for c in cases]


def nifti_patch_time(sources: list[dict[str, str]], patch: tuple[int, int, int], reps: int) -> float:
    """Seconds per patch when each sample re-reads its case's four NIfTI files (no cache)."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    times = []
    for r in range(reps):
        src = sources[r % len(sources)]
        t0 = time.perf_counter()
        vols = [np.asarray(nib.load(src[m]).dataobj, dtype=np.float32) for m in ("t1", "t1ce", "t2", "flair")]
        start = [int(rng.integers(0, max(1, s - p))) for s, p in zip(vols[0].shape, patch, strict=True)]
        sl = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
        np.stack([v[sl] for v in vols])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    params: Params,
    model_name: str,
    cases: list[CachedCase],
    steps: int,
    warmup: int,
    device: torch.device,
    amp: str,
    world: World = SINGLE,
) -> dict[str, float]:
    """Median step of the training loop's steps (rank 0's, on several processes), ``train.batch_size``
    being the global batch."""
    tp = params.train
    net = getattr(params, model_name)
    model = build_model(model_name, 4, BRATS_2021.n_outputs(tp.target), net).to(device)
    model = distributed.prepare_model(model, world, device)
    loss_fn = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs, distributed.global_sums(world))
    optimizer = build_optimizer(model, tp)
    step_fn = distributed.wrap_model(
        ModelLoss(model, loss_fn, device.type, amp_dtype(device, amp)), world, device
    )
    dataset = PatchDataset(
        cases,
        patch_size=tp.patch_size,
        samples_per_epoch=(steps + warmup) * tp.batch_size,
        foreground_fraction=tp.foreground_fraction,
        target=tp.target,
        seed=0,
        augment_params=tp.augment,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=tp.batch_size // world.size,
        sampler=rank_indices(len(dataset), tp.batch_size, world.rank, world.size),
        num_workers=tp.num_workers,
    )
    waits, computes = [], []
    t_fetch = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        wait = time.perf_counter() - t_fetch
        t0 = time.perf_counter()
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        step_fn(x, y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            waits.append(wait)
            computes.append(time.perf_counter() - t0)
        t_fetch = time.perf_counter()
    step = statistics.median(np.add(waits, computes))
    return {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "step_s": step,
        "compute_s": statistics.median(computes),
        "wait_s": statistics.median(waits),
        "patches_per_s": tp.batch_size / step,
    }


def _worker(
    rank: int,
    nproc: int,
    port: int,
    params: Params,
    model_name: str,
    case_dirs: list[Path],
    options: dict[str, Any],
    results: Any,
) -> None:
    """One rank of a DDP measurement (``torch.multiprocessing.spawn``); rank 0 puts its figures in
    ``results``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    world = World(rank, nproc, rank, nproc)
    device = distributed.init(world, torch.device(options["device"]))
    configure_determinism(options["threads"])
    cases = [open_case(d) for d in case_dirs]
    r = measure(params, model_name, cases, options["steps"], options["warmup"], device, options["amp"], world)
    if world.main:
        results.put(r)
    distributed.shutdown(world)


def measure_processes(
    params: Params, model_name: str, cases: list[CachedCase], nproc: int, options: dict[str, Any]
) -> dict[str, float]:
    """:func:`measure` on ``nproc`` fresh processes (one is spawned too, so both sides start alike)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port on the loopback interface for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").SimpleQueue()
    dirs = [c.directory for c in cases]
    mp.spawn(_worker, args=(nproc, port, params, model_name, dirs, options, results), nprocs=nproc, join=True)
    out: dict[str, float] = results.get()
    return out


def compare_processes(
    params: Params, cases: list[CachedCase], nproc: int, args: argparse.Namespace, device: torch.device
) -> None:
    """Patches/s of 1 vs ``nproc`` DDP processes (see the module docstring for the two settings); the two
    configurations alternate ``--repeats`` times (a shared machine's load then weighs on both alike) and the
    median is reported, with the range over the repeats."""
    gpu = device.type == "cuda"
    if gpu and nproc > torch.cuda.device_count():
        raise SystemExit(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA devices")
    amp = "bf16" if gpu else "none"
    threads = params.train.num_threads
    print(
        "\n| model | amp | processes | threads each | batch each | global batch | step (s) | patches/s "
        "(range) | vs 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        rates: dict[int, list[float]] = {1: [], nproc: []}
        steps: dict[int, list[float]] = {1: [], nproc: []}
        for _ in range(args.repeats):
            for n in (1, nproc):
                run_params = parse_params(
                    deep_merge(
                        params.to_dict(), {"train": {"batch_size": _batch(params, n, gpu), "nproc": n}}
                    ),
                    SCHEMA,
                )
                options = {
                    "device": device.type,
                    "threads": _threads(threads, n, gpu),
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "amp": amp,
                }
                r = measure_processes(run_params, name, cases, n, options)
                rates[n].append(r["patches_per_s"])
                steps[n].append(r["step_s"])
        base = statistics.median(rates[1])
        for n in (1, nproc):
            rate, batch = statistics.median(rates[n]), _batch(params, n, gpu)
            ratio = rate / base
            scaling = f"{ratio:.2f}x" + (f" ({100 * ratio / n:.0f}% efficiency)" if gpu and n > 1 else "")
            print(
                f"| {name} | {amp} | {n} | {_threads(threads, n, gpu)} | {batch // n} | {batch} | "
                f"{statistics.median(steps[n]):.3f} | {rate:.2f} ({min(rates[n]):.2f}-{max(rates[n]):.2f}) | "
                f"{scaling} |"
            )


def _threads(threads: int, n: int, gpu: bool) -> int:
    """CPU threads of each of ``n`` processes: the cores of one process shared out on CPU."""
    return threads if gpu else max(1, threads // n)


def _batch(params: Params, n: int, gpu: bool) -> int:
    """The global batch of ``n`` processes: 2 per GPU on CUDA, ``train.batch_size`` for any ``n`` on CPU."""
    return 2 * n if gpu else params.train.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gpu-profile", action="store_true", help="128^3 patches, batch 2, on CUDA")
    parser.add_argument("--nproc", type=int, default=1, help="also compare 1 vs N DDP processes")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["unet", "resunet"])
    parser.add_argument("--skip-single", action="store_true", help="only the process comparison")
    parser.add_argument("--repeats", type=int, default=3, help="alternations of 1 and N processes")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amps = ["none"]
    if args.gpu_profile:
        if device.type != "cuda":
            raise SystemExit("--gpu-profile needs a CUDA device")
        raw = deep_merge(
            params.to_dict(), {"train": {"patch_size": [128, 128, 128], "batch_size": 2, "num_workers": 4}}
        )
        params = parse_params(raw, SCHEMA)
        amps = ["none", "bf16"]
    configure_determinism(params.train.num_threads)
    cases, sources = cached_cases(params, 4)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, patch "
        f"{params.train.patch_size}, batch {params.train.batch_size}, {len(cases)} cached cases"
    )
    if not args.skip_single:
        print(
            "| model | amp | params (M) | step (s) | compute (s) | loader wait (s) | wait share | patches/s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in args.models:
            for amp in amps:
                r = measure(params, name, cases, args.steps, args.warmup, device, amp)
                print(
                    f"| {name} | {amp} | {r['params_M']:.2f} | {r['step_s']:.3f} | {r['compute_s']:.3f} | "
                    f"{r['wait_s']:.4f} | {100 * r['wait_s'] / r['step_s']:.1f}% | {r['patches_per_s']:.2f} |"
                )
        per_patch_nifti = nifti_patch_time(sources, params.train.patch_size, 6)
        print(
            f"\nalternative input path: re-reading the NIfTI files costs {per_patch_nifti:.3f} s per patch, "
            f"i.e. {per_patch_nifti * params.train.batch_size:.3f} s per batch of loader time"
        )
    if args.nproc > 1:
        compare_processes(params, cases, args.nproc, args, device)


if __name__ == "__main__":
    main()
