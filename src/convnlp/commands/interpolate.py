"""`convnlp interpolate`: the texts an autoencoder decodes between two texts' codes (conf/interpolate.yaml)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from convnlp.commands.eval import DEVICES, THREADS
from convnlp.registry import COMMANDS, at_least, option

PATHS = ("line", "slerp")  # convnlp.codes.PATHS (not imported here: it loads torch)
FORMATS = ("text", "jsonl")


@dataclass
class InterpolateCommand:
    checkpoint: Any = option("???", help="a task=autoencoder checkpoint or run directory (its best/)")
    a: Optional[str] = option(None, help="the first text")
    b: Optional[str] = option(None, help="the second text")
    steps: int = option(8, at_least(1), help="steps from a to b (steps + 1 texts)")
    path: str = option("line", choices=PATHS, help="line: straight between the codes; slerp: along the arc")
    format: str = option("text", choices=FORMATS, help="text: t and the text per line; jsonl: one record per line")
    device: str = option("auto", choices=DEVICES)
    threads: int = option(0, THREADS)


@COMMANDS.register(
    InterpolateCommand,
    name="interpolate",
    order=2.6,
    summary="texts between codes",
    examples=('convnlp interpolate checkpoint=<run> a="first text" b="second text" steps=8',),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    import json

    from convnlp import api

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    a, b = (None if v is None else str(v) for v in (cfg.a, cfg.b))
    api.check_interpolation(a, b, cfg.steps, cfg.path)
    model = api.load(cfg.checkpoint, device=cfg.device, threads=cfg.threads)
    for record in model.interpolate(a, b, steps=cfg.steps, path=cfg.path):
        line = (
            json.dumps(record, ensure_ascii=False)
            if cfg.format == "jsonl"
            else f"{record['t']:.3f}\t{record['output']}"
        )
        print(line, flush=True)
