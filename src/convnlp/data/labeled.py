"""Readers for labeled texts (classification): ``<label> <text>`` lines, CSV/TSV, JSON lines,
and HuggingFace datasets (hub id or local directory). Each returns ``(texts, labels)``, labels
as strings.

Every problem names the file, line and column: a missing column, a row without a label, an
empty text. Nothing is skipped silently: with ``skip_empty`` rows with an empty text are
left out and their count is logged.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convnlp.data import per_split, split_option
from convnlp.data.readers import RowCollector, json_objects, read_lines
from convnlp.errors import UserError
from convnlp.registry import DATASETS, option

log = logging.getLogger(__name__)

Texts = tuple[list[str], list[str]]


def _label(value) -> str | None:
    """A label as text: 1 and "1" are the same class, 1.0 too; None and "" mean missing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class _Rows(RowCollector):
    """(text, label) rows: an empty text raises its error, or with ``skip_empty`` is counted."""

    def __init__(self, source, skip_empty: bool, lines: int):
        super().__init__(source, skip_empty, "row(s) with an empty text", "no labeled texts found", lines)

    def add(self, text: str, label: str, place: str, empty_error: str, lines: int = 1) -> None:
        text = text.strip()
        super().add(text, label, place, None if text else empty_error, lines)


def read_label_first(path: str | Path, encoding: str = "utf-8", skip_empty: bool = False) -> Texts:
    """Lines ``<label> <text>`` (the SST-2 files): the label is the first whitespace-separated field."""
    lines = read_lines(path, encoding)
    rows = _Rows(path, skip_empty, len(lines))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise UserError(f"{path}:{number}: empty line (expected '<label> <text>')")
        label, _, text = line.strip().partition(" ")
        rows.add(text, label, f"line {number}", f"{path}:{number}: label {label!r} has no text after it")
    return rows.finish()


def read_text_lines(path: str | Path, label: str, encoding: str = "utf-8") -> list[str]:
    """One text per line, all with the same label (the MR files); an empty line is an error."""
    texts = []
    for number, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            raise UserError(f"{path}:{number}: empty line (expected one {label} text per line)")
        texts.append(line.strip())
    return texts


QUOTING = ("auto", "none", "csv", "multiline")


def _table_records(path, lines: list[str], delimiter: str, quoting: str):
    """Yield (first line, last line, fields) for each record of a delimited text; fields [] for
    a blank line. ``none``: a record is a line and a quote is an ordinary character (a TSV as
    most tools write it). ``csv``: RFC 4180 quoted fields (the delimiter inside, ``""`` for a
    quote) on one line; ``multiline``: such fields may also hold line breaks. A quote that is
    not closed on its line (``csv``) or never (``multiline``), or text after a closing quote,
    is an error naming the line where its record began: it would swallow the rows after it."""
    name = "TSV" if delimiter == "\t" else "CSV"
    if quoting == "none":
        for number, line in enumerate(lines, start=1):
            yield number, number, [] if not line.strip() and delimiter not in line else line.split(delimiter)
        return
    # Fed line by line, so line_num counts physical lines. A lone \r is a character of its line
    # (as Python's own csv writer leaves it, unquoted); csv would take it for a line break, so it
    # passes the parser as a character the file does not hold.
    carriage = (
        "\r"
        if not any("\r" in line for line in lines)
        else next(c for c in map(chr, range(0xE000, 0xF900)) if not any(c in line for line in lines))
    )
    reader = csv.reader((line.replace("\r", carriage) + "\n" for line in lines), delimiter=delimiter, strict=True)
    start = 1
    try:
        for fields in reader:
            fields = [field.replace(carriage, "\r") for field in fields] if carriage != "\r" else fields
            if reader.line_num > start and quoting != "multiline":
                raise UserError(
                    f"{path}:{start}: malformed {name}: a quoted field that starts on this line runs on "
                    f"to line {reader.line_num}; close the quote on its line and double a quote inside "
                    f'a quoted field (""), or set data.quoting=multiline if texts hold line breaks'
                    f"{', or data.quoting=none to read quotes as text' if name == 'TSV' else ''}"
                )
            yield start, reader.line_num, fields if len(fields) > 1 or "".join(fields).strip() else []
            start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(
            f"{path}:{start}: malformed {name}: a quoted field that starts on this line is not closed "
            f'properly ({e}, at line {reader.line_num}); double a quote inside a quoted field ("")'
            f"{', or set data.quoting=none to read quotes as text' if name == 'TSV' else ''}"
        ) from None


