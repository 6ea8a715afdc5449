"""`convnlp predict`: label lines of text from a file or standard input, write JSON lines.

Tagging reads one sentence per line (whitespace-separated tokens) and writes its tags;
classification reads one text per line and writes its label and class probabilities. Input
is read and labeled ``batch_sentences`` lines at a time, so output streams from a pipe.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from itertools import islice

from omegaconf import DictConfig

from convnlp import ensemble
from convnlp.errors import UserError
from convnlp.tasks import TASKS, task_config
from convnlp.train import pick_device

log = logging.getLogger(__name__)


def read_lines(stream, name: str, encoding: str) -> Iterator[str]:
    """Decoded lines, without line ends; an undecodable byte names its line."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise UserError(f"{name}:{number}: cannot decode byte {raw[e.start:e.start + 1]!r} at column "
                            f"{e.start + 1} as {encoding} (set encoding=...)") from None
        except LookupError:
            raise UserError(f"unknown encoding {encoding!r}") from None
        yield (line.removeprefix("\ufeff") if number == 1 else line).rstrip("\r\n")


def _open(path: str, mode: str, stack: ExitStack):
    try:
        return stack.enter_context(open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None


def predict_command(cfg: DictConfig) -> None:
    device = pick_device(cfg.device)
    model, config, tokenizer, labels = ensemble.load(cfg.checkpoint, device)  # one, or a list
    task = TASKS[config["task"]["name"]]
    empty = 0
    with ExitStack() as stack:
        source = sys.stdin.buffer if cfg.input == "-" else _open(cfg.input, "rb", stack)
        out = sys.stdout if cfg.output == "-" else _open(cfg.output, "w", stack)
        lines = read_lines(source, "<stdin>" if cfg.input == "-" else cfg.input, cfg.encoding)
        while chunk := list(islice(lines, cfg.batch_sentences)):
            inputs = [task.read_input(line) for line in chunk]
            empty += sum(not x for x in inputs)
            for record in task.predict_records(model, tokenizer, labels, inputs, device, task_config(config)):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    if empty:
        log.warning("%d empty input line(s): each has an empty result", empty)
