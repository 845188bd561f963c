import pickle

import pytest
import torch

from bratseg.models.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Conv3d(2, 3, 3)
    state = {"model": model.state_dict(), "meta": {"model": "unet", "patch_size": [8, 8, 8]}, "epoch": 3}
    save_checkpoint(tmp_path / "a.pt", state)
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert loaded["meta"] == state["meta"] and loaded["epoch"] == 3
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    save_checkpoint(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - any serialisation error
        save_checkpoint(tmp_path / "c.pt", {"bad": lambda: 1})
    assert list(tmp_path.iterdir()) == []
