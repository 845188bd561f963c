"""MONAI's SwinUNETR behind the project's forward contract: shapes, settings passed through, checks."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch
from monai.networks.nets.swin_unetr import SwinUNETR as MonaiSwinUNETR
from torch import nn

from bratseg.config import SWINUNETR_DIVISOR
from bratseg.models import swinunetr
from bratseg.models.swinunetr import SwinUNETR

TINY: dict[str, Any] = {
    "feature_size": 12,
    "depths": (1, 1, 1, 1),
    "num_heads": (3, 3, 3, 3),
    "norm": "batch",
}


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({}, (2, 4, 32, 32, 32), (2, 3, 32, 32, 32)),
        ({"norm": "instance", "window_size": 2}, (1, 4, 64, 32, 32), (1, 3, 64, 32, 32)),
        (
            {"use_v2": True, "dropout": 0.1, "attn_dropout": 0.1, "drop_path": 0.1},
            (2, 4, 32, 32, 32),
            (2, 3, 32, 32, 32),
        ),
    ],
)
def test_output_shapes(kwargs: dict[str, Any], shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = SwinUNETR(4, 3, **{**TINY, **kwargs})
    assert model.n_outputs == 1 and model.size_divisor == 32
    out = model.train()(torch.randn(shape))
    assert isinstance(out, torch.Tensor) and out.shape == expected
    with torch.no_grad():
        assert model.eval()(torch.randn(shape)).shape == expected


def test_is_monai_swinunetr() -> None:
    torch.manual_seed(5)
    ours = SwinUNETR(4, 3, **TINY, window_size=4).eval()
    torch.manual_seed(5)
    reference = MonaiSwinUNETR(
        in_channels=4,
        out_channels=3,
        depths=(1, 1, 1, 1),
        num_heads=(3, 3, 3, 3),
        window_size=4,
        feature_size=12,
        norm_name="batch",
    ).eval()
    x = torch.randn(2, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    assert nn.Upsample not in {type(m) for m in ours.modules()}
    assert sum(isinstance(m, nn.ConvTranspose3d) for m in ours.modules()) == 5  # the 5 decoder levels


def test_divisor_is_the_params_one() -> None:
    assert swinunetr.SWIN_DIVISOR == SWINUNETR_DIVISOR == 2**5


def test_input_sizes_must_be_multiples_of_32() -> None:
    model = SwinUNETR(4, 3, **TINY)
    with pytest.raises(
        ValueError, match=r"\(48, 64, 64\) must be divisible by 32 \(patch embedding 2 x 4 patch mergings\)"
    ):
        model(torch.zeros(1, 4, 48, 64, 64))
    with pytest.raises(ValueError, match="input has 1 channels, the model expects 4"):
        model(torch.zeros(1, 1, 32, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"feature_size": 18}, "feature_size"),
        ({"feature_size": 0}, "feature_size"),
        ({"depths": (2, 2, 2)}, "depths"),
        ({"depths": (2, 0, 2, 2)}, "depths"),
        ({"num_heads": (3, 3, 3)}, "num_heads"),
        (
            {"num_heads": (5, 3, 3, 3)},
            r"num_heads\[0\] \(5\) must divide the stage width feature_size \* 2\*\*0 = 12",
        ),
        ({"window_size": 0}, "window_size"),
        ({"norm": "group"}, "norm"),
        ({"dropout": 1.0}, "dropout"),
        ({"attn_dropout": -0.1}, "attn_dropout"),
        ({"drop_path": 2}, "drop_path"),
        ({"use_v2": "no"}, "use_v2"),
    ],
)
def test_illegal_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SwinUNETR(4, 3, **{**TINY, **kwargs})


def test_missing_einops_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "einops" else find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="swinunetr needs the einops package"):
        SwinUNETR(4, 3, **TINY)
