import itertools

import pytest
import torch

from bratseg.training.optim import lr_factor


@pytest.mark.parametrize("schedule", ["poly", "cosine", "constant"])
def test_schedules_start_at_one(schedule):
    assert lr_factor(schedule, 0, 100) == pytest.approx(1.0)


def test_poly_and_cosine_end_at_zero_and_decrease():
    for schedule in ("poly", "cosine"):
        values = [lr_factor(schedule, s, 50) for s in range(51)]
        assert values[-1] == pytest.approx(0.0, abs=1e-12)
        assert all(a >= b for a, b in itertools.pairwise(values))
    assert lr_factor("poly", 25, 50) == pytest.approx(0.5**0.9)
    assert lr_factor("constant", 49, 50) == 1.0


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor("step", 0, 10)


def test_build_optimizer_choices(raw_params, schema):
    from bratseg.config import deep_merge, parse_params
    from bratseg.training.optim import build_optimizer, build_scheduler

    model = torch.nn.Linear(3, 2)
    for name, cls in (("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)):
        params = parse_params(deep_merge(raw_params, {"train": {"optimizer": name}}), schema)
        opt = build_optimizer(model, params.train)
        assert isinstance(opt, cls)
        sched = build_scheduler(opt, params.train)
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] < params.train.lr
