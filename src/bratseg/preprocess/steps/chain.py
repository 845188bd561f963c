"""The per-case steps in one call, for ``bratseg predict`` and the benchmarks."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bratseg.config import PreprocessParams
from bratseg.layouts import CaseFiles
from bratseg.preprocess.steps.bias_correct import bias_correct
from bratseg.preprocess.steps.finalise import finalise
from bratseg.preprocess.steps.ingest import IngestOptions, ingest


def preprocess_case(
    files: CaseFiles,
    out_dir: Path,
    params: PreprocessParams,
    *,
    options: IngestOptions | None = None,
    work_dir: Path | None = None,
    threads: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """The whole per-case chain, :func:`ingest` → :func:`bias_correct` → :func:`finalise`, into ``out_dir``.

    What the Snakemake rules do one job each, for callers that preprocess a case in one go (``bratseg
    predict``, the benchmarks). The intermediate files go to ``work_dir`` (a temporary folder, removed
    afterwards, when ``None``). ``options`` says what ingest does to the grid (default: reorientation only,
    no resampling).

    Returns:
        Seconds per step: ``{"ingest": …, "bias_correct": …, "finalise": …}``.
    """
    seconds: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bratseg-")))
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        ingested, corrected = work / "ingested.npz", work / "n4.npz"
        steps: list[tuple[str, Callable[[], None]]] = [
            ("ingest", lambda: ingest(files, ingested, options)),
            ("bias_correct", lambda: bias_correct(ingested, corrected, params.n4, threads)),
            ("finalise", lambda: finalise(corrected, Path(out_dir), params, seed)),
        ]
        for name, step in steps:
            start = time.perf_counter()
            step()
            seconds[name] = time.perf_counter() - start
    return seconds
