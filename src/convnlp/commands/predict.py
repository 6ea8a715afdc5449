"""`convnlp predict`: label or generate for lines of text, JSON lines out (conf/predict.yaml)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.commands.eval import BATCH, BEAM, DEVICES, NBEST, RUNTIMES, THREADS
from convnlp.registry import COMMANDS, option, zero_or_more


@dataclass
class PredictCommand:
    checkpoint: Any = option("???", help="a checkpoint, a run directory (its best/), or a list: an ensemble")
    input: str = option("-", help="a file, or - for standard input")
    output: str = option("-", help="a file, or - for standard output")
    encoding: str = "utf-8"
    on_error: str = option("record", choices=("record", "stop"), help="a line that cannot be read")
    batch_sentences: int = option(1024, BATCH, help="lines labeled together at most")
    flush_ms: float = option(50.0, zero_or_more(), help="from a pipe: label what was read when input pauses this long")
    device: str = option("auto", choices=DEVICES)
    runtime: str = option("torch", choices=RUNTIMES)
    threads: int = option(0, THREADS)
    beam: Any = option(None, BEAM, help="generation with convs2s or lstm: the beam width (null: the checkpoint's)")
    nbest: int = option(0, NBEST, help="generation with convs2s or lstm: also the N best outputs of each source")


@COMMANDS.register(
    PredictCommand,
    name="predict",
    order=2,
    summary="label or generate",
    examples=(
        "convnlp predict checkpoint=<dir> < sentences.txt > predictions.jsonl",
        "convnlp predict checkpoint=<run>/onnx runtime=onnx (an exported model)",
    ),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.predict import predict_command

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    predict_command(cfg)
