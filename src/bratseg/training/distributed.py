"""Training on several processes (``torch.distributed``, DDP): who does what, and why the result is the
one-process result of the same global batch, up to float rounding.

- **World.** The launcher (``torchrun``) starts ``train.nproc`` processes and tells each its rank in the
  environment; the entry point reads it (:meth:`World.from_env`) and passes a :class:`World` in. Backend:
  ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per process, ``cuda:<local rank>``).
- **Data.** ``train.batch_size`` is the *global* batch. Every rank builds the same seeded sample stream and
  takes its contiguous share of each global batch (:func:`bratseg.training.sampler.rank_indices`), so the
  ranks together see exactly the patches one process sees, whatever the world size.
- **Gradients.** DDP averages the gradients over the ranks. That is the gradient of the global batch for
  every term that is a mean over samples (the voxel-wise (B)CE / focal term), but not for nnU-Net's batch
  Dice, a ratio of sums over the whole batch: the mean of per-rank batch Dice losses is another loss. The
  Dice sums are therefore all-reduced in the forward pass (:func:`global_sums`) and every rank forms the
  Dice of the global batch; the gradient of its local sums is scaled by the world size so that DDP's average
  gives the one-process gradient (derivation in :func:`global_sums`).
- **Normalisation.** Instance norm (the default) is per sample and per channel: unaffected. Batch norm
  would see each rank's share of the batch only; it becomes ``SyncBatchNorm`` (statistics over the global
  batch) on CUDA. torch has no ``SyncBatchNorm`` on CPU, so batch norm with several CPU processes is refused
  (:func:`check_world`).
- **Dropout.** Every rank draws its masks from the same per-epoch seed for its own share of the batch: with
  dropout > 0 an N-process run is repeatable, but not the one-process run up to rounding.
- **Validation** is sharded by case (rank r scores cases r, r + N, ...) and the per-case scores are gathered
  in case order (:func:`gather_shards`): the same scores, in the same order, hence the same mean as one
  process, in 1/N of the time. Validation on rank 0 alone would leave the other GPUs idle and waiting in a
  collective for the whole sliding-window pass over every validation volume, which on BraTS-sized sets
  outlasts NCCL's default 10-minute timeout.
- **Checkpoints, MLflow, curves and console progress** come from rank 0 only. Every rank holds the same
  weights and optimiser state (identical all-reduced gradients, identical optimiser steps), so rank 0's
  ``last.pt`` is the state of all of them, and every rank loads it to resume.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from bratseg.errors import BratsegError, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
#: The environment variables torchrun sets for each process it starts.
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: ``rank`` of ``size``, ``local_rank`` of the
    ``local_size`` processes on this node (the GPU index on CUDA)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.size and 0 <= self.local_rank < self.local_size <= self.size):
            raise ValueError(
                f"world: need 0 <= rank < size and 0 <= local_rank < local_size <= size, got {self}"
            )

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, curves and MLflow records, and logs progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> World | None:
        """The world a launcher started this process in (torchrun's variables), ``None`` outside one.

        Raises:
            ConfigError: if the variables are only partly set or are not integers.
        """
        present = [k for k in LAUNCHER_ENV if k in env]
        if not present:
            return None
        try:
            values = [int(env[k]) for k in LAUNCHER_ENV]
            return cls(*values)
        except (KeyError, ValueError) as exc:
            shown = {k: env.get(k) for k in LAUNCHER_ENV}
            raise ConfigError(f"launcher environment {shown} is incomplete or invalid ({exc})") from None


SINGLE = World()


class LaunchError(BratsegError):
    """A training process started by :func:`launch` failed (its own message is printed above)."""


def backend(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def check_world(nproc: int, world_size: int, local_size: int, device: torch.device, norm: str) -> None:
    """Refuse settings several processes cannot run, each with a one-line error.

    Args:
        nproc: ``train.nproc``.
        world_size: processes the launcher started (``nproc`` before launching).
        local_size: of them on this node (one per GPU on CUDA).
        device: the resolved training device (``train.device``).
        norm: the normalisation of the selected architecture (``instance`` or ``batch``).

    Raises:
        ConfigError: naming the parameter.
    """
    if world_size != nproc:
        raise ConfigError(f"train.nproc: {nproc}, but the launcher started {world_size} processes")
    if nproc == 1:
        return
    if not dist.is_available():
        raise ConfigError(f"train.nproc: {nproc} needs torch.distributed, which this torch build lacks")
    name = backend(device)
    if not (dist.is_nccl_available() if name == "nccl" else dist.is_gloo_available()):
        raise ConfigError(f"train.nproc: {nproc} on {device.type}: this torch lacks the {name} backend")
    if device.type == "cuda" and local_size > torch.cuda.device_count():
        raise ConfigError(
            f"train.nproc: {local_size} processes on this node but {torch.cuda.device_count()} CUDA "
            "device(s): one process per GPU (or train.device: cpu)"
        )
    if norm == "batch" and device.type != "cuda":
        raise ConfigError(
            f"train.nproc: {nproc} CPU processes with batch norm: torch syncs batch statistics on GPUs only "
            "(SyncBatchNorm); use norm: instance, nproc: 1, or CUDA"
        )


def init(world: World, device: torch.device) -> torch.device:
    """Join the launcher's process group (its ``env://`` rendezvous); this rank's device.

    One process: nothing is initialised and ``device`` is returned as it is.
    """
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend(device), rank=world.rank, world_size=world.size)
    return device


def shutdown(world: World) -> None:
    """Leave the process group (after a barrier, so no rank exits while another still reduces)."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def prepare_model(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """Batch norm layers made ``SyncBatchNorm`` when several CUDA processes train (the same parameters and
    buffers, under the same names, so checkpoints do not change); ``model`` itself otherwise."""
    if world.distributed and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap_model(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``model`` in DDP when several processes train, ``model`` itself otherwise.

    ``model`` is the network *and its loss* (:class:`~bratseg.training.loop.ModelLoss`), so that DDP finds
    the parameters the loss does not use (the lowest deep-supervision head, of loss weight 0) from the loss,
    once (``static_graph``: every step uses the same parameters); their gradients stay unset (``None``) on
    every rank, as in one process, and the optimiser skips them alike.
    """
    if not world.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, static_graph=True)


