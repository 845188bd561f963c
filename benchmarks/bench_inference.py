"""Sliding-window inference: time and peak memory against one whole-volume forward pass.

    python benchmarks/bench_inference.py            # default 2 mm crop and the full-size crop
    python benchmarks/bench_inference.py --quick    # default 2 mm crop only

The network is the default UNet of params.yaml (random weights: speed and memory do not depend on them). Each
measurement runs in a fresh process, and its peak resident memory (ru_maxrss) is reported above the memory of
the same process right before inference, so the two paths are compared on equal terms. The whole-volume pass
is the obvious alternative: one forward over the padded crop; its activations grow with the volume, while the
sliding window's are bounded by the patch and batch size.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from bratseg.inference.predict import probability_fn  # noqa: E402
from bratseg.inference.sliding_window import sliding_window_predict  # noqa: E402
from bratseg.labels import BRATS_2021  # noqa: E402
from bratseg.models.registry import build_model  # noqa: E402
from bratseg.paramsfile import load_params  # noqa: E402

#: Brain-cropped sizes: the default cohort at 2 mm and a real BraTS case at 1 mm.
CASES = {"default 2 mm": (77, 97, 78), "full 1 mm": (154, 191, 155)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(mode: str, shape: tuple[int, int, int], queue: mp.Queue) -> None:
    params = load_params(ROOT / "params.yaml")
    torch.set_num_threads(params.train.num_threads)
    torch.manual_seed(0)
    model = build_model(params.model, 4, BRATS_2021.n_outputs(params.train.target), params.net).eval()
    predictor = probability_fn(model, params.train.target)
    image = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float16)
    base = _rss_mb()
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "sliding window":
            sliding_window_predict(
                image,
                predictor,
                patch_size=params.train.patch_size,
                n_outputs=BRATS_2021.n_outputs(params.train.target),
                overlap=params.inference.overlap,
                sigma_scale=params.inference.gaussian_sigma,
                batch_size=params.inference.batch_size,
            )
        else:
            div = 2 ** (params.net.depth - 1)
            padded = [int(np.ceil(s / div) * div) for s in shape]
            x = np.zeros((1, 4, *padded), np.float32)
            x[0, :, : shape[0], : shape[1], : shape[2]] = image
            predictor(torch.from_numpy(x))
    queue.put((time.perf_counter() - start, _rss_mb() - base))


def measure(mode: str, shape: tuple[int, int, int]) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(mode, shape, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    print(
        f"{params.model}, patch {params.train.patch_size}, overlap {params.inference.overlap}, "
        f"batch {params.inference.batch_size}, {params.train.num_threads} threads, CPU"
    )
    print("| crop | path | seconds | peak extra memory (MB) |")
    print("|---|---|---|---|")
    for name, shape in CASES.items():
        if args.quick and name != "default 2 mm":
            continue
        rows = {mode: measure(mode, shape) for mode in ("sliding window", "whole volume")}
        for mode, (seconds, mem) in rows.items():
            print(f"| {name} 4x{'x'.join(map(str, shape))} | {mode} | {seconds:.1f} | {mem:.0f} |")
        ratio = rows["whole volume"][1] / max(rows["sliding window"][1], 1.0)
        print(f"| | memory ratio whole / sliding | | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
