"""Data-parallel training: one model trained by several processes with PyTorch's
``DistributedDataParallel``, started by ``torchrun`` (one node or many) or as the tasks of one
submitit job (``hydra/launcher=slurm`` with ``tasks_per_node``).

- The process group: NCCL on CUDA, gloo on the CPU (``trainer.ddp_backend``); its collectives
  give up after ``trainer.ddp_timeout_minutes``. Each process trains on ``cuda:LOCAL_RANK``.
- The data: every process reads the whole training set and cuts the same token batches (same
  seed); step k of an epoch takes the batches ``k*G .. (k+1)*G - 1`` (G = processes x
  ``trainer.accumulate``), rank r the ``accumulate`` of them from ``r*accumulate`` on
  (``shard``). An epoch whose batches do not fill its last step repeats its first batches, so
  every process takes the same number of steps and none waits at the end of an epoch.
- The global batch is ``trainer.batch_tokens`` x processes x ``trainer.accumulate``; the
  learning rate is not scaled with it (give ``optim.lr``). Gradients are averaged over the
  global batch's micro-batches, as one process with ``trainer.accumulate=G`` averages them: both
  take the same steps on the same batches (``tests/test_distributed.py`` compares the weights).
- Rank 0 decides and writes: it evaluates (the others wait for its verdict), it alone writes
  logs, TensorBoard, checkpoints and ``metrics.json``; the time-based decisions (max_minutes,
  checkpoint_minutes) are its clock's, sent to every rank each step (``Sync``).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import sys
from dataclasses import dataclass

from convnlp.errors import UserError

log = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the processes that train one model (one process: rank 0 of 1,
    no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


SINGLE = World()


def launched() -> bool:
    """Whether this process is one of several started to train one model: by torchrun (which
    sets RANK and WORLD_SIZE; also for one process), or as a task of a submitit job with several."""
    if any(name in os.environ for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")):
        return True
    return _submitit_tasks() > 1


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def rank_in_environment() -> int:
    """This process's rank as the launcher set it (torchrun's RANK, a submitit task's global rank;
    0 if none), before the process group exists."""
    names = {"slurm": "SLURM_PROCID", "local": "SUBMITIT_LOCAL_GLOBALID"}
    name = "RANK" if "RANK" in os.environ else names.get(os.environ.get("SUBMITIT_EXECUTOR", ""), "RANK")
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        return 0


def _submitit_tasks() -> int:
    executor = os.environ.get("SUBMITIT_EXECUTOR")
    if executor == "slurm":
        return int(os.environ.get("SLURM_NTASKS", "1"))
    if executor == "local":
        return int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1"))
    return 1


def _environment() -> tuple[int, int, int]:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (exported from a submitit job's
    environment first), checked."""
    if not any(name in os.environ for name in ("RANK", "WORLD_SIZE")) and _submitit_tasks() > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        given = ", ".join(f"{n}={os.environ[n]}" for n in TORCHRUN_VARIABLES if n in os.environ)
        raise UserError(
            f"data-parallel training: {given} is set but {', '.join(missing)} is not; start it with "
            "torchrun (torchrun --nproc_per_node=N -m convnlp train ...), which sets them all"
        )
    try:
        rank, size, local = (int(os.environ[n]) for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise UserError(
            "data-parallel training: RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers, not "
            + ", ".join(f"{n}={os.environ[n]!r}" for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        ) from None
    if not (size >= 1 and 0 <= rank < size and 0 <= local <= rank):
        raise UserError(f"data-parallel training: RANK={rank}, LOCAL_RANK={local} do not fit WORLD_SIZE={size}")
    return rank, size, local


_world = SINGLE


def world() -> World:
    return _world


def start(device_setting: str, backend_setting: str, timeout_minutes: float) -> World:
    """Join the process group (once per process; one process without torchrun: ``SINGLE``)."""
    global _world
    if _world.distributed or not launched():
        return _world
    import torch
    import torch.distributed as dist

    rank, size, local = _environment()
    cuda = torch.cuda.is_available() and device_setting in ("auto", "cuda")
    if device_setting == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is available")
    backend = backend_setting if backend_setting != "auto" else ("nccl" if cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise UserError(f"trainer.ddp_backend={backend_setting}: choose auto, nccl or gloo")
    if backend == "nccl" and not cuda:
        raise UserError(
            "trainer.ddp_backend=nccl needs CUDA devices, and this run trains on the CPU "
            f"(trainer.device={device_setting}{', no CUDA device here' if not torch.cuda.is_available() else ''}); "
            "use trainer.ddp_backend=gloo (or auto)"
        )
    if cuda:
        if local >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK={local}, but this machine has {torch.cuda.device_count()} CUDA device(s): "
                "give torchrun --nproc_per_node at most that many"
            )
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(minutes=timeout_minutes)
    try:
        dist.init_process_group(backend=backend, timeout=timeout)
    except Exception as e:  # a rendezvous that fails or times out
        raise UserError(
            f"data-parallel training: cannot join the process group of rank {rank}/{size} "
            f"({backend}): {str(e).strip().splitlines()[0]}"
        ) from None
    _world = World(rank=rank, size=size, local_rank=local, backend=backend)
    return _world


def seed_rank(seed: int, rank: int, step: int = 0) -> None:
    """This rank's own random numbers for dropout (torch's and Python's): ``seed`` moved by the
    rank, and by the step a resumed run starts at."""
    import random

    import torch

    value = seed + 7919 * rank + step
    torch.manual_seed(value)
    random.seed(value)


def stop() -> None:
    global _world
    if _world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _world = SINGLE


def device(world_: World, setting: str):
    import torch

    from convnlp.device import pick_device

    picked = pick_device(setting)
    if world_.distributed and picked.type == "cuda":
        return torch.device("cuda", world_.local_rank)
    return picked


def shard(batches: list[list[int]], world_: World, accumulate: int) -> list[list[list[int]]]:
    """This rank's micro-batches of each step of an epoch (see the module's docstring)."""
    group = world_.size * accumulate
    steps = math.ceil(len(batches) / group)
    padded = [batches[i % len(batches)] for i in range(steps * group)] if batches else []
    start = world_.rank * accumulate
    return [padded[s * group + start : s * group + start + accumulate] for s in range(steps)]


def steps_per_epoch(n_batches: int, world_: World, accumulate: int) -> int:
    return math.ceil(n_batches / (world_.size * accumulate))


class Sync:
    """The collectives of a data-parallel training loop; with one process each is the identity."""

    def __init__(self, world_: World, device_):
        self.world, self.device = world_, device_

    def step(self, decisions: list[float], counts: list[float], loss) -> tuple[list[float], list[float], float]:
        """After each step: rank 0's ``decisions`` (flags decided by its clock), the ``counts``
        summed over ranks, and the loss averaged over ranks."""
        if not self.world.distributed:
            return decisions, counts, float(loss)
        import torch
        import torch.distributed as dist

        mine = decisions if self.world.main else [0.0] * len(decisions)
        values = torch.tensor(mine + counts, dtype=torch.float64, device=self.device)
        values = torch.cat([values, loss.detach().to(torch.float64).reshape(1)])
        dist.all_reduce(values)
        values = values.tolist()
        n = len(decisions)
        return values[:n], values[n:-1], values[-1] / self.world.size

    def from_main(self, value):
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.world.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        """Every rank's ``value``, in rank order (on every rank)."""
        if not self.world.distributed:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world.size
        dist.all_gather_object(values, value)
        return values


def lost_peer(error: BaseException) -> str | None:
    """The reason, in a few words, when ``error`` is a collective failing because another rank
    died (gloo: connection reset or closed; NCCL: remote error), else None."""
    if not _world.distributed or not isinstance(error, RuntimeError):
        return None
    import torch

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    dist_error = getattr(torch.distributed, "DistError", ())
    if not (isinstance(error, dist_error) or any(k in text for k in ("gloo", "NCCL", "Connection", "ProcessGroup"))):
        return None
    text = text.split("] ", 1)[-1]  # gloo's messages start with [its source file:line]
    return f"{_world.backend}: " + text.split(". ", 1)[0][:160]


def quiet_other_ranks(world_: World) -> None:
    """Ranks other than 0 write no log file and log errors only (rank 0 says the rest), tagged
    with their rank."""
    if world_.main:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[rank {world_.rank}] %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
