"""Training throughput: patches/s and time per step for UNet and ResUNet, and whether data loading keeps up.

    python benchmarks/bench_training.py                 # default CPU profile from params.yaml
    python benchmarks/bench_training.py --gpu-profile   # on CUDA: 128^3 x 4 channels, batch 2, bf16 vs fp32

For each architecture it runs real training steps (the project's sampler, augmentation, loss, optimiser) and
splits the time into *loader wait* (the step waiting for the next batch) and *compute*. Loading is not the
bottleneck when the wait is a small share of the step. The baseline beside it is the obvious alternative
input path: reading each patch's case from its NIfTI files instead of the memory-mapped cache.
Cached cases come from data/preprocessed when present, else a small synthetic cache is built in a temp dir.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from bratseg.cache import CachedCase, open_case
from bratseg.config import Params, PreprocessParams, deep_merge, parse_params
from bratseg.labels import BRATS_2021
from bratseg.models.registry import build_model
from bratseg.paramsfile import load_params
from bratseg.runtime import amp_dtype, configure_determinism
from bratseg.training.losses import build_loss
from bratseg.training.optim import build_optimizer
from bratseg.training.sampler import PatchDataset

ROOT = Path(__file__).resolve().parents[1]


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
) -> dict[str, float]:
    tp = params.train
    net = getattr(params, model_name)
    model = build_model(model_name, 4, BRATS_2021.n_outputs(tp.target), net).to(device)
    loss_fn = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs)
    optimizer = build_optimizer(model, tp)
    dataset = PatchDataset(
        cases,
        patch_size=tp.patch_size,
        samples_per_epoch=(steps + warmup) * tp.batch_size,
        foreground_fraction=tp.foreground_fraction,
        target=tp.target,
        seed=0,
        augment_params=tp.augment,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=tp.batch_size, num_workers=tp.num_workers)
    dtype = amp_dtype(device, amp)
    waits, computes = [], []
    t_fetch = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        wait = time.perf_counter() - t_fetch
        t0 = time.perf_counter()
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(x)
        loss_fn(out, y).backward()
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gpu-profile", action="store_true", help="128^3 patches, batch 2, on CUDA")
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
        schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
        params = parse_params(raw, schema)
        amps = ["none", "bf16"]
    configure_determinism(params.train.num_threads)
    cases, sources = cached_cases(params, 4)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, patch "
        f"{params.train.patch_size}, batch {params.train.batch_size}, {len(cases)} cached cases"
    )
    print("| model | amp | params (M) | step (s) | compute (s) | loader wait (s) | wait share | patches/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("unet", "resunet"):
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


if __name__ == "__main__":
    main()
