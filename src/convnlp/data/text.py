"""Unlabeled text (``task=autoencoder``): one text per line of a plain text file, or a field of
a JSON lines file (``data.format``: ``auto`` goes by the path, ``*.jsonl`` is JSON lines).

An empty line is an error naming the file and line, or with ``data.skip_empty`` left out and
counted in the log; nothing is dropped silently. (Any labeled data set serves an autoencoder
too: ``convnlp.data.load_splits`` takes its texts.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convnlp.data import per_split, split_option
from convnlp.data.readers import RowCollector, json_objects, read_lines
from convnlp.errors import UserError
from convnlp.registry import DATASETS, option

FORMATS = ("auto", "lines", "jsonl")


class _Texts(RowCollector):
    def __init__(self, source: str, skip_empty: bool, lines: int):
        super().__init__(source, skip_empty, "empty line(s)", "no texts found", lines)

    def finish(self) -> tuple[list[str]]:
        return (super().finish()[0],)


def read_text(path: str, encoding: str = "utf-8", skip_empty: bool = False) -> tuple[list[str]]:
    """The texts of a file, one per line (surrounding whitespace removed)."""
    lines = read_lines(path, encoding)
    texts = _Texts(path, skip_empty, len(lines))
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        error = None if text else f"{path}:{number}: empty line (remove it, or set data.skip_empty=true)"
        texts.add(text, None, f"line {number}", error)
    return texts.finish()


def read_jsonl(path: str, column: str, encoding: str = "utf-8", skip_empty: bool = False) -> tuple[list[str]]:
    """The ``column`` field of each object of a JSON lines file."""
    texts = _Texts(path, skip_empty, 0)
    for number, row in json_objects(path, encoding, texts):
        if column not in row:
            raise UserError(
                f"{path}:{number}: no field {column!r}; the object has: {', '.join(row)} (set data.text_column=...)"
            )
        if not isinstance(row[column], str):
            raise UserError(f"{path}:{number}: field {column!r} is {type(row[column]).__name__}, not text")
        text = row[column].strip()
        error = (
            None
            if text
            else f"{path}:{number}: empty text in field {column!r} (remove it, or set data.skip_empty=true)"
        )
        texts.add(text, None, f"line {number}", error)
    return texts.finish()


@dataclass
class TextConfig:
    name: str = "text"
    split: str = split_option()
    train: Optional[str] = option(None, help="a text file, one text per line (required)")
    validation: Optional[str] = None
    test: Optional[str] = None
    format: str = option("auto", choices=FORMATS, help="auto: *.jsonl is JSON lines, anything else one text per line")
    text_column: str = option("text", help="jsonl: the field holding the text")
    encoding: str = "utf-8"
    skip_empty: bool = option(False, help="leave out empty lines (counted in the log)")


@DATASETS.register(
    TextConfig, tasks=("autoencoder",), description="unlabeled text, one per line (or a JSON lines field)"
)
def load_text(cfg: TextConfig, splits, task: str) -> dict:
    def read(path: str):
        jsonl = cfg.format == "jsonl" or (cfg.format == "auto" and Path(path).suffix.lower() in (".jsonl", ".json"))
        if jsonl:
            return read_jsonl(path, cfg.text_column, cfg.encoding, cfg.skip_empty)
        return read_text(path, cfg.encoding, cfg.skip_empty)

    return per_split(cfg, splits, read)
