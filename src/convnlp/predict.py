"""`convnlp predict`: label lines of text from a file or standard input, write JSON lines.

Tagging reads one sentence per line (whitespace-separated tokens) and writes its tags;
classification reads one text per line and writes its label and class probabilities;
generation reads one source per line and writes its output. Input is read and labeled
``batch_sentences`` lines at a time and every batch is flushed, so output streams and memory
stays bounded however long the input is; from a pipe or a terminal, the lines read so far are
labeled as soon as the input pauses for ``flush_ms``, so each line is answered promptly.

Every input line gets exactly one output line, in input order. A line that cannot be read (an
undecodable byte) gets a record with ``error`` and the task's output fields null
(``on_error=record``, the default), or, with ``on_error=stop``, the predictions of the lines
before it are written and the command stops with an error naming the line. The count of such
lines and of empty lines goes to standard error.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from contextlib import ExitStack

from omegaconf import DictConfig

from convnlp.api import load_model
from convnlp.errors import UserError
from convnlp.inputs import BadLine, PipeLines, chunks, read_lines
from convnlp.tasks import with_decoding
from convnlp.threads import ThreadPolicy

log = logging.getLogger(__name__)
ON_ERROR = ("record", "stop")


def _open(path: str, mode: str, stack: ExitStack):
    try:
        return stack.enter_context(open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None


def _regular_file(stream) -> bool:
    """Whether ``stream`` reads a file (which never pauses), or a stream with no descriptor (read
    as it is), not a pipe or a terminal."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return True


def predict_command(cfg: DictConfig) -> None:
    if cfg.on_error not in ON_ERROR:
        raise UserError(f"on_error={cfg.on_error!r} is not valid; choose one of: {', '.join(ON_ERROR)}")
    threads = ThreadPolicy(cfg.get("threads", 0))  # 0: the cores other processes leave free, checked as it goes
    loaded, device = load_model(cfg.checkpoint, cfg.get("runtime", "torch"), cfg.device, cfg.get("threads", 0))
    chosen = threads.start(logging.DEBUG)
    if getattr(loaded.model, "threads", None) == 0:  # ONNX Runtime: the threads the policy chose, fixed from here
        loaded.model.set_threads(chosen)
    task, task_cfg = loaded.task, with_decoding(loaded.task_cfg, cfg.get("beam"), cfg.get("nbest", 0))
    empty, bad, first_bad = 0, 0, None
    with ExitStack() as stack:
        source = sys.stdin.buffer if cfg.input == "-" else _open(cfg.input, "rb", stack)
        out = sys.stdout if cfg.output == "-" else _open(cfg.output, "w", stack)
        pipe = None if _regular_file(source) else PipeLines(source)  # it may pause: answer what came
        lines = read_lines(pipe or source, "<stdin>" if cfg.input == "-" else cfg.input, cfg.encoding)
        wait = cfg.get("flush_ms", 50.0) / 1000
        for chunk in chunks(lines, cfg.batch_sentences, wait, pipe.ready if pipe else None):
            threads.update()
            stop = (
                next((i for i, line in enumerate(chunk) if isinstance(line, BadLine)), None)
                if cfg.on_error == "stop"
                else None
            )
            readable = [task.read_input(line) for line in chunk[:stop] if not isinstance(line, BadLine)]
            empty += sum(not x for x in readable)
            records = iter(
                task.predict_records(loaded.model, loaded.tokenizer, loaded.labels, readable, device, task_cfg)
                if readable
                else []
            )
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
                raise UserError(
                    f"{line.where}: {line.problem}; the predictions of the lines before it are "
                    "written (on_error=record gives such a line an error record and goes on)"
                )
    if empty:
        log.warning("%d empty input line(s): each has an empty result", empty)
    if bad:
        log.warning(
            "%d input line(s) could not be read, each has an error record (first: %s: %s)",
            bad,
            first_bad.where,
            first_bad.problem,
        )
