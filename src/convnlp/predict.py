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
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice

from omegaconf import DictConfig

from convnlp.api import load_model
from convnlp.errors import UserError
from convnlp.tasks import TASKS, task_config
from convnlp.threads import ThreadPolicy

log = logging.getLogger(__name__)
ON_ERROR = ("record", "stop")


@dataclass
class BadLine:
    """An input line that could not be read, and why (``where`` names the input and the line)."""
    number: int
    where: str
    problem: str


WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
             (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def read_lines(stream, name: str, encoding: str) -> Iterator[str | BadLine]:
    """Decoded lines without line ends, or a ``BadLine`` for a line with an undecodable byte;
    a byte-order mark at the start is dropped. UTF-16 and UTF-32 are split into lines at their
    own line-feed code units, so a bad line there is one line too."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise UserError(f"encoding={encoding!r} is not a known encoding") from None
    if codec.startswith(("utf-16", "utf-32")):
        yield from _wide_lines(stream, name, codec)
        return
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            wide = next((wide for bom, wide in WIDE_BOMS if raw.startswith(bom)), None)
            if wide:  # every line would be misread, not only this one
                raise UserError(f"{name}:1: the input starts with a {wide[:6].upper()} byte-order mark; set "
                                f"encoding={wide[:6]}")
        yield _decode(raw.removesuffix(b"\n"), number, name, "utf-8" if codec == "utf-8-sig" else codec, encoding)


def _decode(raw: bytes, number: int, name: str, codec: str, encoding: str) -> str | BadLine:
    try:
        line = raw.decode(codec)
    except UnicodeDecodeError as e:
        return BadLine(number, f"{name}:{number}", f"cannot decode byte {raw[e.start:e.start + 1]!r} at column "
                       f"{e.start + 1} as {encoding} (set encoding=...)")
    line = line.removeprefix("\ufeff") if number == 1 else line
    return line[:-1] if line.endswith("\r") else line


def _wide_lines(stream, name: str, codec: str) -> Iterator[str | BadLine]:
    """Lines of a UTF-16 or UTF-32 stream: split at line feeds on code-unit boundaries, each line
    decoded on its own. The byte order is the codec's, or the byte-order mark's, or little-endian."""
    unit = 4 if codec.startswith("utf-32") else 2
    buffer = stream.read(4)
    fixed = codec if codec.endswith(("-le", "-be")) else None
    for bom, wide in WIDE_BOMS:
        if fixed is None and len(bom) == unit and buffer.startswith(bom):
            fixed, buffer = wide, buffer[len(bom):]
    fixed = fixed or f"{codec}-le"
    newline = "\n".encode(fixed)
    number, done = 0, False
    while not done:
        chunk = stream.read(1 << 16)
        done = not chunk
        buffer += chunk
        start, position = 0, buffer.find(newline)
        while position != -1:
            if (position - start) % unit == 0:  # a line feed, not the tail of another code unit
                number += 1
                yield _decode(buffer[start:position], number, name, fixed, codec)
                start = position + unit
                position = buffer.find(newline, start)
            else:
                position = buffer.find(newline, position + 1)
        buffer = buffer[start:]
    if buffer:
        yield _decode(buffer, number + 1, name, fixed, codec)


def _open(path: str, mode: str, stack: ExitStack):
    try:
        return stack.enter_context(open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None


def predict_command(cfg: DictConfig) -> None:
    if cfg.on_error not in ON_ERROR:
        raise UserError(f"on_error={cfg.on_error!r} is not valid; choose one of: {', '.join(ON_ERROR)}")
    threads = ThreadPolicy(cfg.get("threads", 0))  # 0: the cores other processes leave free, checked as it goes
    model, config, tokenizer, labels, device = load_model(cfg.checkpoint, cfg.get("runtime", "torch"), cfg.device,
                                                          cfg.get("threads", 0))
    chosen = threads.start(logging.DEBUG)
    if getattr(model, "threads", None) == 0:  # ONNX Runtime: the threads the policy chose, fixed from here
        model.set_threads(chosen)
    task = TASKS[config["task"]["name"]]
    task_cfg = task_config(config)
    empty, bad, first_bad = 0, 0, None
    with ExitStack() as stack:
        source = sys.stdin.buffer if cfg.input == "-" else _open(cfg.input, "rb", stack)
        out = sys.stdout if cfg.output == "-" else _open(cfg.output, "w", stack)
        lines = read_lines(source, "<stdin>" if cfg.input == "-" else cfg.input, cfg.encoding)
        while chunk := list(islice(lines, cfg.batch_sentences)):
            threads.update()
            stop = next((i for i, line in enumerate(chunk) if isinstance(line, BadLine)), None) \
                if cfg.on_error == "stop" else None
            readable = [task.read_input(line) for line in chunk[:stop] if not isinstance(line, BadLine)]
            empty += sum(not x for x in readable)
            records = iter(task.predict_records(model, tokenizer, labels, readable, device, task_cfg)
                           if readable else [])
            for line in chunk[:stop]:
                if isinstance(line, BadLine):
                    bad, first_bad = bad + 1, first_bad or line
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
                    bad, first_bad.where, first_bad.problem)
