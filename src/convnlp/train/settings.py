"""The ``trainer`` group: every setting of the training recipe, with its default and its range
(``conf/trainer/default.yaml`` documents each one beside its value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from convnlp.registry import TRAINERS, Check, at_least, fraction, option, positive, zero_or_more


@dataclass
class TrainerConfig:
    name: str = "default"
    # the budget: whichever of max_epochs, max_steps and max_minutes comes first stops the run
    max_epochs: Optional[int] = option(None, at_least(1), help="null: 20, unless max_steps or max_minutes is set")
    max_steps: int = option(0, zero_or_more("no limit"))
    max_minutes: float = option(0.0, zero_or_more("no limit"))
    min_steps: int = option(500, zero_or_more(), help="neither max_epochs nor patience stops a run before this")
    batch_tokens: int = option(4000, at_least(1), help="input symbols per batch, padding included")
    eval_every: int = option(0, zero_or_more("every epoch"))
    checkpoint_minutes: float = option(1.0, zero_or_more("only at evaluations"))
    checkpoint_every: int = option(0, zero_or_more("no step schedule"))
    patience: int = option(5, zero_or_more("never stop early"))
    holdout: float = option(
        0.0, fraction(), help="data without a validation split: this seeded fraction of training becomes one"
    )
    select: str = option("auto", help="the validation metric that picks best/ (each task lists its own)")
    grad_clip: float = option(1.0, zero_or_more("no clipping"))
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    amp: bool = option(True, help="mixed precision on CUDA (bf16 where supported, else fp16)")
    threads: int = option(0, zero_or_more("the cores other processes leave free"))
    resume: Any = option(False, help="true: the newest interrupted run of this config; or a last/ directory")
    progress: bool = True
    log_minutes: float = option(1.0, zero_or_more("no log lines"))
    ema: float = option(0.0, Check(lambda v: 0 <= v < 1, "must be in [0, 1): 0 (off) or a decay such as 0.999"))
    init: Optional[str] = option(None, help="a checkpoint to start from (fine-tuning)")
    teacher: Any = option(None, help="generation: a checkpoint or an ensemble whose outputs replace the references")
    accumulate: int = option(1, at_least(1), help="batches per optimizer step (and per process)")
    log_every: int = option(50, at_least(1), help="TensorBoard's training curves: a point every N steps")
    ddp_backend: str = option("auto", Check(lambda v: v in ("auto", "nccl", "gloo"), "must be auto, nccl or gloo"))
    ddp_timeout_minutes: float = option(30.0, positive())


TRAINERS.add(TrainerConfig)
