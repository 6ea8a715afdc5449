"""`convnlp predict`: label lines of text from a file or standard input, write JSON lines.

Tagging reads one sentence per line (whitespace-separated tokens) and writes its tags;
classification reads one text per line and writes its label and class probabilities;
generation reads one source per line and writes its output. Input is read and labeled
``batch_sentences`` lines at a time and every batch is flushed, so output streams from a pipe
and memory stays bounded however long the input is.

Every input line gets exactly one output line, in input order. A line that cannot be read (an
undecodable byte) gets a record with ``error`` and the task's output fields null
(``on_error=record``, the default), or, with ``on_error=stop``, the predictions of the lines
before it are written and the command stops with an error naming the line. The count of such
lines and of empty lines goes to standard error.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice

from omegaconf import DictConfig

from convnlp import ensemble
from convnlp.errors import UserError
from convnlp.tasks import TASKS, task_config
from convnlp.train import pick_device

log = logging.getLogger(__name__)
ON_ERROR = ("record", "stop")


@dataclass
class BadLine:
    """An input line that could not be read, and why (``where`` names the input and the line)."""
    number: int
    where: str
    problem: str


def _bom_hint(raw: bytes, number: int) -> str:
    if number == 1 and raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "; the input starts with a UTF-16 byte-order mark: set encoding=utf-16"
    return ""


def read_lines(stream, name: str, encoding: str) -> Iterator[str | BadLine]:
    """Decoded lines without line ends, or a ``BadLine`` for a line with an undecodable byte;
    a byte-order mark at the start is dropped."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"encoding={encoding!r} is not a known encoding") from None
    if "\n".encode(codec.name) != b"\n":  # UTF-16/32: lines are not split at the byte 0x0A
        yield from _read_wide(stream, name, codec.name)
        return
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode(codec.name)
        except UnicodeDecodeError as e:
            yield BadLine(number, f"{name}:{number}", f"cannot decode byte {raw[e.start:e.start + 1]!r} at column "
                          f"{e.start + 1} as {encoding}{_bom_hint(raw, number)} (set encoding=...)")
            continue
        yield (line.removeprefix("\ufeff") if number == 1 else line).rstrip("\r\n")


def _read_wide(stream, name: str, encoding: str) -> Iterator[str]:
    text = io.TextIOWrapper(stream, encoding=encoding, newline=None)
    number = 0
    try:
        for number, line in enumerate(text, start=1):
            yield (line.removeprefix("\ufeff") if number == 1 else line).rstrip("\n")
    except UnicodeDecodeError as e:  # no line boundary to resume at in a wide encoding
        raise UserError(f"{name}:{number + 1}: cannot decode the input as {encoding} ({e.reason})") from None


def _open(path: str, mode: str, stack: ExitStack):
    try:
        return stack.enter_context(open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None


def predict_command(cfg: DictConfig) -> None:
    if cfg.on_error not in ON_ERROR:
        raise UserError(f"on_error={cfg.on_error!r} is not valid; choose one of: {', '.join(ON_ERROR)}")
    device = pick_device(cfg.device)
    model, config, tokenizer, labels = ensemble.load(cfg.checkpoint, device)  # one, or a list
    task = TASKS[config["task"]["name"]]
    task_cfg = task_config(config)
    empty, bad = 0, []
    with ExitStack() as stack:
        source = sys.stdin.buffer if cfg.input == "-" else _open(cfg.input, "rb", stack)
        out = sys.stdout if cfg.output == "-" else _open(cfg.output, "w", stack)
        lines = read_lines(source, "<stdin>" if cfg.input == "-" else cfg.input, cfg.encoding)
        while chunk := list(islice(lines, cfg.batch_sentences)):
            stop = next((i for i, line in enumerate(chunk) if isinstance(line, BadLine)), None) \
                if cfg.on_error == "stop" else None
            readable = [task.read_input(line) for line in chunk[:stop] if not isinstance(line, BadLine)]
            empty += sum(not x for x in readable)
            records = iter(task.predict_records(model, tokenizer, labels, readable, device, task_cfg)
                           if readable else [])
            for line in chunk[:stop]:
                if isinstance(line, BadLine):
                    bad.append(line)
                    record = {**dict.fromkeys(task.OUTPUT_FIELDS), "error": f"line {line.number}: {line.problem}"}
                else:
                    record = next(records)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if stop is not None:
                line = chunk[stop]
                raise UserError(f"{line.where}: {line.problem}; the predictions of the lines before it are "
                                "written (on_error=record gives such a line an error record and goes on)")
    if empty:
        log.warning("%d empty input line(s): each has an empty result", empty)
    if bad:
        log.warning("%d input line(s) could not be read, each has an error record (first: %s: %s)",
                    len(bad), bad[0].where, bad[0].problem)
