"""Generation time of the embedded cohort: CPU seconds per case (one core), default against plainer settings.

    python benchmarks/bench_cohort.py                # 2 mm: 8 cases per setting; 1 mm: 2 cases
    python benchmarks/bench_cohort.py --cases 4 --no-1mm

CPU time (``time.process_time``) of ``generate_case`` is what one core spends on a case, whatever else runs on
the machine; wall time is printed beside it. The settings compared in the same run:

- ``default``: params.yaml's cohort (domain randomisation, tumour families, lobes, satellites);
- ``plain``: the same anatomy and a single-lobed enhancing tumour with every randomisation off (what the
  randomisation costs is the ratio to it);
- ``heldout``: the held-out variant of the out-of-generator check.

Also: the templates once per process (each Snakemake job is one process per case), derived against read from
the per-user cache (``bratseg.cohort.template_cache``), and writing a case's five NIfTI files.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bratseg.cohort.anatomy import Templates, derive_templates, load_templates  # noqa: E402
from bratseg.cohort.generate import generate_case, write_case  # noqa: E402
from bratseg.cohort.template_cache import cached  # noqa: E402
from bratseg.config import CohortParams  # noqa: E402
from bratseg.paramsfile import load_params  # noqa: E402

PLAIN = {
    "tumour_mix": {"enhancing": 1.0, "cystic": 0.0, "non_enhancing": 0.0},
    "multifocal_fraction": 0.0,
    "lobes": [1, 1], "ventricle_mm": 0.0, "atrophy": 0.0, "contrast_jitter": 0.0, "gamma": 0.0,
    "texture": 0.0, "slice_thickness_mm": [0.0, 0.0], "skull_strip": 0.0, "distractors": 0.0,
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def measure(cohort: CohortParams, n: int) -> tuple[float, float, float]:
    """Median CPU and wall seconds per generated case, and mean CPU seconds to write one."""
    cpu, wall, write = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        for i in range(n):
            c0, w0 = time.process_time(), time.perf_counter()
            case = generate_case(i, cohort)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            c0 = time.process_time()
            write_case(case, Path(tmp))
            write.append(time.process_time() - c0)
    return statistics.median(cpu), statistics.median(wall), statistics.mean(write)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--no-1mm", action="store_true")
    args = parser.parse_args()
    base = load_params(ROOT / "params.yaml").cohort.to_dict()
    print(f"CPU: {cpu_model()}")
    derived, read = [], []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(3):  # alternated: deriving the templates, reading them from the per-user cache
            c0 = time.process_time()
            derive_templates()
            derived.append(time.process_time() - c0)
            c0 = time.process_time()
            cached(derive_templates, Templates, [ROOT / "params.yaml"], Path(cache))
            read.append(time.process_time() - c0)
    print(f"templates, once per process: derived {statistics.median(derived):.2f} s CPU, read from the "
          f"per-user cache {statistics.median(read):.2f} s CPU (first read: the derivation and the write "
          f"{read[0]:.2f} s): {statistics.median(derived) / statistics.median(read):.1f}x")
    load_templates()
    settings = {
        "default 2 mm": ({**base, "voxel_mm": 2.0}, args.cases),
        "plain 2 mm": ({**base, **PLAIN, "voxel_mm": 2.0}, args.cases),
        "heldout 2 mm": ({**base, "variant": "heldout", "voxel_mm": 2.0}, args.cases),
    }
    if not args.no_1mm:
        settings["default 1 mm"] = ({**base, "voxel_mm": 1.0}, 2)
        settings["plain 1 mm"] = ({**base, **PLAIN, "voxel_mm": 1.0}, 2)
    results = {}
    for name, (raw, n) in settings.items():
        cohort = CohortParams.from_dict({**raw, "n_cases": n})
        results[name] = measure(cohort, n)
    print(f"{'setting':14s} {'cases':>5s} {'CPU s/case':>10s} {'wall s/case':>11s} {'write CPU s':>11s} "
          f"{'vs plain':>8s}")
    for name, (cpu, wall, write) in results.items():
        plain = results.get(f"plain {name.split()[-2]} mm")
        ratio = f"{cpu / plain[0]:8.2f}" if plain else f"{'':8s}"
        print(f"{name:14s} {settings[name][1]:5d} {cpu:10.3f} {wall:11.3f} {write:11.3f} {ratio}")


if __name__ == "__main__":
    main()
