"""When training stops, and what it selects its best checkpoint by: the budget (steps, epochs,
minutes, patience) and ``trainer.select``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig

from convnlp.config import LOWER_IS_BETTER
from convnlp.errors import UserError
from convnlp.resume import TrainState
from convnlp.tasks.tagging import is_bio

log = logging.getLogger("convnlp.train")

DEFAULT_EPOCHS = 20  # trainer.max_epochs=null without a step or time budget


@dataclass
class Limits:
    """When training stops: ``trainer.max_steps`` / ``max_epochs`` / ``max_minutes`` (the
    budget of all runs of one training, resumed ones included), whichever comes first, and
    ``patience``; neither the epoch limit nor patience stops a run before ``min_steps``.
    ``planned``: the steps the run is expected to take (the learning-rate schedule's length;
    0 when only time bounds it)."""

    steps: int
    epochs: int
    seconds: float
    patience: int
    min_steps: int
    planned: int
    epoch_steps: int = 0  # the steps of max_epochs epochs
    metric: str = "accuracy"

    @classmethod
    def of(cls, tc, steps_per_epoch: int, metric: str) -> Limits:
        epochs = (
            tc.max_epochs if tc.max_epochs is not None else (0 if tc.max_steps or tc.max_minutes else DEFAULT_EPOCHS)
        )
        planned = [n for n in (tc.max_steps, max(epochs * steps_per_epoch, tc.min_steps) if epochs else 0) if n]
        return cls(
            steps=tc.max_steps,
            epochs=epochs,
            seconds=60.0 * tc.max_minutes,
            patience=tc.patience,
            min_steps=tc.min_steps,
            planned=min(planned) if planned else 0,
            epoch_steps=epochs * steps_per_epoch,
            metric=metric,
        )

    @property
    def min_steps_outlast_epochs(self) -> bool:
        """Whether the epoch limit comes before ``min_steps`` (a small training set), so it is not
        what ends the run."""
        return bool(self.epochs) and self.epoch_steps < self.min_steps

    def describe(self) -> str:
        parts = (
            [f"{self.steps} steps (max_steps)"] * bool(self.steps)
            + [f"{self.epochs} epochs (max_epochs)"] * bool(self.epochs)
            + [f"{self.seconds / 60:g} min (max_minutes)"] * bool(self.seconds)
        )
        text = " or ".join(parts) + ", whichever comes first" * (len(parts) > 1)
        if self.min_steps_outlast_epochs and (not self.steps or self.steps > self.epoch_steps):
            text += f", and at least {min(self.min_steps, self.steps or self.min_steps)} steps (min_steps)"
        return text

    def reached(self, state: TrainState) -> str | None:
        if self.steps and state.step >= self.steps:
            return f"trainer.max_steps={self.steps} reached"
        if self.seconds and state.elapsed() >= self.seconds:
            return f"trainer.max_minutes={self.seconds / 60:g} reached"
        if state.step < self.min_steps:
            return None
        if self.epochs and state.epoch >= self.epochs:
            if self.min_steps_outlast_epochs:
                return (
                    f"trainer.min_steps={self.min_steps} reached ({state.epoch} epochs: a training set this "
                    f"small gets more than max_epochs={self.epochs})"
                )
            return f"trainer.max_epochs={self.epochs} reached"
        if self.patience and state.bad_evals >= self.patience:
            return (
                f"trainer.patience={self.patience}: no better validation {self.metric} in {self.patience} evaluations"
            )
        return None


def warmup_steps(setting: int, limits: Limits) -> int:
    """``optim.warmup_steps``, cut to a tenth of the planned steps when it is not below them."""
    if limits.planned and setting >= limits.planned:
        log.warning(
            "optim.warmup_steps=%d is not below the %d training steps; warming up for %d",
            setting,
            limits.planned,
            limits.planned // 10,
        )
        return limits.planned // 10
    return setting


def selection_metric(setting: str, task_name: str, labels: list[str]) -> str:
    """``trainer.select``: auto is entity F1 for BIO tags, an autoencoder's token accuracy, else accuracy."""
    if setting == "auto":
        if task_name == "autoencoder":
            return "token_accuracy"
        return "f1" if task_name == "tagging" and is_bio(labels) else "accuracy"
    if setting in ("f1", "precision", "recall") and task_name == "tagging" and not is_bio(labels):
        raise UserError(
            f"trainer.select={setting} needs BIO entity tags (O, B-X, I-X, ...); the training tags "
            f"include {next(t for t in labels if not is_bio([t]))!r}"
        )
    return setting


def selection_score(metrics: dict, metric: str) -> float:
    """The validation score that picks best/ and drives patience: higher is better."""
    value = metrics.get(metric)
    if not isinstance(value, (int, float)):
        numbers = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)) and k != "examples")
        raise UserError(f"trainer.select={metric}: the validation metrics have no {metric!r}; they have: {numbers}")
    value = float(value)  # seqeval's are numpy floats, which a weights-only training state cannot hold
    return -value if metric in LOWER_IS_BETTER else value


def shown_score(score: float, metric: str) -> float:
    """A selection score as the metric reads (an error rate positive again)."""
    return -score if metric in LOWER_IS_BETTER else score


def given_budget(cfg: DictConfig, given: set[str]) -> DictConfig:
    """The budget given on the command line (``given``: the keys it sets) is the budget: with
    ``trainer.max_steps`` or ``max_minutes`` the config files' epoch limit (the default, an
    experiment's) is not applied unless ``trainer.max_epochs`` is given too, and with any of the
    three ``trainer.min_steps`` is not applied unless it is given too."""
    tc, budget = cfg.trainer, {"trainer.max_steps", "trainer.max_minutes", "trainer.max_epochs"} & given
    steps_or_time = budget - {"trainer.max_epochs"} and (tc.max_steps or tc.max_minutes)
    lift_epochs = steps_or_time and "trainer.max_epochs" not in budget and tc.max_epochs is not None
    lift_min = budget and "trainer.min_steps" not in given and tc.min_steps
    if not (lift_epochs or lift_min):
        return cfg
    cfg = cfg.copy()
    if lift_epochs:
        log.info(
            "trainer.max_steps / max_minutes given: no epoch limit (the config's max_epochs=%d is not "
            "applied; give trainer.max_epochs too to keep one)",
            tc.max_epochs,
        )
        cfg.trainer.max_epochs = None
    if lift_min:
        cfg.trainer.min_steps = 0
    return cfg
