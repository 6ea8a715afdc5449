"""best/ and last/ of a run (``convnlp/checkpoint.py`` writes a checkpoint directory)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from convnlp import checkpoint, distributed, resume
from convnlp.resume import TrainState


class Checkpoints:
    """Writes best/ and last/ of one run: the scored weights (the moving average with
    trainer.ema), the config, vocabularies and metrics; last/ adds the training state. With
    several processes rank 0 writes; saving last/ is a step every rank takes (each rank's random
    state goes into it)."""

    def __init__(
        self,
        run_dir: Path,
        config: dict,
        tokenizer,
        labels: list[str],
        revision: str | None,
        model: nn.Module,
        ema,
        optimizer,
        scaler,
        device: torch.device,
        sync: distributed.Sync,
    ):
        self.run_dir, self.config, self.tokenizer, self.labels = run_dir, config, tokenizer, labels
        self.revision = revision
        self.model, self.ema, self.optimizer, self.scaler, self.device = model, ema, optimizer, scaler, device
        self.sync = sync
        self.scored = model if ema is None else ema.module
        self.last_saved = time.perf_counter()

    def save(self, name: str, state: TrainState, metrics: dict) -> None:
        training_state = None
        if name == "last":
            rank_rngs = self.sync.gather(resume.rng_state(self.device)) if self.sync.world.distributed else None
            self.last_saved = time.perf_counter()
            if not self.sync.world.main:
                return
            training_state = state.saved(self.model, self.ema, self.optimizer, self.scaler, self.device)
            if rank_rngs is not None:
                training_state["rank_rngs"] = rank_rngs
        meta = {**metrics, "step": state.step, "epoch": state.epoch, "finished": False, "git_revision": self.revision}
        checkpoint.save(
            self.run_dir / name, self.scored, self.config, self.tokenizer, self.labels, meta, training_state
        )

    def due(self, step: int, every: int, minutes: float) -> bool:
        """Whether last/ is due between evaluations: every ``every`` steps, or ``minutes`` after the last save."""
        return bool(
            (every and step % every == 0) or (minutes and time.perf_counter() - self.last_saved >= 60 * minutes)
        )
