"""Instance normalisation that keeps a channels-last input channels-last.

PyTorch's ``InstanceNorm3d`` runs batch norm on a ``(1, B·C, …)`` view and always returns a contiguous
(channels-first) tensor, so in a channels-last network every convolution after it gets its input in the
other format, and oneDNN's channels-first kernels are the slow ones (on AVX2-only CPUs the weight gradient
of a 16-channel 48³ convolution takes 1.8× as long as in channels-last).
``GroupNorm(C, C)`` computes the same function and keeps channels-last, but its CPU backward pass sums
``Σ dy·x − mean·Σ dy`` in single precision: for activations of mean 100 and std 1 its channels-last input
gradient is off by 1.6e-2 relative to float64 (``tests/models/test_norm.py`` holds this module to 1e-4 for
mean 100 and std 3).

:class:`InstanceNorm3d` is ``nn.InstanceNorm3d(affine=True)`` (same state, same module type) whose forward
pass, on a channels-last input, normalises each sample with PyTorch's own batch-norm kernels, which have a
channels-last path: a ``(1, C, X, Y, Z)`` sample is one batch of one, so its batch statistics are the instance
statistics. Any other input takes the built-in path unchanged, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

CHANNELS_LAST = torch.channels_last_3d


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` is a 5-D tensor in channels-last 3D layout (and not also plainly contiguous)."""
    return x.ndim == 5 and x.is_contiguous(memory_format=CHANNELS_LAST) and not x.is_contiguous()


class _PerSampleBatchNorm(torch.autograd.Function):
    """Instance norm of a channels-last ``(B, C, X, Y, Z)`` tensor as ``B`` batch norms of one sample each."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        y = torch.empty_like(x)
        means, rstds = [], []
        for n in range(x.shape[0]):
            out, mean, rstd = torch.ops.aten.native_batch_norm(
                x[n : n + 1], weight, bias, None, None, True, 0.0, eps
            )
            y[n : n + 1] = out
            means.append(mean)
            rstds.append(rstd)
        ctx.save_for_backward(x, weight, torch.stack(means), torch.stack(rstds))
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        x, weight, means, rstds = ctx.saved_tensors
        dy = dy.contiguous(memory_format=CHANNELS_LAST)
        dx = torch.empty_like(x)
        dweight = torch.zeros_like(weight)
        dbias = torch.zeros_like(weight)
        for n in range(x.shape[0]):
            dxn, dwn, dbn = torch.ops.aten.native_batch_norm_backward(
                dy[n : n + 1], x[n : n + 1], weight, None, None, means[n], rstds[n], True, ctx.eps,
                [True, True, True],
            )
            dx[n : n + 1] = dxn
            dweight += dwn
            dbias += dbn
        return dx, dweight, dbias, None


class InstanceNorm3d(nn.InstanceNorm3d):
    """``nn.InstanceNorm3d(channels, affine=True)`` that returns a channels-last output for a channels-last
    input (see the module docstring); any other input is normalised by the built-in module.

    Shapes: ``(B, C, X, Y, Z)`` → the same shape, in the memory format of the input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)

    def forward(self, input: Tensor) -> Tensor:
        if not is_channels_last(input):
            return super().forward(input)
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got shape {tuple(input.shape)}")
        out: Tensor = _PerSampleBatchNorm.apply(input, self.weight, self.bias, self.eps)
        return out

