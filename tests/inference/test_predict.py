import nibabel as nib
import numpy as np
import torch

from bratseg.config import InferenceParams, NetParams, PostprocessParams
from bratseg.inference.predict import TrainedModel, restore_original, write_segmentation
from bratseg.io import Geometry
from bratseg.models.checkpoint import save_checkpoint
from bratseg.models.registry import build_model


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


def test_trained_model_loads_and_segments(tmp_path):
    net = NetParams(depth=2, base_width=2, max_width=4, norm="instance", dropout=0.0, deep_supervision=True)
    model = build_model("resunet", 4, 3, net)
    meta = {
        "model": "resunet",
        "net": net.to_dict(),
        "in_channels": 4,
        "out_channels": 3,
        "target": "regions",
        "patch_size": [8, 8, 8],
    }
    save_checkpoint(tmp_path / "best.pt", {"model": model.state_dict(), "meta": meta})
    loaded = TrainedModel.load(tmp_path / "best.pt")
    assert not loaded.network.training
    image = np.random.default_rng(0).normal(size=(4, 9, 10, 11)).astype(np.float16)
    classes, info = loaded.segment(image, InferenceParams(0.5, 0.125, False, 2), PostprocessParams(0.5, 0, 0))
    assert classes.shape == (9, 10, 11) and classes.dtype == np.uint8
    assert set(info) == {"components_removed", "et_relabelled"}
    x = torch.from_numpy(image[None, :, :8, :8, :8].astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded.network(x), model.eval()(x))
