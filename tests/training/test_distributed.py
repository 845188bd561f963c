"""The pieces of multi-process training that run in one process: the ranks' shares of the sample stream, the
one-line errors, and the loss / gather arithmetic with the collectives simulated rank by rank."""

import subprocess
import sys
import time

import psutil
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from bratseg.config import deep_merge, parse_params
from bratseg.errors import ConfigError
from bratseg.training import distributed
from bratseg.training.distributed import SINGLE, World
from bratseg.training.losses import build_loss
from bratseg.training.sampler import PatchDataset, rank_indices

ENV = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}


# --- the sample stream --------------------------------------------------------------------------------------


def test_one_process_reads_the_stream_in_order():
    assert rank_indices(12, 4, 0, 1) == list(range(12))


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_share_each_global_batch_in_rank_order(world_size):
    n, batch = 24, 4
    shares = [rank_indices(n, batch, r, world_size) for r in range(world_size)]
    share = batch // world_size
    for step in range(n // batch):
        joined = [i for s in shares for i in s[step * share : (step + 1) * share]]
        assert joined == list(range(step * batch, (step + 1) * batch))
    assert sorted(i for s in shares for i in s) == list(range(n))


def test_the_global_batch_is_the_same_whatever_the_number_of_processes(cached_cases):
    ds = PatchDataset(
        cached_cases,
        patch_size=(8, 8, 8),
        samples_per_epoch=8,
        foreground_fraction=0.5,
        target="regions",
        seed=1,
    )
    ds.set_epoch(3)
    one = [x for x, _ in DataLoader(ds, batch_size=4, sampler=rank_indices(8, 4, 0, 1))]
    ranks = [[x for x, _ in DataLoader(ds, batch_size=2, sampler=rank_indices(8, 4, r, 2))] for r in range(2)]
    for step, batch in enumerate(one):
        assert torch.equal(batch, torch.cat([ranks[0][step], ranks[1][step]]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((12, 3, 0, 2), "global_batch 3 is not divisible by world_size 2"),
        ((10, 4, 0, 2), "n_samples 10 is not a whole number of global batches of 4"),
        ((12, 4, 2, 2), "rank must lie in [0, world_size)"),
    ],
)
def test_rank_indices_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        rank_indices(*args)


# --- parameters and the world -------------------------------------------------------------------------------


def test_the_global_batch_must_split_evenly(raw_params, schema):
    with pytest.raises(ConfigError) as err:
        parse_params(deep_merge(raw_params, {"train": {"batch_size": 3, "nproc": 2}}), schema)
    message = str(err.value)
    assert "train.batch_size: 3 is not divisible by train.nproc = 2" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"train\.nproc: 0 is less than the minimum of 1"):
        parse_params(deep_merge(raw_params, {"train": {"nproc": 0}}), schema)
    even = parse_params(deep_merge(raw_params, {"train": {"batch_size": 4, "nproc": 2}}), schema)
    assert even.train.nproc == 2


def test_world_from_the_launcher_environment():
    assert World.from_env({}) is None
    assert World.from_env(ENV) == World(rank=1, size=2, local_rank=1, local_size=2)
    with pytest.raises(ConfigError, match="incomplete or invalid"):
        World.from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="incomplete or invalid"):
        World.from_env({**ENV, "RANK": "one"})
    with pytest.raises(ValueError, match="world: need 0 <= rank < size"):
        World(rank=2, size=2, local_rank=0, local_size=2)
    assert SINGLE.main and not SINGLE.distributed and not World(1, 2, 1, 2).main


