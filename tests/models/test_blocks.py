"""The building blocks in 3D and 2D: layer types, shapes, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bratseg.models import norm
from bratseg.models.blocks import (
    ConvNormAct,
    conv_class,
    make_block,
    make_dropout,
    make_norm,
    transposed_conv_class,
)


@pytest.mark.parametrize(
    ("spatial_dims", "conv", "up", "instance", "batch", "dropout"),
    [
        (3, nn.Conv3d, nn.ConvTranspose3d, norm.InstanceNorm3d, nn.BatchNorm3d, nn.Dropout3d),
        (2, nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d, nn.BatchNorm2d, nn.Dropout2d),
    ],
)
def test_layer_types_follow_spatial_dims(
    spatial_dims: int, conv: type, up: type, instance: type, batch: type, dropout: type
) -> None:
    assert conv_class(spatial_dims) is conv
    assert transposed_conv_class(spatial_dims) is up
    layer = make_norm("instance", 4, spatial_dims)
    assert type(layer) is instance and layer.affine
    assert type(make_norm("batch", 4, spatial_dims)) is batch
    assert type(make_dropout(0.2, spatial_dims)) is dropout
    assert type(make_dropout(0.0, spatial_dims)) is nn.Identity


@pytest.mark.parametrize(
    ("block", "spatial_dims", "shape", "expected"),
    [
        ("plain", 3, (2, 3, 5, 4, 3), (2, 6, 5, 4, 3)),
        ("residual", 3, (1, 3, 3, 3, 3), (1, 6, 3, 3, 3)),
        ("plain", 2, (2, 3, 5, 7), (2, 6, 5, 7)),
        ("residual", 2, (2, 6, 5, 7), (2, 6, 5, 7)),
    ],
)
def test_blocks_keep_the_spatial_size(
    block: str, spatial_dims: int, shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    module = make_block(block, shape[1], 6, norm="instance", dropout=0.1, spatial_dims=spatial_dims)
    assert module(torch.randn(shape)).shape == expected


@pytest.mark.parametrize(
    ("spatial_dims", "shape", "expected"),
    [(3, (1, 2, 8, 6, 4), (1, 5, 4, 3, 2)), (2, (1, 2, 8, 6), (1, 5, 4, 3))],
)
def test_strided_conv_halves(spatial_dims: int, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert (
        ConvNormAct(2, 5, norm="batch", stride=2, spatial_dims=spatial_dims)(torch.randn(shape)).shape
        == expected
    )


@pytest.mark.parametrize("spatial_dims", [1, 4, True])
def test_spatial_dims_are_checked(spatial_dims: int) -> None:
    with pytest.raises(ValueError, match="spatial_dims"):
        make_norm("instance", 4, spatial_dims)
    with pytest.raises(ValueError, match="spatial_dims"):
        conv_class(spatial_dims)
