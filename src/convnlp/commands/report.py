"""`convnlp report`: runs, sweeps or an Optuna study side by side, as one table (conf/report.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, option


@dataclass
class ReportCommand:
    runs: Any = option("???", help="run or sweep directories (plain arguments), or an Optuna study (.db)")
    sort: str = option("auto", help="a metric to sort by; auto: the validation metric runs selected by")


@COMMANDS.register(
    ReportCommand,
    name="report",
    order=6,
    run_dir=True,
    summary="runs side by side",
    examples=("convnlp report outputs/train-multirun/<sweep> [sort=test.accuracy]",),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    from convnlp.report import report_command

    report_command(cfg, run_dir)
