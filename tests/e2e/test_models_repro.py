"""Determinism of the other architectures through DVC: `dvc repro -f train` twice gives the same weights, for
the Attention UNet (this project's UNet family) and MONAI's SegResNet (a wrapped library network)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
import yaml

pytestmark = pytest.mark.e2e


def weights(project) -> dict[str, str]:
    files = ("best.pt", "last.pt")
    return {n: hashlib.sha256((project / "models" / "fold0" / n).read_bytes()).hexdigest() for n in files}


@pytest.mark.parametrize("model", ["attention_unet", "segresnet"])
def test_forced_training_is_byte_identical(model, tiny_repro, tmp_path, source_run):
    project = tmp_path / "p"
    shutil.copytree(tiny_repro, project, symlinks=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"] = model
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = source_run(project)
    out = run("dvc", "repro", "train@fold0").stdout
    assert "Running stage 'train@fold0'" in out and "Stage 'preprocess' didn't change" in out, out
    first = weights(project)
    assert json.loads((project / "models/fold0/run.json").read_text())["model"] == model
    checkpoint = torch.load(project / "models/fold0/best.pt", weights_only=True)
    assert checkpoint["meta"]["model"] == model
    run("dvc", "repro", "-f", "train@fold0")
    assert weights(project) == first
    assert weights(project) != weights(tiny_repro)  # another network, not the cached UNet
