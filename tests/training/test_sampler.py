import dataclasses

import numpy as np
import pytest
import torch

from bratseg.config import AugmentParams
from bratseg.training.sampler import PatchDataset, choose_start, start_bounds

PATCH = (16, 16, 16)


def dataset(cases, **kw):
    args = dict(patch_size=PATCH, samples_per_epoch=40, foreground_fraction=0.5, target="regions", seed=3)
    args.update(kw)
    return PatchDataset(cases, **args)


def test_start_bounds_inside_or_covering():
    lo, hi = start_bounds((30, 10, 16), (16, 16, 16))
    assert lo.tolist() == [0, -6, 0] and hi.tolist() == [14, 0, 0]


def test_foreground_start_keeps_the_voxel_inside_the_patch():
    rng = np.random.default_rng(0)
    shape = (40, 12, 33)
    voxels = np.array([[0, 0, 0], [39, 11, 32], [20, 5, 16]], dtype=np.int32)
    for _ in range(300):
        start = choose_start(shape, PATCH, {3: voxels}, True, rng)
        lo, hi = start_bounds(shape, PATCH)
        assert (start >= lo).all() and (start <= hi).all()
        assert any(((v >= start) & (v < start + 16)).all() for v in voxels)


def test_items_have_the_documented_shapes(cached_cases):
    image, target = dataset(cached_cases)[0]
    assert image.shape == (4, *PATCH) and image.dtype == torch.float32
    assert target.shape == (3, *PATCH) and set(target.unique().tolist()) <= {0.0, 1.0}
    image, target = dataset(cached_cases, target="classes")[1]
    assert target.shape == PATCH and target.dtype == torch.int64


def test_samples_are_a_function_of_seed_epoch_and_index(cached_cases):
    a, b = dataset(cached_cases), dataset(cached_cases)
    assert torch.equal(a[7][0], b[7][0])
    b.set_epoch(1)
    assert not torch.equal(a[7][0], b[7][0])
    c = dataset(cached_cases, seed=4)
    assert not torch.equal(a[7][0], c[7][0])


def test_foreground_fraction_of_patches_hit_the_tumour(case_factory):
    """In large cases with a small tumour a uniform patch rarely hits it (rate p0); a forced foreground patch
    always does. So the share of patches holding tumour must be ``f + (1 - f) * p0`` for fraction ``f``."""
    cases = [case_factory(f"BraTS2021_{i:05d}", (64, 60, 62), 10 + i) for i in range(2)]

    def tumour_share(fraction):
        ds = dataset(cases, foreground_fraction=fraction, samples_per_epoch=600)
        return float(np.mean([ds.sample(i)[1].any() for i in range(len(ds))]))

    p0 = tumour_share(0.0)
    assert 0.02 < p0 < 0.25  # the geometry makes a random hit rare but possible
    assert tumour_share(1.0) == 1.0
    for fraction in (0.33, 0.6):
        assert abs(tumour_share(fraction) - (fraction + (1 - fraction) * p0)) < 0.06


def test_loader_workers_do_not_change_the_batches(cached_cases):
    off = {f.name: 0.0 for f in dataclasses.fields(AugmentParams)}
    params = AugmentParams(**{**off, "flip": True, "intensity_scale": 0.1, "intensity_shift": 0.1})
    ds = dataset(cached_cases, augment_params=params)
    single = [b[0] for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)]
    multi = [b[0] for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(single, multi, strict=True))


def test_invalid_arguments(cached_cases, case_factory):
    with pytest.raises(ValueError, match="target"):
        dataset(cached_cases, target="labels")
    with pytest.raises(ValueError, match="foreground_fraction"):
        dataset(cached_cases, foreground_fraction=1.5)
    with pytest.raises(ValueError, match="cases"):
        dataset([])
    unlabelled = case_factory("BraTS2021_00099", (19, 19, 19), 9, label=False)
    with pytest.raises(ValueError, match="BraTS2021_00099"):
        dataset([*cached_cases, unlabelled])


def test_pickled_dataset_does_not_carry_memory_maps(cached_cases):
    import pickle

    ds = dataset(cached_cases)
    first = ds[0][0]
    assert ds._arrays  # opened once in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._arrays == {} and clone._locations == {}
    assert torch.equal(clone[0][0], first)
