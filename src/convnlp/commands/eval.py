"""`convnlp eval`: metrics of a checkpoint (or an ensemble) on a data split (conf/eval.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, Check, option

DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("torch", "onnx")
BATCH = Check(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "must be a whole number, at least 1")
THREADS = Check(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "must be a whole number: 0 (the free cores) or more",
)

BEAM = Check(
    lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "must be a whole number, at least 1 (or null: the checkpoint's task.beam)",
)
NBEST = Check(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "must be a whole number, 0 (no n-best list) or more",
)


@dataclass
class EvalCommand:
    checkpoint: Any = option("???", help="a checkpoint, a run directory (its best/), or a list: an ensemble")
    batch_tokens: int = option(8000, BATCH)
    device: str = option("auto", choices=DEVICES)
    runtime: str = option("torch", choices=RUNTIMES, help="onnx: an exported directory, by ONNX Runtime")
    threads: int = option(0, THREADS)
    beam: Any = option(None, BEAM, help="generation with convs2s or lstm: the beam width (null: the checkpoint's)")


@COMMANDS.register(
    EvalCommand,
    name="eval",
    order=1,
    run_dir=True,
    summary="evaluate a checkpoint",
    groups=("data",),
    examples=(
        "convnlp eval checkpoint=outputs/train/<run>/best data.split=test",
        "convnlp eval checkpoint=[<run1>/best,<run2>/best] (an ensemble)",
    ),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.evaluate import evaluate_checkpoint

    evaluate_checkpoint(cfg, run_dir)
