"""The training recipe, top to bottom: setup -> data and vocabularies -> model and optimizer ->
loop (step, log, evaluate, checkpoint, stop) -> final evaluation of the best model.

Everything the run produces lands in its Hydra run directory:
    train.log, .hydra/            the log and the resolved config
    tensorboard/                  loss, learning rate, gradient norm, tokens/s, validation metrics
    best/, last/                  checkpoints (see checkpoint.py); last/ can be resumed
    metrics.json                  final validation and test metrics, timings, model size

The parts, in the order they run: ``setup.py`` (processes, data, model, state), ``loop.py``
(the steps; rank 0's decisions for all ranks in ``RankZeroDecides``), ``final.py``; the budget
and ``trainer.select`` in ``budget.py``, progress and TensorBoard in ``progress.py``, best/ and
last/ in ``checkpoints.py``, the ``trainer`` group's settings in ``settings.py``. Where a run
starts from (trainer.resume, trainer.init) and the state last/ saves live in ``resume.py``;
distillation's relabeling (trainer.teacher) is a step before training, ``distill.py``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from convnlp import checkpoint, distributed
from convnlp.train import setup
from convnlp.train.budget import given_budget
from convnlp.train.checkpoints import Checkpoints
from convnlp.train.final import Outcome, finish, write_metrics
from convnlp.train.loop import Loop
from convnlp.train.progress import NullWriter

log = logging.getLogger("convnlp.train")


def train(cfg: DictConfig, run_dir: Path, given: set[str] = frozenset()) -> dict:
    """Train the model ``cfg`` describes into ``run_dir``; its metrics (rank 0's; {} on the
    others). ``given``: the keys the command line set (its budget is the budget)."""
    t0 = time.perf_counter()
    tc = cfg.trainer  # torchrun's processes joined in the CLI; a submitit job's tasks join here
    distributed.quiet_other_ranks(distributed.start(tc.device, tc.ddp_backend, tc.ddp_timeout_minutes))
    cfg, run_dir = given_budget(cfg, given), Path(run_dir)
    config = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k in checkpoint.CONFIG_KEYS}

    env = setup.environment(cfg)  # seed, processes, threads, device, precision
    data = setup.data(cfg, config, env, run_dir)  # splits, vocabularies, encoded training set
    net = setup.network(cfg, config, env, data)  # model, DDP, moving average, optimizer
    steps_per_epoch, limits, warmup = setup.schedule(cfg, env, data, net)
    state = setup.state(cfg, env, data, net, run_dir)  # new, or where a resumed run's last/ left it
    world = env.world
    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard")) if world.main else NullWriter()
    checkpoints = Checkpoints(
        run_dir,
        config,
        data.tokenizer,
        data.labels,
        checkpoint.git_revision(),
        net.model,
        net.ema,
        net.optimizer,
        env.scaler,
        env.device,
        env.sync,
    )
    if world.distributed or tc.accumulate > 1:
        log.info(
            "global batch: %d x %d symbols (trainer.batch_tokens=%d x %d processes x trainer.accumulate=%d); "
            "optim.lr=%g as given (not scaled)",
            state.micro_batches,
            tc.batch_tokens,
            tc.batch_tokens,
            world.size,
            tc.accumulate,
            cfg.optim.lr,
        )
    log.info(
        "training: %d steps/epoch, up to %s on %s; best/ by validation %s; run directory %s",
        steps_per_epoch,
        limits.describe(),
        f"{world.size} processes ({world.backend}, {env.device.type})" if world.distributed else env.device,
        net.metric if data.validation is not None else "(no validation data)",
        run_dir,
    )

    loop = Loop(cfg, env, data, net, state, limits, steps_per_epoch, warmup, checkpoints, writer)
    stop_reason = loop.run()
    outcome = Outcome(
        stop_reason,
        state.elapsed(),
        loop.trained_symbols / max(time.perf_counter() - loop.start, 1e-9),
        steps_per_epoch,
    )
    log.info("stopped: %s after %d steps, %.1f min", stop_reason, state.step, outcome.train_seconds / 60)

    results = finish(cfg, env, data, net, state, checkpoints, writer, run_dir, outcome)
    if world.main:
        writer.close()
        write_metrics(run_dir, results, t0)
    env.threads.restore()
    return results