def global_sums(world: World) -> Callable[[Tensor], Tensor] | None:
    """A function that turns this rank's Dice sums into the sums over the global batch; ``None`` for one
    process (the loss then runs exactly as it always has).

    ``reduce(local)`` returns the all-reduced sums ``S = Σ_r s_r`` as its value, and ``N · ∂/∂s_local`` as
    its gradient (``S.detach() + N · (s − s.detach())``). With ``L(S)`` the Dice loss of the global batch,
    rank r back-propagates ``N · ∂L/∂S · ∂s_r/∂θ``; DDP averages over the N ranks:
    ``(1/N) Σ_r N · ∂L/∂S · ∂s_r/∂θ = ∂L/∂S · ∂S/∂θ``, the one-process gradient. The all-reduce runs in the
    forward pass only, so the backward pass holds no collective of its own.
    """
    if not world.distributed:
        return None
    size = float(world.size)

    def reduce(local: Tensor) -> Tensor:
        total = local.detach().clone()
        dist.all_reduce(total)
        return total + size * (local - local.detach())

    return reduce


def mean_over_ranks(values: Sequence[float], world: World) -> list[float]:
    """Element-wise mean of ``values`` over the ranks (every rank passes as many), in rank order."""
    if not world.distributed:
        return list(values)
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, list(values))
    return [sum(column) / world.size for column in zip(*parts, strict=True)]


def shard(items: Sequence[T], world: World) -> list[T]:
    """This rank's items: ``items[rank::size]``."""
    return list(items[world.rank :: world.size])


def gather_shards(mine: Sequence[T], world: World) -> list[T]:
    """The inverse of :func:`shard`, on every rank: all items, in their original order."""
    if not world.distributed:
        return list(mine)
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, list(mine))
    longest = max(len(p) for p in parts)
    return [parts[r][i] for i in range(longest) for r in range(world.size) if i < len(parts[r])]


def broadcast(value: T, world: World) -> T:
    """Rank 0's ``value``, on every rank."""
    if not world.distributed:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    result: T = box[0]
    return result


def exit_with_parent(poll_s: float = 0.5) -> threading.Thread:
    """Kill this process (``SIGKILL``) as soon as its parent is gone.

    torchrun starts every worker in a session of its own and forwards ``SIGINT`` / ``SIGTERM`` to them; a
    launcher killed outright (``SIGKILL``, the out-of-memory killer) cannot, and its workers would train on,
    writing checkpoints, after the run was killed. A watching thread ends them like their launcher, so a
    killed distributed run is a killed run that resumes from ``last.pt``.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def launch(script: Path, argv: Sequence[str], nproc: int) -> None:
    """``torchrun --standalone --nproc_per_node nproc script *argv``, run in this process; returns when every
    rank has ended.

    ``--standalone``: one node, a rendezvous on localhost. Each rank runs ``script`` with the launcher's
    variables set (:meth:`World.from_env`); ``SIGINT`` / ``SIGTERM`` reach them through torchrun.

    Raises:
        LaunchError: one line naming the first rank that failed and its exit status.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    cmd = ["--standalone", "--nproc_per_node", str(nproc), str(script)]
    log.info("launching torchrun %s", " ".join([*cmd, *argv]))
    args = parse_args(cmd)
    # set apart from argparse, which would take a script option for an abbreviation of its own (--log)
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise LaunchError(
            f"training process {rank} of {nproc} exited with status {failure.exitcode}"
            f"{f' ({len(exc.failures)} failed)' if len(exc.failures) > 1 else ''}"
        ) from None
