"""`convnlp predict`: tag sentences from a file or standard input, write JSON lines."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path

from omegaconf import DictConfig

from convnlp import checkpoint
from convnlp.data.readers import decode_lines
from convnlp.errors import UserError
from convnlp.tasks import tagging
from convnlp.train import pick_device


def read_sentences(path: str, encoding: str) -> list[list[str]]:
    """One sentence per line, whitespace-separated tokens; an empty line is an empty sentence."""
    if path == "-":
        return [line.split() for line in decode_lines(sys.stdin.buffer.read(), "<stdin>", encoding)]
    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    return [line.split() for line in decode_lines(Path(path).read_bytes(), path, encoding)]


def predict_command(cfg: DictConfig) -> None:
    device = pick_device(cfg.device)
    model, config, tokenizer, labels = checkpoint.load(cfg.checkpoint, device)
    sentences = read_sentences(cfg.input, cfg.encoding)
    task = config["task"]
    with ExitStack() as stack:
        out = sys.stdout if cfg.output == "-" else stack.enter_context(open(cfg.output, "w", encoding="utf-8"))
        for start in range(0, len(sentences), cfg.batch_sentences):
            chunk = sentences[start:start + cfg.batch_sentences]
            tags = tagging.predict(model, tokenizer, labels, chunk, device,
                                   max_chars=task["predict_max_chars"], context=task["predict_context_words"])
            for words, word_tags in zip(chunk, tags):
                out.write(json.dumps({"tokens": words, "tags": word_tags}, ensure_ascii=False) + "\n")
            out.flush()
