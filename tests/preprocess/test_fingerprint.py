"""The cohort's label set (data.labels: auto) and the dataset fingerprint's cohort summary."""

from __future__ import annotations

import numpy as np
import pytest

from bratseg.errors import ConfigError
from bratseg.labels import BRATS_2021, BRATS_2023, BRATS_2024, label_set
from bratseg.layouts import MODALITIES
from bratseg.preprocess.fingerprint import cohort_fingerprint, cohort_label_set
from bratseg.preprocess.steps.ingest import IngestOptions, ingest
from bratseg.preprocess.steps.interim import read_npz

GLI = ("brats2023", "brats2024")


def props(case_id, convention, candidates=None, values=None, **fingerprint):
    """The fields of a cached case's properties that the cohort functions read."""
    fp = dict(fingerprint)
    if values is not None:
        fp["values_found"] = sorted({0, *values})
    return {
        "case_id": case_id,
        "convention": convention,
        "label_candidates": list(candidates or (convention,)),
        "has_label": values is not None,
        "fingerprint": fp,
    }


def test_explicit_labels_win():
    cases = [props("BraTS-GLI-00001-000", "brats2024", GLI, [1, 2, 3])]
    assert cohort_label_set(cases, "brats2023") is BRATS_2023


def test_2024_is_decided_by_a_resection_cavity_anywhere_in_the_cohort():
    cases = [
        props("BraTS-GLI-00001-000", "brats2024", GLI, [1, 2, 3]),
        props("BraTS-GLI-00002-000", "brats2024", GLI, [1, 2, 3, 4]),
        props("BraTS-GLI-00003-000", "brats2024", GLI),  # unlabelled: no vote
    ]
    assert cohort_label_set(cases) is BRATS_2024


def test_glioma_without_label_4_is_ambiguous_in_one_line_naming_data_labels():
    cases = [props(f"BraTS-GLI-0000{i}-000", "brats2024", GLI, [1, 2, 3]) for i in range(3)]
    with pytest.raises(ConfigError) as info:
        cohort_label_set(cases)
    message = str(info.value)
    assert message.startswith("data.labels:") and "brats2023 and brats2024" in message
    assert "set data.labels" in message and "\n" not in message


def test_a_2023_only_challenge_settles_the_glioma_cases():
    cases = [
        props("BraTS-GLI-00001-000", "brats2024", GLI, [1, 2, 3]),
        props("BraTS-MEN-00002-000", "brats2023", None, [1, 2, 3]),
    ]
    assert cohort_label_set(cases) is BRATS_2023


@pytest.mark.parametrize(
    "cases",
    [
        [
            props("BraTS2021_00001", "brats2021", None, [1, 2, 4]),
            props("BraTS-MEN-00002-000", "brats2023", None, [1]),
        ],
        [
            props("BraTS-GLI-00001-000", "brats2024", GLI, [4]),
            props("BraTS-MEN-00002-000", "brats2023", None, [1]),
        ],
        [props("BRATS_001", "msd_task01", None, [1, 2, 3]), props("BraTS2021_00001", "brats2021", None, [1])],
    ],
    ids=["2021+2023", "2024+MEN", "msd+2021"],
)
def test_mixed_label_sets_are_an_error(cases):
    with pytest.raises(
        ConfigError, match=r"^data.labels: the cases were read with different label sets"
    ) as info:
        cohort_label_set(cases)
    assert "\n" not in str(info.value)


def test_single_release_cohorts():
    assert cohort_label_set([props("BraTS2021_00001", "brats2021", None, [1, 2, 4])]) is BRATS_2021
    assert cohort_label_set([props("BRATS_001", "msd_task01", None, [1, 2])]).name == "msd_task01"
    assert cohort_label_set([props("BraTS-GLI-00001-000", "brats2024", GLI)]) is BRATS_2024  # unlabelled only
    ped = [props("BraTS-PED-00001-000", "brats2024_ped", None, [1, 2, 3, 4])]
    assert cohort_label_set(ped).name == "brats2024_ped"


