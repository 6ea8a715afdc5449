"""`convnlp train`: train a model (conf/train.yaml and its groups)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, option


@dataclass
class TrainCommand:
    seed: int = option(0, help="seeds python, torch and the batch order")


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
        "convnlp train experiment=sst2_word (a published figure: conf/experiment/)",
        "convnlp train -m experiment=mr_word 'data.fold=range(10)'",
    ),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    """Train; the value a sweeper (Optuna) optimizes: the best validation score."""
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.train import train

    results = train(cfg, run_dir, given)
    return (results.get("validation") or {}).get(results.get("selected_by"))
