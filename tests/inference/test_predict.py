import nibabel as nib
import numpy as np
import pytest
import torch

from bratseg.cache import open_case
from bratseg.config import InferenceParams, NetParams, PostprocessParams, PreprocessParams
from bratseg.inference.postprocess import PostprocessPlan
from bratseg.inference.predict import Ensemble, TrainedModel, restore_original, write_segmentation
from bratseg.io import Geometry
from bratseg.labels import BRATS_2021, MSD_TASK01
from bratseg.layouts import MODALITIES
from bratseg.models.checkpoint import save_checkpoint
from bratseg.models.registry import build_model
from bratseg.preprocess.steps.finalise import finalise
from bratseg.preprocess.steps.ingest import IngestOptions, ingest
from bratseg.rawcase import reference_classes


def geometry(tmp_path, shape=(11, 13, 9)):
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), affine), tmp_path / "ref.nii.gz")
    return Geometry.from_image(nib.load(tmp_path / "ref.nii.gz"))


def test_restore_and_write_back_in_the_original_space(tmp_path):
    geo = geometry(tmp_path)
    cropped = np.zeros((4, 5, 3), np.uint8)
    cropped[1, 2, 1] = 3
    props = {"geometry": geo.to_dict(), "bbox": [[2, 6], [3, 8], [4, 7]]}
    full, g = restore_original(cropped, props)
    assert full.shape == geo.shape and full[3, 5, 5] == 3 and full.sum() == 3
    write_segmentation(tmp_path / "p.nii.gz", full, g, "brats2023")
    out = nib.load(tmp_path / "p.nii.gz")
    np.testing.assert_allclose(out.affine, nib.load(tmp_path / "ref.nii.gz").affine)
    assert np.asarray(out.dataobj)[3, 5, 5] == 3  # BraTS 2023: enhancing = 3
    write_segmentation(tmp_path / "q.nii.gz", full, g, "brats2021")
    assert np.asarray(nib.load(tmp_path / "q.nii.gz").dataobj)[3, 5, 5] == 4


NET = NetParams(depth=2, base_width=2, max_width=4, norm="instance", dropout=0.0, deep_supervision=True)


def _checkpoint(path, seed=0, **meta_changes):
    torch.manual_seed(seed)
    model = build_model("resunet", 4, 3, NET)
    meta = {
        "model": "resunet",
        "net": NET.to_dict(),
        "in_channels": 4,
        "out_channels": 3,
        "target": "regions",
        "patch_size": [8, 8, 8],
        **meta_changes,
    }
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    return model


def test_trained_model_loads_and_segments(tmp_path):
    model = _checkpoint(tmp_path / "best.pt")
    loaded = TrainedModel.load(tmp_path / "best.pt")
    assert not loaded.network.training
    image = np.random.default_rng(0).normal(size=(4, 9, 10, 11)).astype(np.float16)
    post = PostprocessParams(0.5, 0.0, 0, 0, (), 0, False, (0,))
    classes, info = loaded.segment(image, InferenceParams(0.5, 0.125, False, 2, True), post)
    assert classes.shape == (9, 10, 11) and classes.dtype == np.uint8
    assert set(info) == {
        "et_unconfident_relabelled",
        "components_removed",
        "coreless_removed",
        "largest_component_removed",
        "et_relabelled",
    }
    x = torch.from_numpy(image[None, :, :8, :8, :8].astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded.network(x), model.eval()(x))


def test_ensemble_averages_the_members_probabilities(tmp_path):
    _checkpoint(tmp_path / "a.pt", seed=0)
    _checkpoint(tmp_path / "b.pt", seed=1)
    image = np.random.default_rng(1).normal(size=(4, 9, 10, 11)).astype(np.float32)
    inference = InferenceParams(0.5, 0.125, False, 2, True)
    a, b = (TrainedModel.load(tmp_path / n).probabilities(image, inference) for n in ("a.pt", "b.pt"))
    assert not np.allclose(a, b)  # two different networks
    both = Ensemble.load([tmp_path / "a.pt", tmp_path / "b.pt"]).probabilities(image, inference)
    np.testing.assert_allclose(both, (a + b) / 2, atol=1e-6)
    one = Ensemble.load([tmp_path / "a.pt"]).probabilities(image, inference)
    np.testing.assert_array_equal(one, a)
    classes, info = Ensemble.load([tmp_path / "a.pt", tmp_path / "b.pt"]).segment(
        image, inference, PostprocessPlan(0.5)
    )
    assert classes.shape == (9, 10, 11) and info["largest_component_removed"] == 0