def read_table(
    path: str | Path,
    text_column: str,
    label_column: str,
    delimiter: str = ",",
    encoding: str = "utf-8",
    skip_empty: bool = False,
    quoting: str = "auto",
) -> Texts:
    """A CSV or TSV file with a header row naming the columns. ``quoting`` (see _table_records):
    ``auto`` is ``csv`` for commas and ``none`` for tabs."""
    if quoting not in QUOTING:
        raise UserError(f"data.quoting={quoting!r} is not valid; choose one of: {', '.join(QUOTING)}")
    if quoting == "auto":
        quoting = "none" if delimiter == "\t" else "csv"
    csv.field_size_limit(2**31 - 1)  # a text may be long; the default limit is 131,072 characters
    lines = read_lines(path, encoding)  # checks the file and names an undecodable byte's line
    records = _table_records(path, lines, delimiter, quoting)
    header, header_line = [], 0
    for header_line, _, fields in records:  # noqa: B007 (read after the loop)
        if fields:
            header = [field.strip() for field in fields]
            break
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in header:
            raise UserError(
                f"{path}:{max(header_line, 1)}: no {role} column {column!r}; the header has: "
                f"{', '.join(header)} (set data.{role}_column=...)"
            )
    text_at, label_at = header.index(text_column), header.index(label_column)
    rows, spanning, looks_quoted = _Rows(path, skip_empty, len(lines) - header_line), [], []
    for number, last, fields in records:
        if not fields:
            rows.ignore("blank line(s) between rows", f"line {number}")
            continue
        if len(fields) != len(header):
            raise UserError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}")
        text, label = fields[text_at], _label(fields[label_at])
        if label is None:
            raise UserError(f"{path}:{number}: no label in column {label_column!r}")
        if last > number:
            spanning.append(number)
        if quoting == "none" and len(text) > 1 and text[0] == text[-1] == '"':
            looks_quoted.append(number)
        rows.add(
            text,
            label,
            f"line {number}",
            f"{path}:{number}: empty text in column {text_column!r} (remove the row, or set data.skip_empty=true)",
            last - number + 1,
        )
    if spanning:
        log.warning(
            "%s: %d row(s) have a quoted field with a line break inside (first at line %d)",
            path,
            len(spanning),
            spanning[0],
        )
    if looks_quoted:
        log.warning(
            "%s: %d text(s) begin and end with a quote, which is kept as text (first at line %d); if the "
            "file was written with CSV quoting, set data.quoting=csv",
            path,
            len(looks_quoted),
            looks_quoted[0],
        )
    return rows.finish()


def read_jsonl(
    path: str | Path, text_column: str, label_column: str, encoding: str = "utf-8", skip_empty: bool = False
) -> Texts:
    """One JSON object per line; blank lines are allowed between objects."""
    rows = _Rows(path, skip_empty, 0)
    for number, row in json_objects(path, encoding, rows):
        if text_column not in row:
            raise UserError(
                f"{path}:{number}: no text field {text_column!r}; the object has: "
                f"{', '.join(row)} (set data.text_column=...)"
            )
        label = _label(row.get(label_column))
        if label is None:
            raise UserError(f"{path}:{number}: no label in field {label_column!r}")
        text = row[text_column]
        if not isinstance(text, str):
            raise UserError(f"{path}:{number}: field {text_column!r} is {type(text).__name__}, not text")
        rows.add(
            text,
            label,
            f"line {number}",
            f"{path}:{number}: empty text in field {text_column!r} (remove the row, or set data.skip_empty=true)",
        )
    return rows.finish()


