"""Random 3D patches from the cached cases, with tumour oversampling.

Every sample is a pure function of ``(seed, epoch, index)``: the batches of an epoch are the same whatever the
number of loader workers, and a resumed run sees exactly the data an uninterrupted one would have seen.
Several training processes read disjoint shares of the same stream (:func:`rank_indices`), so the global
batch is the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from bratseg.cache import CachedCase, extract_patch
from bratseg.config import AugmentParams
from bratseg.labels import BRATS_2021, LabelSet
from bratseg.training.augment import augment

IntArray = npt.NDArray[np.int64]


def start_bounds(shape: Sequence[int], patch_size: Sequence[int]) -> tuple[IntArray, IntArray]:
    """Inclusive range of patch starts per axis.

    A patch lies inside the volume where the volume is larger than the patch; where it is smaller, the patch
    covers the whole axis and the rest is padding.
    """
    diff = np.asarray(shape, dtype=np.int64) - np.asarray(patch_size, dtype=np.int64)
    return np.minimum(diff, 0), np.maximum(diff, 0)


def choose_start(
    shape: Sequence[int],
    patch_size: Sequence[int],
    locations: dict[int, npt.NDArray[np.int32]],
    foreground: bool,
    rng: np.random.Generator,
) -> IntArray:
    """Start corner of one patch.

    With ``foreground`` and at least one tumour class present, a class is drawn uniformly among the present
    ones (so rare enhancing tumour is seen as often as edema), then one of its voxels, which lands at a
    uniform random position inside the patch. Otherwise the start is uniform over the volume.
    """
    lo, hi = start_bounds(shape, patch_size)
    present = [k for k in sorted(locations) if len(locations[k])]
    if foreground and present:
        cls = present[int(rng.integers(len(present)))]
        voxel = locations[cls][int(rng.integers(len(locations[cls])))].astype(np.int64)
        offset = rng.integers(0, np.asarray(patch_size, dtype=np.int64))
        start: IntArray = np.clip(voxel - offset, lo, hi)
        return start
    return rng.integers(lo, hi + 1)


def rank_indices(n_samples: int, global_batch: int, rank: int, world_size: int) -> list[int]:
    """The sample indices of one epoch that process ``rank`` of ``world_size`` trains on, in order.

    Global batch ``s`` holds samples ``s·B … s·B + B − 1`` (``B = global_batch``), exactly the batch one
    process reads; rank ``r`` takes its contiguous share ``s·B + r·b … s·B + (r + 1)·b − 1`` with
    ``b = B / world_size``. The ranks' batches, rank after rank, are the one-process batch; one process gets
    ``0 … n_samples − 1``.

    Raises:
        ValueError: naming the argument, if ``global_batch`` is not divisible by ``world_size``, if
            ``n_samples`` is not a whole number of global batches, or if ``rank`` is out of range.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size), got rank {rank} of world_size {world_size}")
    if global_batch < 1 or global_batch % world_size:
        raise ValueError(
            f"global_batch {global_batch} is not divisible by world_size {world_size} (train.batch_size is "
            "the global batch, split evenly over train.nproc processes)"
        )
    if n_samples < 0 or n_samples % global_batch:
        raise ValueError(f"n_samples {n_samples} is not a whole number of global batches of {global_batch}")
    share = global_batch // world_size
    return [
        start + rank * share + j for start in range(0, n_samples, global_batch) for j in range(share)
    ]


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Map-style dataset of random patches; call :meth:`set_epoch` before each epoch.

    Items are ``(image, target)``: image (4, *patch_size) float32; target (R, *patch_size) float32 masks of
    the label set's training regions (WT, TC, ET, ...) when ``target == "regions"``, or (*patch_size) int64
    training classes (0 background, then the label set's classes in order) for ``"classes"``.
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        *,
        patch_size: Sequence[int],
        samples_per_epoch: int,
        foreground_fraction: float,
        target: str,
        seed: int,
        augment_params: AugmentParams | None = None,
        labels: LabelSet = BRATS_2021,
    ) -> None:
        if not cases:
            raise ValueError("cases: at least one labelled case is needed for training")
        if target not in ("regions", "classes"):
            raise ValueError(f"target must be 'regions' or 'classes', got {target!r}")
        if not 0 <= foreground_fraction <= 1:
            raise ValueError(f"foreground_fraction must lie in [0, 1], got {foreground_fraction}")
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        missing = [c.case_id for c in cases if not c.properties.get("has_label")]
        if missing:
            raise ValueError(f"cases: training needs labelled cases, these have no segmentation: {missing}")
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.samples_per_epoch = samples_per_epoch
        self.foreground_fraction = foreground_fraction
        self.target = target
        self.seed = seed
        self.augment_params = augment_params
        self.labels = labels
        # canonical class -> training class index (softmax targets)
        self._class_index = np.zeros(max(labels.classes) + 1, dtype=np.int64)
        self._class_index[list(labels.classes)] = np.arange(1, len(labels.classes) + 1)
        self.epoch = 0
        # Per-process caches, opened lazily (memory maps must not travel to loader workers: see __getstate__).
        self._locations: dict[int, dict[int, npt.NDArray[np.int32]]] = {}
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, object]:
        # A pickled np.memmap carries its whole content; workers reopen the files themselves.
        return {**self.__dict__, "_locations": {}, "_arrays": {}}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _case_locations(self, i: int) -> dict[int, npt.NDArray[np.int32]]:
        if i not in self._locations:
            self._locations[i] = self.cases[i].locations()
        return self._locations[i]

    def _case_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._arrays:
            label = self.cases[i].label()
            assert label is not None  # checked in __init__
            self._arrays[i] = (self.cases[i].image(), label)
        return self._arrays[i]

    def sample(self, index: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """The raw (image, class label) patch for ``index`` in the current epoch, augmented."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        i = int(rng.integers(len(self.cases)))
        image, label = self._case_arrays(i)
        foreground = bool(rng.random() < self.foreground_fraction)
        start = choose_start(image.shape[1:], self.patch_size, self._case_locations(i), foreground, rng)
        img = extract_patch(image, start.tolist(), self.patch_size).astype(np.float32, copy=False)
        lab = extract_patch(label, start.tolist(), self.patch_size).astype(np.uint8, copy=False)
        if self.augment_params is not None:
            img, lab = augment(img, lab, self.augment_params, rng)
        return img, lab

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = self.sample(index)
        if self.target == "regions":
            target = torch.from_numpy(self.labels.training_masks(lab).astype(np.float32))
        else:
            target = torch.from_numpy(self._class_index[lab])
        return torch.from_numpy(np.ascontiguousarray(img)), target