def test_ensemble_members_must_share_inputs_outputs_and_window(tmp_path):
    _checkpoint(tmp_path / "a.pt")
    _checkpoint(tmp_path / "b.pt", patch_size=[16, 16, 16])
    with pytest.raises(ValueError, match=r"b\.pt: patch_size"):
        Ensemble.load([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(ValueError, match="members"):
        Ensemble(())


# --- restore_original: the crop, the resampling and the reorientation undone ----------------------------


def _affine(kind: str, spacing=(2.0, 2.0, 2.0)) -> np.ndarray:
    """LPS (BraTS's own headers), IRA (a 3-cycle of the axes plus a flip) or an oblique LPS grid."""
    affine = np.eye(4)
    if kind == "LPS":
        affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) * spacing
    elif kind == "IRA":
        affine[:3, :3] = 0
        affine[2, 0], affine[0, 1], affine[1, 2] = -spacing[0], spacing[1], spacing[2]
    elif kind == "oblique":
        t = np.deg2rad(20.0)
        rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        affine[:3, :3] = rot @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(spacing)
    affine[:3, 3] = [30.0, -12.5, 7.0]
    return affine


def _cache(tmp_path, files, target, margin=1):
    """The pipeline's own ingest and finalise (no N4) on ``files``; the cached case."""
    params = PreprocessParams.from_dict(
        {
            "target_spacing_mm": "native",
            "resample": {"image_order": 3},
            "n4": {
                "enabled": False,
                "shrink_factor": 2,
                "fit_spacing_mm": 8.0,
                "iterations": [1],
                "convergence": 0.001,
                "control_points": 4,
                "histogram_bins": 50,
            },
            "normalise": {"clip_percentiles": [0.5, 99.5]},
            "crop": {"margin_vox": margin},
            "cache": {"dtype": "float32", "locations_per_class": 5},
        }
    )
    ingest(files, tmp_path / "ingested.npz", IngestOptions(target_spacing=target))
    finalise(tmp_path / "ingested.npz", tmp_path / "case", params)
    return open_case(tmp_path / "case")


@pytest.mark.parametrize("kind", ["LPS", "IRA", "oblique"])
def test_restore_original_is_exact_without_resampling(tmp_path, write_case, make_phantom, kind):
    ph = make_phantom()
    affine = _affine(kind)
    files = write_case(
        tmp_path / "raw", "BraTS2021_00001", ph, affines={k: affine for k in (*MODALITIES, "seg")}
    )
    case = _cache(tmp_path, files, target=(2.0, 2.0, 2.0))
    assert not case.properties["transforms"]["resampling"]["resampled"]
    assert case.label().shape != ph.seg.shape  # cropped (and permuted for IRA)
    classes, geometry = restore_original(case.label(), case.properties)
    reference = reference_classes(case.properties)
    assert classes.dtype == np.uint8 and classes.flags.c_contiguous
    np.testing.assert_array_equal(classes, reference)
    np.testing.assert_array_equal(classes, BRATS_2021.to_classes(ph.seg))
    write_segmentation(tmp_path / "pred.nii.gz", classes, geometry, "brats2021")
    out, raw = nib.load(tmp_path / "pred.nii.gz"), nib.load(files.seg)
    np.testing.assert_array_equal(np.asarray(out.dataobj), ph.seg)
    np.testing.assert_allclose(out.affine, raw.affine)
    assert out.header.get_zooms() == raw.header.get_zooms() and out.shape == raw.shape


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("kind", ["LPS", "oblique"])
def test_restore_original_through_resampling_up_and_back(tmp_path, write_case, make_phantom, kind):
    """A 2 mm case processed at 1 mm: the labels come back on the 2 mm grid exactly (every 1 mm voxel of a
    2 mm voxel votes for its class on the way back)."""
    ph = make_phantom(shape=(31, 33, 27))
    affine = _affine(kind)
    files = write_case(
        tmp_path / "raw", "BraTS2021_00001", ph, affines={k: affine for k in (*MODALITIES, "seg")}
    )
    case = _cache(tmp_path, files, target=(1.0, 1.0, 1.0))
    plan = case.properties["transforms"]["resampling"]
    assert plan["resampled"] and plan["shape"] == [62, 66, 54]
    classes, geometry = restore_original(case.label(), case.properties)
    reference = BRATS_2021.to_classes(ph.seg)
    assert geometry.shape == ph.seg.shape and set(np.unique(classes)) <= set(np.unique(reference))
    for name, got, want in zip(
        BRATS_2021.region_names,
        BRATS_2021.region_masks(classes),
        BRATS_2021.region_masks(reference),
        strict=True,
    ):
        print(f"2 -> 1 -> 2 mm Dice {name} {_dice(got, want):.4f}")
        assert _dice(got, want) >= 0.99, name


def test_restore_original_through_resampling_down_and_back(tmp_path, write_case, make_phantom):
    """A 1 mm case processed at 2 mm: a hard 2 mm label map loses the 1 mm boundary (the round trip of the
    reference itself: measured WT 0.958, TC 0.940, ET 0.903 on this small phantom; bench_roundtrip.py measures
    full-size cases)."""
    ph = make_phantom(shape=(61, 65, 53), voxel_mm=1.0)
    files = write_case(tmp_path / "raw", "BraTS2021_00001", ph)
    case = _cache(tmp_path, files, target=(2.0, 2.0, 2.0))
    classes, _ = restore_original(case.label(), case.properties)
    reference = BRATS_2021.to_classes(ph.seg)
    masks = zip(BRATS_2021.region_masks(classes), BRATS_2021.region_masks(reference), strict=True)
    wt, tc, et = (_dice(got, want) for got, want in masks)
    assert wt > 0.94 and tc > 0.92 and et > 0.88, (wt, tc, et)


def test_msd_prediction_is_written_as_a_3d_file_on_the_4d_image_grid(tmp_path, make_phantom):
    ph = make_phantom()
    img4d = nib.Nifti1Image(np.stack([ph.images[m] for m in MODALITIES], -1), ph.affine)
    geometry = Geometry.from_image(img4d)
    classes = BRATS_2021.to_classes(ph.seg)
    write_segmentation(tmp_path / "BRATS_001.nii.gz", classes, geometry, "msd_task01")
    out = nib.load(tmp_path / "BRATS_001.nii.gz")
    assert out.shape == ph.seg.shape and out.header["dim"][0] == 3
    np.testing.assert_allclose(out.affine, ph.affine)
    np.testing.assert_array_equal(np.asarray(out.dataobj), MSD_TASK01.from_classes(classes))
