"""Round trip of the reference labels through the pipeline's grid handling, for every layout and label set.

Usage::

    python benchmarks/bench_roundtrip.py              # 2 synthetic cases, every layout, native / 2 mm / 1 mm
    python benchmarks/bench_roundtrip.py --cases 1 --quick   # one case, fewer layouts

What is measured: an "oracle" prediction equal to the reference labels, pushed through the pipeline's own
code, exactly as a prediction travels: ``ingest`` (read, reorient to RAS+, resample to the target spacing:
:mod:`bratseg.preprocess.steps.ingest`) -> ``finalise`` (z-score, crop to the brain box, cache; no N4, which
does not touch labels) -> :func:`bratseg.inference.predict.restore_original` (uncrop, resample back with the
per-class linear rule, undo the reorientation) -> compared with the reference read again from the raw file
(:func:`bratseg.rawcase.reference_classes`), per evaluated region of the case's label set.

Cases: ``bratseg.cohort.generate.generate_case`` at 1 mm (240 x 240 x 155, the cohort section of
``params.yaml``), rewritten into each layout with its label set's values and its release's orientation
(BraTS: LPS headers, ``diag(-1, -1, 1)``; the Decathlon: RAS, 4D images), plus a permuted (IRA) and an
oblique header, a 2024 case with a resection cavity added, a PED case with a cystic component, and a
0.5 x 0.5 x 5 mm clinical-like case (the 1 mm case sampled in-plane at 0.5 mm, averaged over 5 mm slabs;
its labels the 1 mm labels of each thick voxel's centre slice upsampled in-plane per class).

Rows: ``native`` (target = the case's own spacing: must be exact), ``2 mm`` (the default model's spacing)
and, for the clinical case, ``1 mm``. Beside the pipeline's path (hard classes resampled back, per-class
linear) two alternatives are measured on the same labels: ``nearest`` (nearest-neighbour both ways) and
``soft`` (per-class indicator maps resampled down and back linearly, then the most likely class: what a
pipeline that resamples *probabilities* back to the native grid, as nnU-Net does, would give an oracle).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import yaml
from scipy import ndimage

from bratseg.cache import open_case
from bratseg.config import CohortParams, PreprocessParams
from bratseg.inference.predict import restore_original
from bratseg.labels import BRATS_2021, CC, NETC, RC, LabelSet, label_set
from bratseg.layouts import MODALITIES, CaseFiles, case_files, discover_cases
from bratseg.preprocess.steps.finalise import finalise
from bratseg.preprocess.steps.ingest import IngestOptions, ingest
from bratseg.rawcase import reference_classes
from bratseg.spatial import orient
from bratseg.spatial.resample import resample_classes, resample_probabilities

ROOT = Path(__file__).resolve().parents[1]
LPS = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])  # BraTS's header
MSD_JSON = {
    "name": "BRATS",
    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
}
NEW_SUFFIX = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}


@dataclasses.dataclass
class Case:
    """Arrays of one case in RAS voxel order: images per modality, canonical classes, the RAS affine."""

    images: dict[str, np.ndarray]
    classes: np.ndarray
    affine: np.ndarray


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line)
    except (OSError, StopIteration, subprocess.CalledProcessError):
        return platform.processor() or "unknown"


def synthetic(index: int) -> Case:
    from bratseg.cohort.generate import generate_case

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["cohort"]
    params = CohortParams.from_dict({**raw, "voxel_mm": 1.0, "n_cases": max(raw["n_cases"], index + 1)})
    c = generate_case(index, params)
    images = {m: np.clip(np.rint(c.images[m]), 0, 32767).astype(np.int16) for m in MODALITIES}
    return Case(images, BRATS_2021.to_classes(c.seg), np.asarray(c.affine, dtype=np.float64))


def with_cavity(case: Case) -> Case:
    """A resection cavity (class RC): a 12 mm ball of brain away from the tumour, dark on every modality."""
    brain = case.images["t1"] > 0
    far = ndimage.distance_transform_edt(case.classes == 0) * ndimage.distance_transform_edt(brain)
    centre = np.unravel_index(np.argmax(np.where(brain & (case.classes == 0), far, 0)), far.shape)
    ball = _ball(case.classes.shape, centre, 12.0) & brain & (case.classes == 0)
    classes = case.classes.copy()
    classes[ball] = RC
    images = {m: np.where(ball, (v // 4).clip(1), v).astype(np.int16) for m, v in case.images.items()}
    return Case(images, classes, case.affine)


def with_cyst(case: Case) -> Case:
    """A cystic component (class CC): the necrotic core's voxels within 5 mm of its centre."""
    core = case.classes == NETC
    classes = case.classes.copy()
    if core.any():
        centre = np.round(ndimage.center_of_mass(core)).astype(int)
        classes[_ball(core.shape, tuple(centre), 5.0) & core] = CC
    return Case(case.images, classes, case.affine)


