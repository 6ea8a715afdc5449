"""What a run shows while it trains: a progress bar on a terminal, else a log line every few
minutes, and TensorBoard's training curves."""

from __future__ import annotations

import logging
import sys
import time

import torch
from tqdm import tqdm

from convnlp.resume import TrainState
from convnlp.train.budget import Limits

log = logging.getLogger("convnlp.train")


class Progress:
    """The run's progress: a bar over all its steps on a terminal; without one (a log file, a
    scheduler's output) a log line every ``minutes``: step, epoch, loss, speed, time left."""

    def __init__(self, limits: Limits, steps_per_epoch: int, state: TrainState, enabled: bool, minutes: float):
        self.limits, self.steps_per_epoch, self.minutes = limits, steps_per_epoch, minutes
        total = limits.planned or None
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=state.step, desc=self._epoch(state), leave=False, dynamic_ncols=True)
        self.last_line = time.perf_counter()
        self.start_step, self.start_time = state.step, time.perf_counter()

    def _epoch(self, state: TrainState) -> str:
        limits = self.limits  # the epoch limit, unless min_steps outlasts it
        shown = limits.epochs and not limits.min_steps_outlast_epochs
        return f"epoch {state.epoch + 1}" + (f"/{limits.epochs}" if shown else "")

    def _eta(self, state: TrainState) -> str:
        rate = (state.step - self.start_step) / max(time.perf_counter() - self.start_time, 1e-9)
        left = []
        if self.limits.planned and rate > 0:
            left.append((self.limits.planned - state.step) / rate)
        if self.limits.seconds:
            left.append(self.limits.seconds - state.elapsed())
        return f", about {max(min(left), 0) / 60:.1f} min left" if left else ""

    def due(self) -> bool:
        """Whether a log line is due (no bar, and ``minutes`` since the last one)."""
        return self.bar is None and bool(self.minutes) and time.perf_counter() - self.last_line >= 60 * self.minutes

    def update(self, state: TrainState, loss: float | None, symbols_per_s: float | None) -> None:
        if self.bar is not None:
            self.bar.update(state.step - self.bar.n)
            self.bar.set_description(self._epoch(state), refresh=False)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{symbols_per_s:.0f}")
        elif loss is not None and self.due():
            self.last_line = time.perf_counter()
            total = f"/{self.limits.planned}" if self.limits.planned else ""
            log.info(
                "step %d%s, %s (%.0f%%): loss %.4f, %.0f symbols/s%s",
                state.step,
                total,
                self._epoch(state),
                100 * state.batch_in_epoch / max(self.steps_per_epoch, 1),
                loss,
                symbols_per_s,
                self._eta(state),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def log_step(
    writer,
    step: int,
    loss: float,
    lr: float,
    grad_norm: float,
    tokens_per_s: float,
    layer_weights: list[tuple[str, torch.Tensor]],
) -> None:
    """A point of TensorBoard's training curves, and the gradient norm of every layer."""
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/lr", lr, step)
    writer.add_scalar("train/grad_norm", grad_norm, step)
    writer.add_scalar("train/tokens_per_s", tokens_per_s, step)
    for name, parameter in layer_weights:  # gradient flow, layer by layer
        if parameter.grad is not None:
            writer.add_scalar(f"grad_norm/{name}", parameter.grad.norm().item(), step)


class NullWriter:
    """The TensorBoard writer of ranks other than 0: writes nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def format_metrics(metrics: dict) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in metrics.items()
        if isinstance(v, (int, float))
    )
