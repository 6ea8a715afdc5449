"""`convnlp encode`: the code of each line of text, from an autoencoder (conf/encode.yaml)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.commands.eval import BATCH, DEVICES, THREADS
from convnlp.registry import COMMANDS, option


@dataclass
class EncodeCommand:
    checkpoint: Any = option("???", help="a task=autoencoder checkpoint or run directory (its best/)")
    input: str = option("-", help="a file of texts, one per line, or - for standard input")
    output: str = option("-", help="a file (*.npy: one numpy array; else JSON lines), or - for standard output")
    encoding: str = "utf-8"
    batch_tokens: int = option(8000, BATCH)
    device: str = option("auto", choices=DEVICES)
    threads: int = option(0, THREADS)


@COMMANDS.register(
    EncodeCommand,
    name="encode",
    order=2.3,
    summary="texts to codes",
    examples=(
        "convnlp encode checkpoint=<run> < texts.txt > codes.jsonl",
        "convnlp encode checkpoint=<run> input=texts.txt output=codes.npy",
    ),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    import json

    import numpy as np

    from convnlp import api
    from convnlp.errors import UserError
    from convnlp.inputs import BadLine, read_lines

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    name = "<stdin>" if cfg.input == "-" else cfg.input
    try:
        stream = sys.stdin.buffer if cfg.input == "-" else open(cfg.input, "rb")
    except OSError as e:
        raise UserError(f"{cfg.input}: cannot open ({e.strerror})") from None
    with stream:
        lines = list(read_lines(stream, name, cfg.encoding))
    for number, line in enumerate(lines, start=1):
        if isinstance(line, BadLine):
            raise UserError(f"{line.where}: {line.problem}")
        if not line.strip():
            raise UserError(f"{name}:{number}: empty line: an empty text has no code")
    model = api.load(cfg.checkpoint, device=cfg.device, threads=cfg.threads)
    texts = [line.strip() for line in lines]
    codes = model.encode(texts, batch_tokens=cfg.batch_tokens)
    if cfg.output.endswith(".npy"):
        try:
            np.save(cfg.output, codes)
        except OSError as e:
            raise UserError(f"{cfg.output}: cannot write ({e.strerror})") from None
        print(
            f"{cfg.output}: {codes.shape[0]} codes of {codes.shape[1] if codes.ndim == 2 else 0} numbers",
            file=sys.stderr,
        )
        return
    records = (
        json.dumps({"text": t, "code": [round(x, 6) for x in c]}, ensure_ascii=False)
        for t, c in zip(texts, codes.tolist())
    )
    if cfg.output == "-":
        sys.stdout.writelines(r + "\n" for r in records)
        sys.stdout.flush()
        return
    try:
        with open(cfg.output, "w", encoding="utf-8") as handle:
            handle.writelines(r + "\n" for r in records)
    except OSError as e:
        raise UserError(f"{cfg.output}: cannot write ({e.strerror})") from None
