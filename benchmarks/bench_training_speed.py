"""Training step time on this CPU: the default against the options that could make it cheaper, in one run.

    python benchmarks/bench_training_speed.py              # this CPU's full ISA and an AVX2-only proxy
    python benchmarks/bench_training_speed.py --isa native --rounds 3 --steps 3

Each option is one change to the default training step (the project's network, loss and AdamW step on random
4-channel patches with random regions): patch size, batch size, network width, deep supervision, the memory
format (channels-last 3D is the default; "before": channels-first), ``torch.compile``, bfloat16 autocast.
Options are measured interleaved, round after round, and the median step time per option is compared to the
default's (ratios, so load on the machine cancels out). Beside them: the augmentation's CPU time per patch
(``train.augment``) relative to the training time per patch, and a validation pass (sliding window over one
default 2 mm case crop) at several overlaps, channels-last and (at the evaluation's overlap) channels-first.

The AVX2-only proxy runs the same in a child process with ``ATEN_CPU_CAPABILITY=avx2`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` (they must be set before torch is imported): roughly a 2-core machine without
AVX-512, as the default must also serve.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ISAS = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
#: Brain-cropped shape of a default 2 mm case (validation and inference run on whole crops like it).
VAL_SHAPE = (77, 97, 78)


@dataclass(frozen=True)
class Option:
    name: str
    patch: int = 48
    batch: int = 2
    width: int = 16
    full_res_width: int | None = None  # channels of the full-resolution level alone (unet.full_res_width)
    deep_supervision: bool = True
    channels_last: bool = True  # channels-last 3D weights and activations (train.channels_last)
    compile: bool = False
    bf16: bool = False
    fill_memory: bool = False  # deterministic mode's NaN fill of new tensors (the training's default before)
    norm: str = "preserving"  # bratseg.models.norm.InstanceNorm3d | builtin: torch's (returns channels-first)


OPTIONS = [
    Option("default (48^3, batch 2)"),
    Option("channels-first (before)", channels_last=False),
    Option("channels-last, torch's norm", norm="builtin"),
    Option("NaN fill of new tensors (before)", fill_memory=True),
    Option("bf16 autocast", bf16=True),
    Option("torch.compile", compile=True),
    Option("batch 4 (fewer, larger steps)", batch=4),
    Option("patch 32^3, batch 4", patch=32, batch=4),
    Option("patch 64^3, batch 1", patch=64, batch=1),
    Option("base_width 12", width=12),
    Option("base_width 8", width=8),
    Option("full-resolution width 8", full_res_width=8),
    Option("full-resolution width 12", full_res_width=12),
    Option("no deep supervision", deep_supervision=False),
]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _with_norm(model: Any, norm: str) -> Any:
    """``model`` with its instance norms (``bratseg.models.norm.InstanceNorm3d``) as they are
    (``preserving``) or swapped for torch's ``InstanceNorm3d`` (``builtin``: always a channels-first output),
    same parameters."""
    import torch

    if norm == "preserving":
        return model
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.InstanceNorm3d):
                new = torch.nn.InstanceNorm3d(child.num_features, affine=True)
                new.load_state_dict(child.state_dict())
                setattr(module, name, new)
    return model


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from bratseg.inference.predict import probability_fn
    from bratseg.inference.sliding_window import sliding_window_predict
    from bratseg.labels import BRATS_2021
    from bratseg.models.registry import build_model
    from bratseg.paramsfile import load_params
    from bratseg.runtime import configure_determinism
    from bratseg.training.augment import augment
    from bratseg.training.losses import build_loss
    from bratseg.training.optim import build_optimizer

    params = load_params(ROOT / "params.yaml")
    configure_determinism(args.threads or params.train.num_threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    out_ch = BRATS_2021.n_outputs(params.train.target)
    rng = np.random.default_rng(0)

    def setup(opt: Option) -> dict[str, Any]:
        torch.manual_seed(0)
        net = replace(params.net, base_width=opt.width, full_res_width=opt.full_res_width,
                      deep_supervision=opt.deep_supervision)
        model = _with_norm(build_model(params.model, 4, out_ch, net), opt.norm)
        model.set_channels_last(opt.channels_last)
        tp = params.train
        loss_fn = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs)
        optimizer = build_optimizer(model, params.train)
        shape = (opt.batch, 4, opt.patch, opt.patch, opt.patch)
        x = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
        y = torch.from_numpy((rng.random((opt.batch, 3, *shape[2:])) < 0.1).astype(np.float32))
        t0 = time.perf_counter()
        step_model = torch.compile(model) if opt.compile else model
        state = {"model": model, "step_model": step_model, "loss": loss_fn, "opt": optimizer, "x": x, "y": y}
        step(state, opt)  # warm-up (and compilation)
        state["first_step_s"] = time.perf_counter() - t0
        return state

    def step(state: dict[str, Any], opt: Option) -> float:
        torch.utils.deterministic.fill_uninitialized_memory = opt.fill_memory  # type: ignore[attr-defined]
        t0 = clock()
        state["opt"].zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opt.bf16):
            outputs = state["step_model"](state["x"])
        loss = state["loss"](outputs, state["y"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state["model"].parameters(), 12.0)
        state["opt"].step()
        return clock() - t0

    chosen = [o for i, o in enumerate(OPTIONS)
              if not (o.compile and args.no_compile) and (i == 0 or not args.only or o.name in args.only)]
    states = {o.name: setup(o) for o in chosen}
    times: dict[str, list[float]] = {o.name: [] for o in chosen}
    for _ in range(args.rounds):
        for o in chosen:
            times[o.name] += [step(states[o.name], o) for _ in range(args.steps)]
    rows = []
    base = statistics.median(times[chosen[0].name]) / chosen[0].batch
    for o in chosen:
        t = statistics.median(times[o.name])
        rows.append({
            "option": o.name, "step_s": round(t, 4), "patches_per_s": round(o.batch / t, 3),
            "mvoxels_per_s": round(o.batch * o.patch**3 / t / 1e6, 3),
            "time_per_patch_ratio": round(t / o.batch / base, 3),
            "time_per_voxel_ratio": round(t / (o.batch * o.patch**3) / (base / 48**3), 3),
            "first_step_s": round(states[o.name]["first_step_s"], 2),
        })
    del states

    # augmentation cost per 48^3 patch against the default training time per patch
    img = rng.normal(size=(4, 48, 48, 48)).astype(np.float32)
    lab = rng.integers(0, 4, (48, 48, 48)).astype(np.uint8)
    t0 = time.process_time()
    n_aug = 40
    for i in range(n_aug):
        augment(img, lab, params.train.augment, np.random.default_rng(i))
    aug_ms = (time.process_time() - t0) / n_aug * 1000

    # validation: one whole default case crop by sliding window, at several overlaps
    model = build_model(params.model, 4, out_ch, params.net).eval()
    predictor = probability_fn(model, params.train.target)
    volume = rng.normal(size=(4, *VAL_SHAPE)).astype(np.float16)
    val = {}
    with torch.inference_mode():
        overlaps = (0.0, params.train.val_overlap, params.inference.overlap)
        for overlap, layout in [*[(o, True) for o in overlaps], (params.inference.overlap, False)]:
            model.set_channels_last(layout)
            t0 = clock()
            sliding_window_predict(volume, predictor, patch_size=params.train.patch_size, n_outputs=out_ch,
                                   overlap=overlap, batch_size=params.train.batch_size)
            val[f"overlap {overlap:g}" + ("" if layout else ", channels-first")] = round(clock() - t0, 2)
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "rows": rows,
        "augment_ms_per_patch": round(aug_ms, 1),
        "augment_share_of_default_step": round(aug_ms / 1000 / base, 3),
        "validation_s_per_case": val,
    }


def _print(isa: str, result: dict[str, Any]) -> None:
    print(f"\n== {isa}: torch CPU capability {result['capability']}, {result['threads']} threads")
    print(f"{'option':32s} {'step s':>8s} {'patch/s':>8s} {'Mvox/s':>7s} {'t/patch':>8s} {'t/voxel':>8s} "
          f"{'1st step s':>10s}")
    for r in result["rows"]:
        print(f"{r['option']:32s} {r['step_s']:8.3f} {r['patches_per_s']:8.2f} {r['mvoxels_per_s']:7.3f} "
              f"{r['time_per_patch_ratio']:8.2f} {r['time_per_voxel_ratio']:8.2f} {r['first_step_s']:10.1f}")
    print(f"augmentation (train.augment): {result['augment_ms_per_patch']} ms CPU per 48^3 patch = "
          f"{100 * result['augment_share_of_default_step']:.1f}% of the default training time per patch")
    print(f"validation, one {VAL_SHAPE} crop (s): {result['validation_s_per_case']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--isa", choices=["both", *ISAS], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (slow to build)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: train.num_threads)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process CPU time, which load from other processes hardly changes "
                        "(use with --threads 1: spinning worker threads would count too)")
    parser.add_argument("--only", action="append", default=[], metavar="OPTION",
                        help="measure only this option (repeatable; the default is always measured)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - {o.name for o in OPTIONS})
    if unknown:
        parser.error(f"--only: unknown options {unknown}; valid: {[o.name for o in OPTIONS]}")
    if args.child:
        print(json.dumps(_child(args)))
        return
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; clock: {args.clock}")
    results = {}
    for isa in ([*ISAS] if args.isa == "both" else [args.isa]):
        cmd = [sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--steps", str(args.steps),
               "--threads", str(args.threads), "--clock", args.clock]
        if args.no_compile:
            cmd.append("--no-compile")
        for name in args.only:
            cmd += ["--only", name]
        env = {**os.environ, **ISAS[isa]}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"bench_training_speed: {isa} run failed:\n{proc.stderr[-3000:]}")
        results[isa] = json.loads(proc.stdout.strip().splitlines()[-1])
        _print(isa, results[isa])
    if len(results) == 2:
        ratio = results["avx2"]["rows"][0]["step_s"] / results["native"]["rows"][0]["step_s"]
        print(f"\nAVX2-only proxy / native, default step: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
