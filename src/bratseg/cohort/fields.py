"""Smooth random fields on a voxel grid, built cheaply from a few coefficients.

Two kinds of low-frequency fields, both evaluated axis by axis so that only the last step touches the full
grid (which keeps even the 1 mm grid, 240 × 240 × 155, fast):

- linear interpolation of a coarse grid of nodes spanning the output grid edge to edge;
- polynomials: sums of products of Legendre polynomials, one per axis.

Everything is plain vectorised numpy (no BLAS call), so the cost does not depend on BLAS threading.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

F32 = npt.NDArray[np.float32]
Span = tuple[int, int]


def power32(base: F32, exponent: float) -> F32:
    """``base ** exponent`` as float32, computed in float64.

    numpy's float32 ``power`` takes a vector path chosen by the CPU (AVX-512 or AVX2) whose results differ in
    the last bit; the float64 result rounded to float32 does not (a difference in float64's last bit shows in
    float32 for about 4 in 10^9 values), so the cohort is the same on every x86 machine
    (tests/e2e/test_reproducibility.py). Shape: that of ``base``.
    """
    return np.power(base, float(exponent), dtype=np.float64).astype(np.float32)


def _positions(n_out: int, n_coarse: int, span: Span) -> tuple[npt.NDArray[np.intp], F32]:
    """Left node and weight of the right node for output samples ``span[0]..span[1]-1``."""
    pos = np.linspace(0.0, n_coarse - 1.0, n_out)[span[0] : span[1]] if n_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.intp), 0, max(n_coarse - 2, 0))
    return lo, (pos - lo).astype(np.float32)


def upsample_linear(
    coarse: npt.NDArray[np.floating],
    shape: tuple[int, int, int],
    box: tuple[Span, Span, Span] | None = None,
) -> F32:
    """Linearly interpolate a coarse grid of nodes that spans the grid ``shape`` edge to edge.

    Args:
        coarse: ``(a, b, c)`` node values, each axis at least 2 nodes.
        shape: ``(n0, n1, n2)`` output grid.
        box: optional ``((start, stop),) * 3`` sub-box of the output grid to evaluate.

    Returns:
        float32 array of the box's shape (``shape`` by default).
    """
    if min(coarse.shape) < 2:
        raise ValueError(f"coarse must have at least 2 nodes per axis, got shape {coarse.shape}")
    spans = box if box is not None else ((0, shape[0]), (0, shape[1]), (0, shape[2]))
    out = np.asarray(coarse, dtype=np.float32)
    for axis in (2, 1, 0):  # the full-size result is produced last, contiguous
        lo, frac = _positions(shape[axis], coarse.shape[axis], spans[axis])
        left = np.take(out, lo, axis=axis)
        right = np.take(out, lo + 1, axis=axis)
        right -= left
        right *= frac.reshape([-1 if a == axis else 1 for a in range(3)])
        left += right
        out = left
    return out


def legendre_basis(n: int, degree: int) -> F32:
    """Legendre polynomials ``P_0 … P_degree`` at ``n`` points spanning ``[-1, 1]``: ``(n, degree + 1)``."""
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    x = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return np.stack([np.polynomial.legendre.Legendre.basis(d)(x) for d in range(degree + 1)], 1).astype(
        np.float32
    )


def polynomial_field(coefs: npt.NDArray[np.floating], shape: tuple[int, int, int]) -> F32:
    """Evaluate ``Σ coefs[p, q, r] P_p(x) P_q(y) P_r(z)`` on ``shape`` (coordinates spanning ``[-1, 1]``).

    Args:
        coefs: ``(d + 1, d + 1, d + 1)`` Legendre coefficients.

    Returns:
        ``shape`` float32 field.
    """
    d = coefs.shape[0] - 1
    b0, b1, b2 = (legendre_basis(n, d) for n in shape)
    planes = np.einsum("pqr,jq,kr->pjk", np.asarray(coefs, dtype=np.float32), b1, b2)  # (d + 1, n1, n2)
    out = np.zeros(shape, dtype=np.float32)
    for p in range(d + 1):
        out += b0[:, p, None, None] * planes[p][None]
    return out


def random_polynomial_coefs(rng: np.random.Generator, degree: int) -> npt.NDArray[np.float64]:
    """Random Legendre coefficients of total degree ``1..degree``, decaying with the degree: ``(d+1,)*3``."""
    idx = np.indices((degree + 1,) * 3).sum(0)
    coefs = rng.standard_normal(idx.shape) / np.maximum(idx, 1) ** 1.5
    coefs[(idx > degree) | (idx == 0)] = 0.0
    return np.asarray(coefs, dtype=np.float64)


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], coarse: tuple[int, int, int], sigma: float
) -> F32:
    """Zero-mean, unit-std smooth noise: Gaussian-smoothed white noise on a coarse grid, upsampled linearly.

    Args:
        rng: source of randomness (consumes ``prod(coarse)`` normals).
        shape: output grid ``(n0, n1, n2)``.
        coarse: coarse node grid (at least 2 per axis), spanning the output grid edge to edge.
        sigma: smoothing of the coarse noise, in coarse nodes.

    Returns:
        ``shape`` float32 field.
    """
    core = rng.standard_normal(coarse).astype(np.float32)
    if sigma > 0:
        core = ndimage.gaussian_filter(core, sigma, mode="wrap")
    core -= core.mean()
    core /= max(float(core.std()), 1e-6)
    return upsample_linear(core, shape)


def spherical_noise(
    rng: np.random.Generator, n_terms: int, freq: tuple[float, float]
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Parameters of a smooth random function on the unit sphere, see :func:`eval_spherical`.

    Returns:
        ``(directions (n, 3), frequencies (n,), phases (n,), weights (n,))``; the weights sum to 1 in absolute
        value, so the function lies in ``[-1, 1]``.
    """
    dirs = rng.standard_normal((n_terms, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freqs = rng.uniform(freq[0], freq[1], n_terms)
    phases = rng.uniform(0.0, 2.0 * np.pi, n_terms)
    weights = rng.uniform(0.3, 1.0, n_terms)
    return dirs, freqs, phases, weights / weights.sum()


def eval_spherical(
    params: tuple[
        npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
    ],
    unit: tuple[F32, F32, F32],
) -> F32:
    """Evaluate a function from :func:`spherical_noise` at unit vectors given as three arrays of one shape."""
    dirs, freqs, phases, weights = params
    out = np.zeros_like(unit[0])
    for d, f, p, w in zip(dirs, freqs, phases, weights, strict=True):
        proj = unit[0] * np.float32(d[0]) + unit[1] * np.float32(d[1]) + unit[2] * np.float32(d[2])
        out += np.float32(w) * np.cos(np.float32(f) * proj + np.float32(p))
    return out
