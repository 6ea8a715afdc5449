"""`convnlp bench`: every encoder's speed side by side, with the ratios to a baseline, and
trained checkpoints and peers (spaCy) timed as they predict (conf/bench.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from convnlp.registry import COMMANDS, option


@dataclass
class BenchSettings:
    encoders: list[str] = option(["plain", "residual", "dense", "dilated", "lstm", "bilstm"])
    baseline: Optional[str] = option("bilstm", help="ratios are times this encoder's speed")
    match: Optional[str] = option(None, help="parameters | flops: each encoder also resized to the baseline's")
    threads: list[int] = option([1, 2], help="each measured in turn (0: all cores)")
    neighbours: list[int] = option([0, 1], help="busy single-thread processes beside the measurement")
    repetitions: int = 5
    seconds: float = 1.0
    sentences: int = 2000
    latency_sentences: int = 100
    batch_tokens: int = 8000
    lengths: list[int] = option([64, 256, 1024, 4096])
    length_tokens: int = 16384
    lr: float = 0.001
    device: str = "auto"
    amp: bool = True
    peers: list[str] = option(["spacy"])
    spacy_model: Optional[str] = None
    checkpoints: list[Any] = option([])
    runtimes: list[str] = option(["torch"])
    batch_sentences: int = 1000
    spacy_lang: str = "en"
    profile: bool = False
    progress: bool = True


@dataclass
class BenchCommand:
    seed: int = 0
    bench: BenchSettings = field(default_factory=BenchSettings)


@COMMANDS.register(
    BenchCommand,
    name="bench",
    order=7,
    run_dir=True,
    summary="speed, side by side",
    groups=("task", "decoder", "data", "tokenizer"),
    examples=("convnlp bench task=tagging data=ud_ewt bench.threads=[1,2]",),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.bench.command import bench_command

    bench_command(cfg, run_dir)
