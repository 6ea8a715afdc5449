"""The training loop: batches of an epoch -> a step -> log -> evaluate and keep the best ->
checkpoint -> stop. What several processes need (rank 0's clock deciding for all, its
validation verdict) sits in ``RankZeroDecides``; with one process each of its calls returns what
it is given, so the loop reads as a single-process loop."""

from __future__ import annotations

import contextlib
import copy
import logging
import time

import torch
from omegaconf import DictConfig
from torch import nn

from convnlp import distributed
from convnlp.data.batching import token_batches
from convnlp.optimization import lr_factor
from convnlp.resume import TrainState
from convnlp.tasks import get_task, task_config
from convnlp.train.budget import Limits, selection_score, shown_score
from convnlp.train.checkpoints import Checkpoints
from convnlp.train.progress import Progress, log_step
from convnlp.train.setup import Data, Environment, Network

log = logging.getLogger("convnlp.train")


def train_step(
    model: nn.Module,
    batches: list[dict],
    task,
    task_cfg: dict,
    optimizer,
    scaler,
    amp_dtype,
    use_amp: bool,
    grad_clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the mean gradient of ``batches`` (``trainer.accumulate`` of them;
    mixed precision on CUDA; under DDP averaged over the ranks too, synchronized once, at the
    last): the mean loss and the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(batch["mask"].device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(batch)  # (B, W, num_labels) or (B, num_labels)
            loss, _ = task.loss(logits, batch, task_cfg)
            scaler.scale(loss / len(batches) if len(batches) > 1 else loss).backward()
        losses.append(loss.detach())
    loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    scaler.step(optimizer)
    scaler.update()
    return loss, grad_norm


class RankZeroDecides:
    """Under DDP rank 0's clock and validation decide for every rank (when to stop, log and
    checkpoint; the best score), so that all ranks take the same steps; in one process each
    call returns what it is given."""

    def __init__(self, env: Environment):
        self.world, self.sync = env.world, env.sync

    def start(self, stop: str | None, elapsed: float) -> tuple[str | None, float]:
        """Whether a resumed run near its time budget goes on, and the time trained so far."""
        return self.sync.from_main((stop, elapsed)) if self.world.distributed else (stop, elapsed)

    def step(
        self, stop: str | None, save_due: bool, log_due: bool, elapsed: float, symbols: int, loss: torch.Tensor
    ) -> tuple[str | None, bool, bool, float, float, float | None]:
        """After a step: rank 0's decisions and clock, the symbols of all ranks and their mean loss."""
        if not self.world.distributed:
            return stop, save_due, log_due, elapsed, symbols, None
        (stopped, save_due, log_due, elapsed), (symbols,), loss_value = self.sync.step(
            [float(stop is not None), float(save_due), float(log_due), elapsed], [float(symbols)], loss
        )
        stop = stop if self.world.main else ("rank 0 stopped" if stopped else None)
        return stop, bool(save_due), bool(log_due), elapsed, symbols, loss_value

    def validated(self, stop: str | None, state: TrainState) -> str | None:
        """After rank 0's validation: its verdict (stop, best score and step, patience) on every rank."""
        if self.world.distributed:
            stop, state.best_score, state.best_step, state.bad_evals = self.sync.from_main(
                (stop, state.best_score, state.best_step, state.bad_evals)
            )
        return stop


class Loop:
    """The steps of one run, from its state to a reason to stop."""

    def __init__(
        self,
        cfg: DictConfig,
        env: Environment,
        data: Data,
        net: Network,
        state: TrainState,
        limits: Limits,
        steps_per_epoch: int,
        warmup: int,
        checkpoints: Checkpoints,
        writer,
    ):
        self.cfg, self.tc, self.env, self.data, self.net, self.state = cfg, cfg.trainer, env, data, net, state
        self.limits, self.steps_per_epoch, self.warmup = limits, steps_per_epoch, warmup
        self.checkpoints, self.writer = checkpoints, writer
        self.task, self.task_cfg = get_task(cfg.task.name), task_config(checkpoints.config)
        self.decides = RankZeroDecides(env)
        self.last_metrics: dict = {}
        self.window_symbols, self.trained_symbols = 0, 0

    def run(self) -> str:
        """Train until a limit is reached (a run resumed after it had stopped, killed in its final
        evaluation, stops again at once); the reason."""
        state, tc, world = self.state, self.tc, self.env.world
        self.env.threads.start()
        self.start = self.window_start = state.started = time.perf_counter()  # this run's time counts from here
        stop, self.elapsed = self.decides.start(self.limits.reached(state), state.elapsed())
        self.progress = Progress(
            self.limits, self.steps_per_epoch, state, tc.progress and world.main, tc.log_minutes if world.main else 0
        )
        while stop is None:
            batches = token_batches(
                self.data.lengths, tc.batch_tokens, shuffle=True, seed=self.cfg.seed * 1000 + state.epoch
            )
            steps = distributed.shard(batches, world, tc.accumulate)  # this rank's micro-batches of each step
            self.net.trained.train()
            end_of_epoch = False
            while stop is None and not end_of_epoch and state.batch_in_epoch < len(steps):
                stop, end_of_epoch = self.step(steps[state.batch_in_epoch], len(steps))
        self.progress.close()
        return stop

    def learning_rate(self) -> float:
        """The schedule's rate at this step: warmup, then decay over the planned steps or the time budget."""
        state, limits, warmup = self.state, self.limits, self.warmup
        seconds = self.elapsed if self.env.world.distributed else state.elapsed()  # one schedule for all ranks
        progress = max(
            (state.step - warmup) / max(limits.planned - warmup, 1) if limits.planned else 0.0,
            seconds / limits.seconds if limits.seconds else 0.0,
        )
        return self.cfg.optim.lr * lr_factor(state.step, progress, warmup, self.cfg.optim.schedule)

    def step(self, indices: list[list[int]], steps_in_epoch: int) -> tuple[str | None, bool]:
        """One optimizer step, then what is due after it (log, evaluation, checkpoint); the reason
        to stop, if any, and whether the epoch ended."""
        state, tc, env, net = self.state, self.tc, self.env, self.net
        env.threads.update()
        micro = [
            {k: v.to(env.device, non_blocking=True) for k, v in self.task.make_batch(self.data.encoded, i).items()}
            for i in indices
        ]
        lr = self.learning_rate()
        for group in net.optimizer.param_groups:
            group["lr"] = lr
        loss, grad_norm = train_step(
            net.trained,
            micro,
            self.task,
            self.task_cfg,
            net.optimizer,
            env.scaler,
            env.amp_dtype,
            env.use_amp,
            tc.grad_clip,
        )
        if net.ema is not None:
            net.ema.update_parameters(net.model)
        state.step += 1
        state.batch_in_epoch += 1
        shown = copy.copy(state)  # where the progress line says the run is: before an epoch's end counts
        end_of_epoch = state.batch_in_epoch == steps_in_epoch
        if end_of_epoch:  # counted before evaluating, so last/ resumes at the next epoch
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        stop = self.limits.reached(state)  # an epoch's end reaches the step limit as well
        stop, save_due, log_due, self.elapsed, symbols, loss_value = self.decides.step(
            stop,
            self.checkpoints.due(state.step, tc.checkpoint_every, tc.checkpoint_minutes),
            state.step % tc.log_every == 0 or state.step == 1 or self.progress.due(),
            state.elapsed(),
            sum(int(batch["mask"].sum()) for batch in micro),
            loss,
        )
        self.record(shown, symbols, loss, loss_value, log_due, lr, float(grad_norm))
        if (tc.eval_every and state.step % tc.eval_every == 0) or (not tc.eval_every and end_of_epoch) or stop:
            stop = self.validate(stop, state.epoch + state.batch_in_epoch / steps_in_epoch)
        elif save_due:
            self.checkpoints.save("last", state, self.last_metrics)
        return stop, end_of_epoch

    def record(
        self,
        shown: TrainState,
        symbols: float,
        loss: torch.Tensor,
        loss_value: float | None,
        log_due: bool,
        lr: float,
        grad_norm: float,
    ) -> None:
        """Counts the step's symbols; TensorBoard's curves and the progress bar or line."""
        self.window_symbols += symbols
        self.trained_symbols += symbols
        tokens_per_s = None
        if log_due:
            now = time.perf_counter()
            tokens_per_s = self.window_symbols / max(now - self.window_start, 1e-9)
            self.window_symbols, self.window_start = 0, now
            loss_value = loss.item() if loss_value is None else loss_value
            log_step(self.writer, self.state.step, loss_value, lr, grad_norm, tokens_per_s, self.net.layer_weights)
        self.progress.update(shown, loss_value if log_due else None, tokens_per_s)

    def validate(self, stop: str | None, epochs: float) -> str | None:
        """Rank 0 evaluates on the validation split, keeps best/ and counts patience; every rank
        then saves last/ (its random state goes into it)."""
        state, net, metric = self.state, self.net, self.net.metric
        metrics, validation = {}, self.data.validation
        if validation is not None and self.env.world.main:
            metrics = self.last_metrics = self.task.evaluate(
                self.checkpoints.scored,
                self.data.tokenizer,
                self.data.labels,
                validation,
                self.task_cfg,
                self.env.device,
                2 * self.tc.batch_tokens,
            )
            self.task.log_metrics(self.writer, "validation", metrics, state.step)
            score = selection_score(metrics, metric)
            improved = score > state.best_score
            if improved:
                state.best_score, state.best_step, state.bad_evals = score, state.step, 0
                self.checkpoints.save("best", state, metrics)
            else:
                state.bad_evals += 1
            log.info(
                "step %d epoch %.2f: validation %s %.4f%s (best %.4f at step %d), %.1f min",
                state.step,
                epochs,
                metric,
                metrics[metric],
                " *" if improved else "",
                shown_score(state.best_score, metric),
                state.best_step,
                state.elapsed() / 60,
            )
            stop = stop or self.limits.reached(state)
        if validation is not None:
            stop = self.decides.validated(stop, state)
        net.trained.train()
        self.checkpoints.save("last", state, metrics)
        return stop