def read_hf(
    path: str,
    subset: str | None,
    split: str,
    text_column: str,
    label_column: str | None,
    revision: str | None = None,
    skip_empty: bool = False,
) -> Texts:
    """A split of a HuggingFace dataset: a hub id (``stanfordnlp/imdb``) or a local directory
    that ``datasets.load_dataset`` reads. Integer class labels become their names; with no
    ``label_column`` (unlabeled text, for an autoencoder) every label is empty."""
    import datasets

    where = f"{path}[{split}]"
    try:
        dataset = datasets.load_dataset(path, subset, split=split, revision=revision)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise UserError(f"{where}: cannot load the dataset ({str(e).strip().splitlines()[0]})") from None
    except ConnectionError as e:
        raise UserError(f"{where}: cannot reach the HuggingFace hub ({e})") from None
    if label_column is None:
        dataset = dataset.add_column("convnlp_unlabeled", [""] * dataset.num_rows)
        label_column = "convnlp_unlabeled"
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in dataset.column_names:
            raise UserError(
                f"{where}: no {role} column {column!r}; columns: {', '.join(dataset.column_names)} "
                f"(set data.{role}_column=...)"
            )
    feature = dataset.features[label_column]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    rows = _Rows(where, skip_empty, dataset.num_rows)
    for number, (text, raw_label) in enumerate(zip(dataset[text_column], dataset[label_column])):
        label = names[raw_label] if names is not None and isinstance(raw_label, int) and raw_label >= 0 else None
        label = label if names is not None else _label(raw_label)
        if label is None and label_column != "convnlp_unlabeled":
            raise UserError(f"{where}: row {number}: no label in column {label_column!r} ({raw_label!r})")
        rows.add(
            text if isinstance(text, str) else "",
            label,
            f"row {number}",
            f"{where}: row {number}: empty text in column {text_column!r} "
            "(set data.skip_empty=true to leave such rows out)",
        )
    return rows.finish()


# ------------------------------------------------------------------ the data sets of these files


@dataclass
class JsonlConfig:
    name: str = "jsonl"
    split: str = split_option()
    train: Optional[str] = option(None, help="a file (required)")
    validation: Optional[str] = None
    test: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    skip_empty: bool = option(False, help="leave out rows with an empty text (counted in the log)")


@dataclass
class CsvConfig:
    name: str = "csv"
    split: str = split_option()
    train: Optional[str] = option(None, help="a file with a header row (required)")
    validation: Optional[str] = None
    test: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    skip_empty: bool = option(False, help="leave out rows with an empty text (counted in the log)")
    quoting: str = option("auto", choices=QUOTING, help="auto: csv for data=csv, none for data=tsv")


@dataclass
class TsvConfig(CsvConfig):
    name: str = "tsv"


@dataclass
class HubConfig:
    name: str = "hub"
    split: str = split_option()
    path: str = option("???", help="a HuggingFace dataset: hub id or local directory (required)")
    subset: Optional[str] = None
    revision: Optional[str] = None
    train_split: Optional[str] = "train"
    validation_split: Optional[str] = "validation"
    test_split: Optional[str] = "test"
    text_column: str = "text"
    label_column: Optional[str] = option("label", help="null: unlabeled text (task=autoencoder)")
    skip_empty: bool = False


def _table(cfg: CsvConfig, splits, delimiter: str) -> dict:
    return per_split(
        cfg,
        splits,
        lambda path: read_table(
            path, cfg.text_column, cfg.label_column, delimiter, cfg.encoding, cfg.skip_empty, cfg.quoting
        ),
    )


@DATASETS.register(CsvConfig, tasks=("classification",), description="CSV files with a header row")
def load_csv(cfg: CsvConfig, splits, task: str) -> dict:
    return _table(cfg, splits, ",")


@DATASETS.register(TsvConfig, tasks=("classification",), description="TSV files with a header row")
def load_tsv(cfg: TsvConfig, splits, task: str) -> dict:
    return _table(cfg, splits, "\t")


@DATASETS.register(JsonlConfig, tasks=("classification",), description="JSON lines files")
def load_jsonl(cfg: JsonlConfig, splits, task: str) -> dict:
    return per_split(
        cfg, splits, lambda path: read_jsonl(path, cfg.text_column, cfg.label_column, cfg.encoding, cfg.skip_empty)
    )


@DATASETS.register(
    HubConfig, tasks=("classification",), description="a HuggingFace dataset (hub id or local directory)"
)
def load_hub(cfg: HubConfig, splits, task: str) -> dict:
    if cfg.label_column is None and task != "autoencoder":
        raise UserError(f"data.label_column=null (unlabeled text) is for task=autoencoder; task={task} needs labels")
    return per_split(
        cfg,
        splits,
        lambda name: read_hf(
            cfg.path, cfg.subset, name, cfg.text_column, cfg.label_column, cfg.revision, cfg.skip_empty
        ),
        key="{split}_split",
        what="split",
        value="NAME",
    )
