"""`convnlp export`: a checkpoint as an ONNX graph, float32 or int8, to serve (conf/export.yaml)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, option


@dataclass
class ExportCommand:
    checkpoint: Any = option("???", help="a checkpoint or a run directory (its best/)")
    format: str = option("onnx", help="onnx")
    output: Optional[str] = option(None, help="default: <run>/onnx (or onnx-int8)")
    quantize: Optional[str] = option(None, help="int8: static int8, calibrated")
    calibration: Optional[str] = option(None, help="a file of inputs to calibrate on (default: the training data)")
    calibration_examples: int = 1000
    encoding: str = "utf-8"


@COMMANDS.register(
    ExportCommand,
    name="export",
    order=3,
    summary="to ONNX, to serve",
    examples=("convnlp export checkpoint=outputs/train/<run> format=onnx",),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.export import export_command

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    export_command(cfg)