def _ball(shape: tuple[int, ...], centre: tuple[int, ...], radius: float) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2  # type: ignore[no-any-return]


def clinical(case: Case) -> Case:
    """0.5 x 0.5 x 5 mm: images upsampled in-plane (linear) from 5 mm slab averages; labels the 1 mm labels of
    each thick voxel's centre slice, upsampled in-plane per class (so boundaries have 0.5 mm detail, not
    2 x 2 blocks that a 1 mm grid would hold exactly)."""
    nz = case.classes.shape[2] // 5
    slabs = {
        m: v[:, :, : nz * 5].astype(np.float32).reshape(*v.shape[:2], nz, 5).mean(-1)
        for m, v in case.images.items()
    }
    images = {
        m: np.rint(ndimage.zoom(s, (2, 2, 1), order=1, grid_mode=True, mode="nearest")).astype(np.int16)
        for m, s in slabs.items()
    }
    brain = np.repeat(np.repeat(case.images["t1"][:, :, 2 : nz * 5 : 5] > 0, 2, 0), 2, 1)
    images = {m: np.where(brain, v.clip(1), 0).astype(np.int16) for m, v in images.items()}
    centre = case.classes[:, :, 2 : nz * 5 : 5]
    classes = resample_classes(centre, (2 * centre.shape[0], 2 * centre.shape[1], nz), (1.0, 1.0, 5.0))
    affine = case.affine @ np.array([[0.5, 0, 0, -0.25], [0, 0.5, 0, -0.25], [0, 0, 5.0, 2.0], [0, 0, 0, 1]])
    return Case(images, classes, affine)


