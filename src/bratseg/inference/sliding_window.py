"""Sliding-window inference over whole volumes with Gaussian importance weighting (nnU-Net style).

A volume ``(C, X, Y, Z)`` is covered by overlapping windows of ``patch_size``; each window is predicted,
weighted by a Gaussian that favours its centre, and the weighted predictions are averaged. Volumes smaller
than the window along an axis are zero-padded (centred) up to the window and cropped back afterwards.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import torch

#: Floor of the importance map: keeps every weight positive (and normal in float32) for any ``sigma_scale``.
MIN_IMPORTANCE = 1e-6
#: Accumulators stay on a CUDA device only while they take at most this share of its free memory.
_DEVICE_ACCUMULATOR_SHARE = 0.25
#: The 8 flip combinations of the 3 spatial axes of a ``(B, C, X, Y, Z)`` batch, identity first.
_FLIPS: tuple[tuple[int, ...], ...] = tuple(
    axes for n in range(4) for axes in itertools.combinations((2, 3, 4), n)
)

Predictor = Callable[[torch.Tensor], torch.Tensor]
Image = npt.NDArray[np.generic] | torch.Tensor


def _check_patch(patch_size: Sequence[int], ndim: int = 3) -> tuple[int, ...]:
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != ndim:
        raise ValueError(f"patch_size must have {ndim} entries, got {list(patch_size)}")
    if any(p < 1 for p in patch):
        raise ValueError(f"patch_size entries must be >= 1, got {list(patch_size)}")
    return patch


def _check_overlap(overlap: float) -> None:
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")


def gaussian_importance_map(
    patch_size: Sequence[int], sigma_scale: float = 0.125, *, min_value: float = MIN_IMPORTANCE
) -> npt.NDArray[np.float32]:
    """Separable Gaussian weight map over one window, as in nnU-Net.

    The Gaussian is centred on the window centre ``(p - 1) / 2`` (so the map is symmetric under axis flips)
    with standard deviation ``sigma_scale * p`` along each axis, scaled to a maximum of 1 and clamped below at
    ``min_value`` so that no voxel of a window gets zero weight.

    Args:
        patch_size: window size ``(px, py, pz)`` (any number of axes), every entry >= 1.
        sigma_scale: standard deviation as a fraction of the window size, > 0.
        min_value: floor of the map, in ``(0, 1]``.

    Returns:
        ``patch_size``-shaped float32 map with values in ``[min_value, 1]``.
    """
    patch = _check_patch(patch_size, len(patch_size))
    if not sigma_scale > 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale}")
    if not 0 < min_value <= 1:
        raise ValueError(f"min_value must lie in (0, 1], got {min_value}")
    weights = np.ones((), dtype=np.float64)
    for p in patch:
        offset = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
        axis = np.exp(-0.5 * (offset / (sigma_scale * p)) ** 2)
        weights = np.multiply.outer(weights, axis)
    weights /= weights.max()
    return np.maximum(weights, min_value).astype(np.float32)


def window_starts(shape: Sequence[int], patch_size: Sequence[int], overlap: float) -> list[list[int]]:
    """Window start positions along each axis, like nnU-Net's ``compute_steps_for_sliding_window``.

    Along an axis of size ``n`` with window ``p``, the target step is ``ceil(p * (1 - overlap))``; the number
    of windows is the fewest that reach the end with that step, and the starts are then spread evenly from
    ``0`` to ``n - p`` (both included), so the windows cover the axis exactly. An axis shorter than the window
    (``n < p``) gets the single start 0: it is padded up to ``p`` before prediction.

    Args:
        shape: spatial size ``(X, Y, Z)``, every entry >= 1.
        patch_size: window size, same length as ``shape``.
        overlap: fraction of the window shared by neighbouring windows, in ``[0, 1)``.

    Returns:
        One ascending list of starts per axis.
    """
    patch = _check_patch(patch_size, len(shape))
    _check_overlap(overlap)
    if any(int(n) < 1 for n in shape):
        raise ValueError(f"shape entries must be >= 1, got {list(shape)}")
    starts: list[list[int]] = []
    for n, p in zip((int(n) for n in shape), patch, strict=True):
        span = n - p
        if span <= 0:
            starts.append([0])
            continue
        step = max(1, math.ceil(p * (1.0 - overlap) - 1e-9))
        n_windows = math.ceil(span / step) + 1
        actual = span / (n_windows - 1)
        starts.append([round(actual * i) for i in range(n_windows)])
    return starts


def _windows(starts: list[list[int]], patch: tuple[int, ...]) -> list[tuple[slice, ...]]:
    return [
        tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
        for corner in itertools.product(*starts)
    ]


def _batches(items: list[tuple[slice, ...]], size: int) -> Iterator[list[tuple[slice, ...]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_image(image: Image) -> Image:
    if not isinstance(image, torch.Tensor):
        image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"image must be 4D (C, X, Y, Z), got shape {tuple(image.shape)}")
    return image


def _pad_to_patch(image: Image, patch: tuple[int, ...]) -> tuple[Image, tuple[slice, ...]]:
    """Zero-pad (centred) the spatial axes up to ``patch``; return the padded image and the crop back."""
    shape = tuple(int(n) for n in image.shape[1:])
    if all(n >= p for n, p in zip(shape, patch, strict=True)):
        return image, tuple(slice(0, n) for n in shape)
    lows = [max(p - n, 0) // 2 for n, p in zip(shape, patch, strict=True)]
    full = (int(image.shape[0]), *(max(n, p) for n, p in zip(shape, patch, strict=True)))
    crop = tuple(slice(lo, lo + n) for lo, n in zip(lows, shape, strict=True))
    if isinstance(image, torch.Tensor):
        padded_t = image.new_zeros(full)
        padded_t[(slice(None), *crop)] = image
        return padded_t, crop
    padded = np.zeros(full, dtype=image.dtype)
    padded[(slice(None), *crop)] = image
    return padded, crop


def _gather(image: Image, windows: list[tuple[slice, ...]], device: torch.device) -> torch.Tensor:
    """The windows of ``image`` as one float32 batch ``(B, C, *patch)`` on ``device``."""
    if isinstance(image, torch.Tensor):
        batch = torch.stack([image[(slice(None), *w)] for w in windows])
    else:  # copies only the windows, so read-only and memory-mapped arrays work as they are
        batch = torch.from_numpy(
            np.stack([image[(slice(None), *w)] for w in windows]).astype(np.float32, copy=False)
        )
    return batch.to(device=device, dtype=torch.float32)


def _accumulator_device(device: torch.device, n_bytes: int) -> torch.device:
    """The device of the accumulators: ``device`` when it is CUDA with room to spare, the CPU otherwise."""
    if device.type != "cuda":
        return torch.device("cpu")
    free, _ = torch.cuda.mem_get_info(device)
    return device if n_bytes <= _DEVICE_ACCUMULATOR_SHARE * free else torch.device("cpu")


def _predict_batch(
    batch: torch.Tensor, predictor: Predictor, n_outputs: int, amp_dtype: torch.dtype | None, tta_flips: bool
) -> torch.Tensor:
    """Probabilities ``(B, n_outputs, *patch)`` in float32 for one batch, averaged over flips if asked."""
    expected = (batch.shape[0], n_outputs, *batch.shape[2:])
    use_amp = amp_dtype is not None and batch.device.type == "cuda"
    total: torch.Tensor | None = None
    for axes in _FLIPS if tta_flips else ((),):
        inp = torch.flip(batch, axes) if axes else batch
        with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
            out = predictor(inp)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"predictor must return shape {expected}, got {got}")
        out = out.float()
        if axes:
            out = torch.flip(out, axes)
        total = out if total is None else total + out
    assert total is not None
    return total / len(_FLIPS) if tta_flips else total


def sliding_window_predict(
    image: Image,
    predictor: Predictor,
    *,
    patch_size: Sequence[int],
    n_outputs: int,
    overlap: float = 0.5,
    sigma_scale: float = 0.125,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    tta_flips: bool = False,
    progress: bool = False,
) -> npt.NDArray[np.float32]:
    """Gaussian-weighted average of window predictions over a whole volume.

    Windows are gathered ``batch_size`` at a time, moved to ``device`` as float32 and passed to ``predictor``
    under :func:`torch.inference_mode` (and :func:`torch.autocast` with ``amp_dtype`` when ``device`` is CUDA;
    ``amp_dtype`` is ignored elsewhere). The sums of weighted predictions and of weights are kept in float32
    on ``device`` when it is CUDA with room to spare, otherwise on the CPU; only one batch of windows
    exists at a time. Windows are visited in a fixed order, so equal inputs give bit-identical outputs.

    Args:
        image: ``(C, X, Y, Z)`` volume, numpy (memory-mapped is fine) or torch, any real dtype.
        predictor: maps a float32 batch ``(B, C, *patch_size)`` on ``device`` to probabilities
            ``(B, n_outputs, *patch_size)`` (apply sigmoid / softmax inside it).
        patch_size: window size ``(px, py, pz)``.
        n_outputs: number of output channels of ``predictor``, >= 1.
        overlap: window overlap in ``[0, 1)``, see :func:`window_starts`.
        sigma_scale: Gaussian sigma as a fraction of the window, see :func:`gaussian_importance_map`.
        batch_size: windows per predictor call, >= 1.
        device: where ``predictor`` runs.
        amp_dtype: autocast dtype on CUDA (e.g. ``torch.bfloat16``); ``None`` runs in float32.
        tta_flips: also average over the 7 flips of the spatial axes (8 predictions per window).
        progress: show a tqdm bar over windows.

    Returns:
        ``(n_outputs, X, Y, Z)`` float32 probabilities.

    Raises:
        ValueError: on a bad argument (the message names it) or a predictor output of the wrong shape.
    """
    patch = _check_patch(patch_size)
    _check_overlap(overlap)
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    image = _check_image(image)
    dev = torch.device(device)
    gaussian_np = gaussian_importance_map(patch, sigma_scale)

    padded, crop = _pad_to_patch(image, patch)
    shape = tuple(padded.shape[1:])
    windows = _windows(window_starts(shape, patch, overlap), patch)
    acc_dev = _accumulator_device(dev, (n_outputs + 1) * math.prod(shape) * 4)
    if acc_dev.type == "cpu":
        acc_np = np.zeros((n_outputs, *shape), dtype=np.float32)
        weight_np = np.zeros((1, *shape), dtype=np.float32)
        acc, weight = torch.from_numpy(acc_np), torch.from_numpy(weight_np)
    else:
        acc = torch.zeros((n_outputs, *shape), dtype=torch.float32, device=acc_dev)
        weight = torch.zeros((1, *shape), dtype=torch.float32, device=acc_dev)
    gaussian = torch.from_numpy(gaussian_np).to(dev)
    gaussian_acc = gaussian.to(acc_dev)[None]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(windows), desc="sliding window", unit="window", leave=False)
    try:
        with torch.inference_mode():
            for chunk in _batches(windows, batch_size):
                batch = _gather(padded, chunk, dev)
                probs = _predict_batch(batch, predictor, n_outputs, amp_dtype, tta_flips)
                weighted = (probs * gaussian).to(acc_dev)
                for i, w in enumerate(chunk):
                    acc[(slice(None), *w)].add_(weighted[i])
                    weight[(slice(None), *w)].add_(gaussian_acc)
                if bar is not None:
                    bar.update(len(chunk))
            acc.div_(weight)
    finally:
        if bar is not None:
            bar.close()

    if acc_dev.type == "cpu":
        return acc_np if tuple(shape) == tuple(image.shape[1:]) else acc_np[(slice(None), *crop)].copy()
    return np.ascontiguousarray(acc[(slice(None), *crop)].cpu().numpy())
