"""`convnlp average`: the mean weights of checkpoints of one model (conf/average.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, option


@dataclass
class AverageCommand:
    checkpoints: Any = option("???", help="a list of checkpoint directories of one model")
    output: str = option("???", help="the directory of the averaged checkpoint")


@COMMANDS.register(
    AverageCommand,
    name="average",
    order=5,
    summary="mean weights of checkpoints of one model",
    examples=("convnlp average checkpoints=[<run>/best,<resumed run>/best] output=<dir>",),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.average import average_command

    average_command(cfg)