def as_stored(case: Case, kind: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(images, classes, affine) with the voxel order of a header of ``kind``: the same world content."""
    if kind == "RAS":
        return case.images, case.classes, case.affine
    if kind == "LPS":
        n = case.classes.shape
        affine = case.affine @ np.array(
            [[-1.0, 0, 0, n[0] - 1], [0, -1.0, 0, n[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]]
        )
        flip = lambda a: np.ascontiguousarray(a[::-1, ::-1, :])  # noqa: E731
        return {m: flip(v) for m, v in case.images.items()}, flip(case.classes), affine
    if kind == "IRA":  # voxel axes run inferior, right, anterior
        n = case.classes.shape
        perm = np.zeros((4, 4))
        perm[0, 1], perm[1, 2], perm[2, 0], perm[2, 3], perm[3, 3] = 1, 1, -1, n[2] - 1, 1
        move = lambda a: np.ascontiguousarray(np.transpose(a, (2, 0, 1))[::-1])  # noqa: E731
        return {m: move(v) for m, v in case.images.items()}, move(case.classes), case.affine @ perm
    if kind == "oblique":  # the LPS grid tilted by 15 degrees about the superior axis
        images, classes, affine = as_stored(case, "LPS")
        t = np.deg2rad(15.0)
        rot = np.eye(4)
        rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
        return images, classes, rot @ affine
    raise ValueError(kind)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)


def write_layout(root: Path, case: Case, layout: str, labels: LabelSet, kind: str) -> CaseFiles:
    """The case written in ``layout`` with ``labels``' values; the CaseFiles the pipeline discovers."""
    images, classes, affine = as_stored(case, kind)
    seg = labels.from_classes(classes)
    if layout == "msd_task01":
        for sub in ("imagesTr", "labelsTr"):
            (root / sub).mkdir(parents=True)
        order = [MSD_JSON["modality"][str(i)] for i in range(4)]
        names = {"FLAIR": "flair", "T1w": "t1", "t1gd": "t1ce", "T2w": "t2"}
        _save(root / "imagesTr" / "BRATS_001.nii.gz", np.stack([images[names[o]] for o in order], -1), affine)
        _save(root / "labelsTr" / "BRATS_001.nii.gz", seg, affine)
        (root / "dataset.json").write_text(json.dumps(MSD_JSON))
        return discover_cases(root)[0]
    ids = {
        "brats2018": "HGG/Brats18_2013_2_1",
        "brats2019": "LGG/BraTS19_2013_0_1",
        "brats2020": "BraTS20_Training_001",
        "brats2021": "BraTS2021_00001",
    }
    if layout in ids:
        folder = root / ids[layout]
        names = {k: f"{folder.name}_{k}" for k in (*MODALITIES, "seg")}
    else:  # brats2023 naming: layout is "brats2023:<challenge>"
        folder = root / f"BraTS-{layout.split(':')[1]}-00001-000"
        names = {k: f"{folder.name}-{s}" for k, s in NEW_SUFFIX.items()}
    folder.mkdir(parents=True)
    ext = ".nii" if layout == "brats2020" else ".nii.gz"
    for m in MODALITIES:
        _save(folder / f"{names[m]}{ext}", images[m], affine)
    _save(folder / f"{names['seg']}{ext}", seg, affine)
    explicit = labels.name if layout.endswith(":PED") else "auto"
    files = case_files(folder, "auto", explicit)
    assert files.labels == labels.name, (layout, files.labels, labels.name)
    return files


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(a & b) / total


def region_dice(labels: LabelSet, got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    return {
        n: dice(g, w)
        for n, g, w in zip(
            labels.region_names, labels.region_masks(got), labels.region_masks(want), strict=True
        )
    }


def pipeline_round_trip(files: CaseFiles, work: Path, target: tuple[float, float, float]) -> dict[str, Any]:
    """Ingest -> finalise -> restore_original of the reference itself; the restored and reference classes."""
    params = PreprocessParams.from_dict({**yaml.safe_load((ROOT / "params.yaml").read_text())["preprocess"]})
    params = dataclasses.replace(params, n4=dataclasses.replace(params.n4, enabled=False))
    start = time.perf_counter()
    ingest(
        files,
        work / "ingested.npz",
        IngestOptions(target_spacing=target, image_order=params.resample.image_order),
    )
    finalise(work / "ingested.npz", work / "case", params)
    case = open_case(work / "case")
    restored, geometry = restore_original(case.label(), case.properties)
    seconds = time.perf_counter() - start
    reference = reference_classes(case.properties)
    (work / "ingested.npz").unlink()
    return {
        "restored": restored,
        "reference": reference,
        "properties": case.properties,
        "seconds": seconds,
        "geometry": geometry,
    }


def _nearest(a: np.ndarray, shape: list[int]) -> np.ndarray:
    factors = [n / o for n, o in zip(shape, a.shape, strict=True)]
    return np.asarray(ndimage.zoom(a, factors, order=0, grid_mode=True, mode="nearest"))


def alternatives(reference: np.ndarray, properties: dict[str, Any]) -> dict[str, np.ndarray]:
    """The reference through the same grids with nearest neighbour, and with soft per-class maps."""
    transforms = properties["transforms"]
    plan, record = transforms["resampling"], transforms["orientation"]
    ras = orient.apply(reference, np.asarray(record["ornt"], dtype=np.float64))
    shape, native, spacing = plan["shape"], plan["native_shape"], plan["native_spacing"]
    nearest = orient.undo(_nearest(_nearest(ras, shape), native), record)
    present = np.unique(ras)
    onehot = np.stack([(ras == c).astype(np.float32) for c in present])
    down = resample_probabilities(onehot, tuple(shape), spacing)
    back = resample_probabilities(down, tuple(native), spacing)
    soft = orient.undo(present[np.argmax(back, axis=0)].astype(np.uint8), record)
    return {"nearest": nearest, "soft": soft}


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


#: (row name, layout, label set, header kind, case transform)
VARIANTS: list[tuple[str, str, str, str, Callable[[Case], Case]]] = [
    ("2018 HGG/", "brats2018", "brats2021", "LPS", lambda c: c),
    ("2019 LGG/", "brats2019", "brats2021", "LPS", lambda c: c),
    ("2020 .nii", "brats2020", "brats2021", "LPS", lambda c: c),
    ("2021", "brats2021", "brats2021", "LPS", lambda c: c),
    ("2021 IRA header", "brats2021", "brats2021", "IRA", lambda c: c),
    ("2021 oblique", "brats2021", "brats2021", "oblique", lambda c: c),
    ("2023 MEN", "brats2023:MEN", "brats2023", "LPS", lambda c: c),
    ("2024 GLI + RC", "brats2023:GLI", "brats2024", "LPS", with_cavity),
    ("2024 PED + CC", "brats2023:PED", "brats2024_ped", "LPS", with_cyst),
    ("MSD Task01 4D", "msd_task01", "msd_task01", "RAS", lambda c: c),
]
QUICK = {"2018 HGG/", "2021", "2021 IRA header", "2024 GLI + RC", "2024 PED + CC", "MSD Task01 4D"}


def run(cases: list[Case], work: Path, quick: bool) -> None:
    rows, dice_rows = [], []
    variants = [v for v in VARIANTS if not quick or v[0] in QUICK]
    clinical_variant = ("clinical 0.5x0.5x5", "brats2021", "brats2021", "LPS", clinical)
    for ci, base in enumerate(cases):
        for name, layout, labels_name, kind, make in [*variants, clinical_variant]:
            labels = label_set(labels_name)
            case = make(base)
            folder = work / f"c{ci}-{name.replace(' ', '_').replace('/', '')}"
            files = write_layout(folder / "raw", case, layout, labels, kind)
            spacing = tuple(float(s) for s in np.linalg.norm(case.affine[:3, :3], axis=0))
            targets = [("native", spacing), ("2 mm", (2.0, 2.0, 2.0))]
            if name.startswith("clinical"):
                targets.append(("1 mm", (1.0, 1.0, 1.0)))
            for tname, target in targets:
                out = pipeline_round_trip(
                    files, folder / tname.replace(" ", ""), (target[0], target[1], target[2])
                )
                restored, reference = out["restored"], out["reference"]
                plan = out["properties"]["transforms"]["resampling"]
                exact = bool(np.array_equal(restored, reference))
                grid = "x".join(str(s) for s in plan["shape"])
                rows.append(
                    [
                        f"case {ci}",
                        name,
                        labels.name,
                        kind,
                        tname,
                        grid,
                        plan["resampled"],
                        exact,
                        out["seconds"],
                    ]
                )
                if tname == "native":
                    assert exact, f"{name}: the round trip without resampling is not exact"
                    continue
                alt = alternatives(reference, out["properties"])
                for method, got in (
                    ("pipeline", restored),
                    ("nearest", alt["nearest"]),
                    ("soft", alt["soft"]),
                ):
                    d = region_dice(labels, got, reference)
                    dice_rows.append(
                        [
                            f"case {ci}",
                            name,
                            tname,
                            method,
                            " ".join(f"{k} {v:.4f}" for k, v in d.items()),
                            min(d.values()),
                        ]
                    )
    table(
        "1. round trip of the reference labels (exact: restored == reference voxel for voxel)",
        [
            "case",
            "layout / release",
            "label set",
            "header",
            "target",
            "processed grid",
            "resampled",
            "exact",
            "seconds",
        ],
        rows,
    )
    table(
        "2. Dice per region on the native grid after the round trip (pipeline: hard classes back, per-class "
        "linear; nearest: both ways; soft: class maps back, as probabilities would be)",
        ["case", "layout / release", "target", "method", "Dice per region", "min"],
        dice_rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2, help="synthetic cases (indices 0..N-1)")
    parser.add_argument("--quick", action="store_true", help="fewer layout variants")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}")
    cases = [synthetic(i) for i in range(args.cases)]
    for i, c in enumerate(cases):
        vox = {n: int(np.count_nonzero(c.classes == k)) for k, n in ((1, "NETC"), (2, "SNFH"), (3, "ET"))}
        print(f"case {i}: grid {c.classes.shape} at 1 mm, tumour voxels {vox}")
    with tempfile.TemporaryDirectory(prefix="bench-roundtrip-") as tmp:
        run(cases, Path(tmp), args.quick)


if __name__ == "__main__":
    main()