def test_cohort_summary():
    cases = [
        props(
            "A",
            "brats2021",
            None,
            [1, 2, 4],
            spacing=[1.0, 1.0, 1.0],
            shape=[240, 240, 155],
            axcodes="LPS",
            class_voxels={"NETC": 10, "SNFH": 60, "ET": 30},
        ),
        props(
            "B",
            "brats2021",
            None,
            [2],
            spacing=[0.5, 0.5, 5.0],
            spacing_ras=[0.5, 0.5, 5.0],
            shape=[512, 512, 31],
            axcodes="LPS",
            class_voxels={"NETC": 0, "SNFH": 100, "ET": 0},
        ),
        props(
            "C",
            "brats2021",
            None,
            None,
            spacing=[3.0, 1.0, 1.2],
            spacing_ras=[1.0, 1.2, 3.0],
            shape=[64, 200, 210],
            axcodes="SRA",
        ),
    ]
    for p in cases:
        p["transforms"] = {"resampling": {"target_spacing": [1.0, 1.0, 1.0]}}
    fp = cohort_fingerprint(cases, BRATS_2021)
    assert fp["n_cases"] == 3 and fp["n_labelled"] == 2
    assert fp["labels"]["name"] == "brats2021"
    assert fp["labels"]["classes"] == {"NETC": "NCR", "SNFH": "ED", "ET": "ET"}
    assert fp["labels"]["regions"] == {"WT": ["NETC", "SNFH", "ET"], "TC": ["NETC", "ET"], "ET": ["ET"]}
    # median along the RAS+ axes (case C's file order S, R, A would give [1.0, 1.0, 1.2])
    assert fp["median_spacing_mm"] == [1.0, 1.0, 3.0]
    assert fp["target_spacing_mm"] == [1.0, 1.0, 1.0]
    assert fp["shape_min"] == [64, 200, 31] and fp["shape_max"] == [512, 512, 210]
    assert fp["shape_median"] == [240.0, 240.0, 155.0]
    assert fp["orientations"] == {"LPS": 2, "SRA": 1}
    assert fp["class_frequency"] == {"ET": 0.15, "NETC": 0.05, "SNFH": 0.8}
    assert set(fp["cases"]) == {"A", "B", "C"} and fp["cases"]["B"]["shape"] == [512, 512, 31]


def test_summary_of_an_unlabelled_native_cohort():
    fp = cohort_fingerprint(
        [props("A", "brats2023", None, None, spacing=[1, 1, 1], shape=[9, 9, 9])], BRATS_2023
    )
    assert fp["n_labelled"] == 0 and fp["class_frequency"] == {} and fp["target_spacing_mm"] is None


def test_fingerprint_from_ingested_cases(tmp_path, write_case, make_phantom):
    """The per-case records that ingest writes feed the summary directly."""
    records = []
    for i, flip in enumerate((False, True)):
        ph = make_phantom(seed=i)
        affine = ph.affine.copy()
        if flip:
            affine[:2] *= -1
            affine[3] = [0, 0, 0, 1]
        files = write_case(
            tmp_path, f"BraTS2021_0000{i}", ph, affines={k: affine for k in (*MODALITIES, "seg")}
        )
        ingest(files, tmp_path / f"{i}.npz", IngestOptions(target_spacing=(2.0, 2.0, 2.0)))
        _, meta = read_npz(tmp_path / f"{i}.npz")
        records.append(meta)
    labels = cohort_label_set(records)
    fp = cohort_fingerprint(records, labels)
    assert labels is label_set("brats2021") and fp["n_labelled"] == 2
    assert fp["orientations"] == {"LPS": 1, "RAS": 1} and fp["median_spacing_mm"] == [2.0, 2.0, 2.0]
    assert fp["target_spacing_mm"] == [2.0, 2.0, 2.0]
    assert sum(fp["class_frequency"].values()) == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(fp["cases"]["BraTS2021_00001"]["intensity"]["t1"]["p50"])
