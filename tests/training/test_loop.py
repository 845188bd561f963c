import contextlib
import json

import torch

from bratseg.config import deep_merge, parse_params
from bratseg.labels import BRATS_2021
from bratseg.models.checkpoint import load_checkpoint
from bratseg.models.registry import build_model
from bratseg.pipeline.train import make_validator
from bratseg.training.curves import write_curves
from bratseg.training.loop import train

TINY = {
    "unet": {"depth": 2, "base_width": 4, "max_width": 8},
    "train": {
        "patch_size": [16, 16, 16],
        "epochs": 3,
        "iterations_per_epoch": 2,
        "val_every": 2,
        "num_threads": 1,
    },
}


def tiny_params(raw_params, schema, **extra):
    return parse_params(deep_merge(deep_merge(raw_params, TINY), extra), schema)


def run(params, cases, out, resume=None, on_epoch=None):
    cpu = torch.device("cpu")
    return train(
        params,
        cases[:2],
        out,
        meta={"model": "unet"},
        device=cpu,
        fingerprint="fp",
        validate=make_validator(cases[2:], params, cpu, BRATS_2021),
        resume=resume,
        on_epoch=on_epoch,
    )


def test_training_writes_checkpoints_and_is_deterministic(tmp_path, cached_cases, raw_params, schema):
    params = tiny_params(raw_params, schema)
    a = run(params, cached_cases, tmp_path / "a")
    b = run(params, cached_cases, tmp_path / "b")
    for name in ("best.pt", "last.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert [r["epoch"] for r in a.history] == [1.0, 2.0, 3.0]
    validated = [r for r in a.history if "val_dice_mean" in r]
    assert [r["epoch"] for r in validated] == [2.0, 3.0]  # every val_every epochs, and the last one
    last = load_checkpoint(tmp_path / "a" / "last.pt")
    assert last["complete"] and last["epoch"] == 3 and last["fingerprint"] == "fp"
    assert "patches_per_s" not in json.loads(last["history"])[0]  # no timings in checkpoints
    best = load_checkpoint(tmp_path / "a" / "best.pt")
    assert best["epoch"] == a.best_epoch and best["meta"] == {"model": "unet"}
    assert b.best_score == a.best_score


class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_gives_the_uninterrupted_bytes(
    tmp_path, cached_cases, raw_params, schema
):
    params = tiny_params(raw_params, schema)
    run(params, cached_cases, tmp_path / "full")

    def stop_after_epoch_2(row):
        if row["epoch"] == 2:
            raise Interrupted

    out = tmp_path / "interrupted"
    with contextlib.suppress(Interrupted):
        run(params, cached_cases, out, on_epoch=stop_after_epoch_2)
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 2 and not state["complete"]
    run(params, cached_cases, out, resume=state)
    for name in ("best.pt", "last.pt"):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_curves_are_written_without_timings(tmp_path):
    history = [
        {"epoch": 1.0, "train_loss": 0.9, "lr": 0.01, "patches_per_s": 3.3},
        {
            "epoch": 2.0,
            "train_loss": 0.7,
            "lr": 0.005,
            "patches_per_s": 3.1,
            "val_dice_WT": 0.5,
            "val_dice_TC": 0.4,
            "val_dice_ET": 0.3,
            "val_dice_mean": 0.4,
        },
    ]
    loss, dice, png = write_curves(history, tmp_path / "a")
    assert loss.read_text().splitlines()[0] == "epoch,train_loss,lr"
    assert dice.read_text().splitlines() == [
        "epoch,val_dice_WT,val_dice_TC,val_dice_ET,val_dice_mean",
        "2,0.5,0.4,0.3,0.4",
    ]
    assert png.read_bytes()[:4] == b"\x89PNG"
    write_curves(history, tmp_path / "b")
    assert (tmp_path / "b" / "curves.png").read_bytes() == png.read_bytes()



def test_channels_last_trains_a_close_network_and_checkpoints_load_either_way(
    tmp_path, cached_cases, raw_params, schema
):
    """``train.channels_last`` changes the kernels, not the function: after the tiny run the two layouts'
    weights agree to rounding drift, and a channels-last checkpoint loads into a channels-first network."""
    weights = {}
    for layout in (True, False):
        params = tiny_params(raw_params, schema, train={"channels_last": layout})
        run(params, cached_cases, tmp_path / str(layout))
        weights[layout] = load_checkpoint(tmp_path / str(layout) / "last.pt")["model"]
    convs = [k for k, v in weights[True].items() if v.ndim == 5]
    assert convs and all(weights[True][k].is_contiguous(memory_format=torch.channels_last_3d) for k in convs)
    assert all(weights[False][k].is_contiguous() for k in convs)
    diff = torch.cat([(weights[True][k] - weights[False][k]).flatten() for k in weights[False]])
    norm = torch.cat([v.flatten() for v in weights[False].values()]).norm()
    assert 0 < float(diff.norm() / norm) < 2e-2
    model = build_model("unet", 4, 3, params.net)
    model.load_state_dict(weights[True])
    assert all(p.is_contiguous() for p in model.parameters())