def test_impossible_worlds_are_one_line_config_errors(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    distributed.check_world(2, 2, 2, cpu, "instance")
    distributed.check_world(1, 1, 1, cpu, "batch")
    cases = [
        ((2, 4, 4, cpu, "instance"), "train.nproc: 2, but the launcher started 4 processes"),
        ((2, 2, 2, cpu, "batch"), "train.nproc: 2 CPU processes with batch norm"),
    ]
    monkeypatch.setattr(distributed.dist, "is_nccl_available", lambda: False)
    cases.append(((2, 2, 2, cuda, "instance"), "train.nproc: 2 on cuda: this torch lacks the nccl backend"))
    for args, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            distributed.check_world(*args)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(distributed.dist, "is_nccl_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"2 processes on this node but 1 CUDA device\(s\)"):
        distributed.check_world(2, 2, 2, cuda, "instance")
    distributed.check_world(4, 4, 1, cuda, "batch")  # four nodes of one GPU: SyncBatchNorm


def test_one_process_is_left_as_it_is():
    model = nn.Conv3d(1, 1, 1)
    cpu = torch.device("cpu")
    assert distributed.prepare_model(model, SINGLE, cpu) is model
    assert distributed.wrap_model(model, SINGLE, cpu) is model
    assert distributed.global_sums(SINGLE) is None
    assert distributed.init(SINGLE, cpu) is cpu and not torch.distributed.is_initialized()
    assert distributed.mean_over_ranks([1.0, 2.0], SINGLE) == [1.0, 2.0]
    assert distributed.broadcast("x", SINGLE) == "x"


# --- collectives simulated rank by rank ---------------------------------------------------------------------


class FakeAllReduce:
    """``dist.all_reduce`` of a world of two, simulated in one process: records each call's tensor (the
    recording pass), or adds the other rank's recorded tensor of the same call (the reducing pass)."""

    def __init__(self) -> None:
        self.recorded: dict[int, list[torch.Tensor]] = {0: [], 1: []}
        self.rank, self.reducing, self.calls = 0, False, 0

    def __call__(self, tensor: torch.Tensor) -> None:
        if self.reducing:
            tensor += self.recorded[1 - self.rank][self.calls]
            self.calls += 1
        else:
            self.recorded[self.rank].append(tensor.clone())


def gradients(model, loss_fn, x, y):
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


class Heads(nn.Module):
    """Logits at full, half and quarter resolution, as a deeply supervised network returns them (the loss
    weights the last one 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Conv3d(4, channels, 1) for _ in range(3))

    def forward(self, x):
        return [head(x[:, :, :: 2**i, :: 2**i, :: 2**i]) for i, head in enumerate(self.heads)]


@pytest.mark.parametrize("target", ["regions", "classes"])
def test_two_ranks_give_the_gradient_of_the_global_batch(monkeypatch, target):
    torch.manual_seed(0)
    model = Heads(3 if target == "regions" else 4)
    x = torch.randn(4, 4, 8, 8, 8)
    if target == "regions":
        y = (torch.rand(4, 3, 8, 8, 8) > 0.7).float()
    else:
        y = torch.randint(0, 4, (4, 8, 8, 8))
    full_loss, full_grads = gradients(model, build_loss(target, "dice_ce", 2.0, 3), x, y)

    fake = FakeAllReduce()
    monkeypatch.setattr(distributed.dist, "all_reduce", fake)
    halves = [(x[:2], y[:2]), (x[2:], y[2:])]
    for rank in (0, 1):  # each rank's local Dice sums, as it would send them
        fake.rank = rank
        loss_fn = build_loss(target, "dice_ce", 2.0, 3, distributed.global_sums(World(rank, 2, rank, 2)))
        gradients(model, loss_fn, *halves[rank])
    fake.reducing = True
    losses, grads = [], []
    for rank in (0, 1):
        fake.rank, fake.calls = rank, 0
        loss_fn = build_loss(target, "dice_ce", 2.0, 3, distributed.global_sums(World(rank, 2, rank, 2)))
        loss, g = gradients(model, loss_fn, *halves[rank])
        losses.append(loss)
        grads.append(g)
    assert fake.calls == 2  # one all-reduce per output of non-zero weight
    ddp = [(a + b) / 2 for a, b in zip(*grads, strict=True)]  # DDP averages the ranks' gradients
    for got, want in zip(ddp, full_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close((losses[0] + losses[1]) / 2, full_loss, rtol=1e-6, atol=1e-7)

    # without the reduction each rank optimises the Dice of its own half: another gradient
    naive = [gradients(model, build_loss(target, "dice_ce", 2.0, 3), *h)[1] for h in halves]
    mean = [(a + b) / 2 for a, b in zip(*naive, strict=True)]
    errors = [(m - w).abs().max() / w.abs().max() for m, w in zip(mean, full_grads, strict=True)]
    assert max(errors) > 1e-3


def test_sharded_items_are_gathered_in_their_original_order(monkeypatch):
    items = list(range(7))
    size = 3
    shards = [distributed.shard(items, World(r, size, r, size)) for r in range(size)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]

    def all_gather_object(parts, _mine):
        parts[:] = shards

    monkeypatch.setattr(distributed.dist, "all_gather_object", all_gather_object)
    assert distributed.gather_shards(shards[1], World(1, size, 1, size)) == items

    def gather_losses(parts, _mine):
        parts[:] = [[1.0, 4.0], [2.0, 5.0], [3.0, 9.0]]

    monkeypatch.setattr(distributed.dist, "all_gather_object", gather_losses)
    assert distributed.mean_over_ranks([2.0, 5.0], World(1, size, 1, size)) == [2.0, 6.0]


# --- a worker outlives no killed launcher -------------------------------------------------------------------

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import time
from bratseg.training.distributed import exit_with_parent
exit_with_parent(0.05)
print("watching", flush=True)
time.sleep(120)
'''], stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_worker_dies_with_its_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "watching"
        assert not gone(child)
        parent.kill()  # SIGKILL: nothing is forwarded
        parent.wait()
        deadline = time.monotonic() + 20
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child)
    finally:
        parent.kill()
