"""Readers for parallel data (generation): pairs of a source and a target text.

Three layouts, chosen by ``data.format`` (``auto`` goes by the path):

- ``tsv``: one ``source<TAB>target`` pair per line (``train.tsv``);
- ``jsonl``: one JSON object per line with a source and a target field (``train.jsonl``);
- ``files``: two line-aligned files ``PATH.<source_suffix>`` and ``PATH.<target_suffix>``
  (``data.train=corpus/train`` reads ``corpus/train.src`` and ``corpus/train.tgt``).

Every problem names the file and line: a wrong field count, a missing field, bad JSON, files of
different lengths, an empty side. With ``skip_empty`` pairs with an empty side are left out and
their count is logged; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convnlp.data import per_split, split_option
from convnlp.data.readers import RowCollector, json_objects, read_lines
from convnlp.errors import UserError
from convnlp.registry import DATASETS, option

FORMATS = ("auto", "tsv", "jsonl", "files")
Pairs = tuple[list[str], list[str]]


def detect_format(path: str, source_suffix: str, target_suffix: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if Path(f"{path}.{source_suffix}").is_file() or Path(f"{path}.{target_suffix}").is_file():
        return "files"
    raise UserError(
        f"{path}: cannot tell the format: not *.tsv or *.jsonl, and no {path}.{source_suffix} "
        f"and {path}.{target_suffix}; set data.format=tsv|jsonl|files"
    )


class _Pairs(RowCollector):
    """(source, target) pairs: an empty side raises its error, or with ``skip_empty`` is counted."""

    def __init__(self, source: str, skip_empty: bool, lines: int):
        super().__init__(source, skip_empty, "pair(s) with an empty side", "no pairs found", lines)

    def add(self, source: str, target: str, place: str) -> None:
        source, target = source.strip(), target.strip()
        error = (
            None
            if source and target
            else f"{place}: empty {'source' if not source else 'target'} (remove the pair, or set data.skip_empty=true)"
        )
        super().add(source, target, place, error)


def read_tsv(path: str, encoding: str = "utf-8", skip_empty: bool = False) -> Pairs:
    lines = read_lines(path, encoding)
    pairs = _Pairs(path, skip_empty, len(lines))
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{path}:{number}: {len(fields)} tab-separated field(s), expected 2 (source, target)")
        pairs.add(fields[0], fields[1], f"{path}:{number}")
    return pairs.finish()


def read_jsonl(
    path: str, source_column: str, target_column: str, encoding: str = "utf-8", skip_empty: bool = False
) -> Pairs:
    pairs = _Pairs(path, skip_empty, 0)
    for number, row in json_objects(path, encoding, pairs):
        for role, column in (("source", source_column), ("target", target_column)):
            if column not in row:
                raise UserError(
                    f"{path}:{number}: no {role} field {column!r}; the object has: "
                    f"{', '.join(row)} (set data.{role}_column=...)"
                )
            if not isinstance(row[column], str):
                raise UserError(f"{path}:{number}: field {column!r} is {type(row[column]).__name__}, not text")
        pairs.add(row[source_column], row[target_column], f"{path}:{number}")
    return pairs.finish()


def read_files(
    path: str, source_suffix: str, target_suffix: str, encoding: str = "utf-8", skip_empty: bool = False
) -> Pairs:
    source_path, target_path = f"{path}.{source_suffix}", f"{path}.{target_suffix}"
    sources, targets = read_lines(source_path, encoding), read_lines(target_path, encoding)
    if len(sources) != len(targets):
        raise UserError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
            "the files must be line-aligned"
        )
    pairs = _Pairs(f"{source_path} / {target_path}", skip_empty, len(sources))
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        place = f"{target_path}:{number}" if source.strip() else f"{source_path}:{number}"
        pairs.add(source, target, place)
    return pairs.finish()


def read(
    path: str,
    fmt: str,
    source_column: str,
    target_column: str,
    source_suffix: str,
    target_suffix: str,
    encoding: str = "utf-8",
    skip_empty: bool = False,
) -> Pairs:
    fmt = detect_format(path, source_suffix, target_suffix) if fmt == "auto" else fmt
    if fmt == "tsv":
        return read_tsv(path, encoding, skip_empty)
    if fmt == "jsonl":
        return read_jsonl(path, source_column, target_column, encoding, skip_empty)
    return read_files(path, source_suffix, target_suffix, encoding, skip_empty)


@dataclass
class ParallelConfig:
    name: str = "parallel"
    split: str = split_option()
    train: Optional[str] = option(None, help="a file, or the stem of two aligned files (required)")
    validation: Optional[str] = None
    test: Optional[str] = None
    format: str = option("auto", choices=FORMATS, help="auto goes by the path")
    source_column: str = "source"
    target_column: str = "target"
    source_suffix: str = "src"
    target_suffix: str = "tgt"
    encoding: str = "utf-8"
    skip_empty: bool = option(False, help="leave out pairs with an empty side (counted in the log)")


@DATASETS.register(
    ParallelConfig,
    tasks=("generation",),
    description="parallel source/target files (TSV, JSON lines or two aligned text files)",
)
def load_parallel(cfg: ParallelConfig, splits, task: str) -> dict:
    return per_split(
        cfg,
        splits,
        lambda path: read(
            path,
            cfg.format,
            cfg.source_column,
            cfg.target_column,
            cfg.source_suffix,
            cfg.target_suffix,
            cfg.encoding,
            cfg.skip_empty,
        ),
    )
