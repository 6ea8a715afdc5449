"""`convnlp train`: train a model (conf/train.yaml and its groups)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, Check, option, positive, zero_or_more


@dataclass
class AutoConfig:
    """``auto=true`` (the command line's short form of ``auto.enabled=true``): a race between the
    task's recipes (conf/recipes/<task>/) on the data, within trainer.max_minutes (convnlp.auto)."""

    enabled: bool = option(False, help="race the task's recipes instead of training one model")
    recipes: Optional[list[str]] = option(None, help="the recipes to race (null: all of conf/recipes/<task>/)")
    minutes: float = option(30.0, positive(), help="the race's wall time when trainer.max_minutes is not given")
    parallel: int = option(0, zero_or_more(), help="candidates side by side (0: as many as the free cores allow)")
    min_minutes: float = option(0.5, positive(), help="the least training a candidate gets in the first round")
    holdout: float = option(
        0.1, Check(lambda v: 0 < v < 1, "must be in (0, 1)"), help="data without validation: the share held out"
    )


@dataclass
class TrainCommand:
    seed: int = option(0, help="seeds python, torch and the batch order")
    auto: AutoConfig = field(default_factory=AutoConfig)


@COMMANDS.register(
    TrainCommand,
    name="train",
    order=0,
    run_dir=True,
    summary="train a model",
    groups=("task", "encoder", "decoder", "data", "tokenizer", "trainer", "optim"),
    examples=(
        "convnlp train task=tagging encoder=dilated data=ud_ewt",
        "convnlp train task=classification data=sst2 tokenizer=word",
        "convnlp train task=generation decoder=convs2s",
        "convnlp train task=autoencoder data=text data.train=unlabeled.txt tokenizer=word",
        "convnlp train experiment=sst2_word (a published figure: conf/experiment/)",
        "convnlp train task=classification data=csv data.train=my.csv auto=true trainer.max_minutes=30",
        "convnlp train -m experiment=mr_word 'data.fold=range(10)'",
    ),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    """Train; the value a sweeper (Optuna) optimizes: the best validation score."""
    # imported when it runs: `convnlp --help` does not load torch
    if cfg.auto.enabled:
        from convnlp.auto import race

        results = race(cfg, run_dir, given)
    else:
        from convnlp.train import train

        results = train(cfg, run_dir, given)
    return (results.get("validation") or {}).get(results.get("selected_by"))
