"""`convnlp predict`: tag sentences from a file or standard input, write JSON lines.

Input is read and tagged ``batch_sentences`` lines at a time, so output streams from a pipe.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from itertools import islice

from omegaconf import DictConfig

from convnlp import checkpoint
from convnlp.errors import UserError
from convnlp.tasks import tagging
from convnlp.train import pick_device


def read_sentences(stream, name: str, encoding: str) -> Iterator[list[str]]:
    """One sentence per line, whitespace-separated tokens; an empty line is an empty sentence."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise UserError(f"{name}:{number}: cannot decode byte {raw[e.start:e.start + 1]!r} at column "
                            f"{e.start + 1} as {encoding} (set encoding=...)") from None
        except LookupError:
            raise UserError(f"unknown encoding {encoding!r}") from None
        yield (line.removeprefix("\ufeff") if number == 1 else line).split()


def _open(path: str, mode: str, stack: ExitStack):
    try:
        return stack.enter_context(open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None


def predict_command(cfg: DictConfig) -> None:
    device = pick_device(cfg.device)
    model, config, tokenizer, labels = checkpoint.load(cfg.checkpoint, device)
    task = config["task"]
    with ExitStack() as stack:
        source = sys.stdin.buffer if cfg.input == "-" else _open(cfg.input, "rb", stack)
        out = sys.stdout if cfg.output == "-" else _open(cfg.output, "w", stack)
        sentences = read_sentences(source, "<stdin>" if cfg.input == "-" else cfg.input, cfg.encoding)
        while chunk := list(islice(sentences, cfg.batch_sentences)):
            tags = tagging.predict(model, tokenizer, labels, chunk, device,
                                   max_chars=task["predict_max_chars"], context=task["predict_context_words"])
            for words, word_tags in zip(chunk, tags):
                out.write(json.dumps({"tokens": words, "tags": word_tags}, ensure_ascii=False) + "\n")
            out.flush()
