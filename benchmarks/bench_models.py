"""Every architecture behind ``model=``: parameters, training step time, patches/s and peak memory.

    python benchmarks/bench_models.py                       # CPU (or CUDA if present), params.yaml defaults
    python benchmarks/bench_models.py --steps 10 --models unet,dynunet

A training step is what ``bratseg.training.loop`` does per batch: forward (deep supervision where the
section enables it), the ``train.target``/``train.loss`` loss, backward and an AdamW step, under
deterministic algorithms with ``train.num_threads`` CPU threads, on a random batch of ``train.batch_size``
patches of ``train.patch_size`` with 4 channels (3 region outputs by default). Each model runs in its own
process so that its peak memory (``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its own; every
process imports MONAI first, so the import is in every baseline alike. SwinUNETR needs multiples of 32: it
runs at the next such size (64^3), beside the UNet at the same size. Every model runs in each of ``--rounds``
interleaved passes and its best round is reported, so that load from other processes on a shared machine
disturbs every model alike and the least.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_params(model: str, patch: int | None) -> Any:
    import yaml

    from bratseg.config import parse_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())
    raw["model"] = model
    if patch is not None:
        raw["train"]["patch_size"] = [patch] * 3
    return parse_params(raw, schema)


def rss_mib() -> float:
    """Resident set size of this process now, in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(
    model_name: str, patch: int | None, steps: int, warmup: int, device_name: str
) -> dict[str, Any]:
    """Time ``steps`` training steps of ``model_name`` after ``warmup`` (in this process)."""
    import monai.networks.nets  # noqa: F401  (same import baseline for every model)
    import torch

    from bratseg.labels import BRATS_2021
    from bratseg.models.registry import build_model
    from bratseg.runtime import configure_determinism
    from bratseg.training.losses import build_loss
    from bratseg.training.optim import build_optimizer

    params = load_params(model_name, patch)
    tp = params.train
    device = torch.device(device_name)
    configure_determinism(tp.num_threads)
    torch.manual_seed(0)
    baseline = rss_mib()
    model = build_model(model_name, 4, BRATS_2021.n_outputs(tp.target), params.net).to(device).train()
    loss_fn = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs)
    optimizer = build_optimizer(model, tp)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((tp.batch_size, 4, *tp.patch_size), generator=g).to(device)
    if tp.target == "regions":
        y = (torch.rand((tp.batch_size, 3, *tp.patch_size), generator=g) > 0.7).float().to(device)
    else:
        y = torch.randint(0, 4, (tp.batch_size, *tp.patch_size), generator=g).to(device)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    step = min(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model_name,
        "patch": list(tp.patch_size),
        "batch": tp.batch_size,
        "params": sum(p.numel() for p in model.parameters()),
        "outputs": model.n_outputs,
        "step_s": step,
        "median_step_s": statistics.median(times),
        "cpu_s": statistics.median(cpu_times),
        "patches_per_s": tp.batch_size / step,
        "peak_rss_mib": peak,
        "train_rss_mib": peak - baseline,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "device": device.type,
    }


def run_child(model: str, patch: int | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", model, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--device", args.device] + (["--patch", str(patch)] if patch else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{model}: benchmark process failed:\n{done.stderr.strip().splitlines()[-1]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="passes over every model, interleaved")
    parser.add_argument("--models", default="", help="comma-separated subset (default: every model)")
    parser.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--patch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.device:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(measure_one(args.one, args.patch, args.steps, args.warmup, args.device)))
        return

    from bratseg.config import SWINUNETR_DIVISOR
    from bratseg.models.registry import MODELS

    names = [n for n in args.models.split(",") if n] or list(MODELS)
    default = load_params("unet", None).train.patch_size[0]
    swin_patch = -(-default // SWINUNETR_DIVISOR) * SWINUNETR_DIVISOR
    plan: list[tuple[str, int | None]] = [("unet", None)]
    plan += [(n, swin_patch if n == "swinunetr" else None) for n in names if n != "unet"]
    if "swinunetr" in names and swin_patch != default:
        plan.append(("unet", swin_patch))

    loads = [os.getloadavg()[0]]
    runs: dict[tuple[str, int | None], list[dict[str, Any]]] = {key: [] for key in plan}
    for round_ in range(args.rounds):
        for model, patch in plan:
            r = run_child(model, patch, args)
            runs[(model, patch)].append(r)
            print(
                f"  round {round_ + 1}: {model} at {r['patch']}: {r['step_s']:.3f} s/step",
                file=sys.stderr,
                flush=True,
            )
        loads.append(os.getloadavg()[0])

    # Per model, the best round (the least disturbed by other load on the machine).
    best = {key: min(rs, key=lambda r: r["step_s"]) for key, rs in runs.items()}
    first = best[("unet", None)]
    print(
        f"{cpu_model()} ({os.cpu_count()} CPUs; 1-min load average {', '.join(f'{v:.1f}' for v in loads)} "
        f"before and after each round); device {first['device']}, {first['threads']} threads; batch "
        f"{first['batch']}, 4 channels, 3 outputs; {args.rounds} interleaved rounds of {args.steps} timed "
        f"steps after {args.warmup} warm-up, one process per model and round.\n"
        "step: the fastest step of the best round; median step and median process CPU time of that round; "
        "round spread: slowest round's fastest step / best round's"
    )
    cuda = first["device"] == "cuda"
    header = (
        "| model | patch | params (M) | outputs | step (s) | x unet | median step (s) | CPU/step (s) "
        "| x unet | patches/s | round spread | peak RSS (MiB) | RSS over baseline (MiB) |"
        + (" CUDA peak (MiB) |" if cuda else "")
    )
    print(header)
    print("|" + "---|" * header.count(" |"))
    for key, r in best.items():
        ref = best[("unet", key[1])]
        spread = max(x["step_s"] for x in runs[key]) / r["step_s"]
        row = (
            f"| {r['model']} | {r['patch'][0]}^3 | {r['params'] / 1e6:.2f} | {r['outputs']} | "
            f"{r['step_s']:.3f} | {r['step_s'] / ref['step_s']:.2f} | {r['median_step_s']:.3f} | "
            f"{r['cpu_s']:.2f} | {r['cpu_s'] / ref['cpu_s']:.2f} | {r['patches_per_s']:.2f} | {spread:.2f} | "
            f"{r['peak_rss_mib']:.0f} | {r['train_rss_mib']:.0f} |"
        )
        if cuda:
            row += f" {r['cuda_peak_mib']:.0f} |"
        print(row)
    for r in best.values():
        if r["model"] == "unet2d":  # its patches are stacks of axial slices
            print(f"\nunet2d: {r['patches_per_s'] * r['patch'][2]:.1f} slices/s ({r['patch'][2]} per patch)")


if __name__ == "__main__":
    main()
