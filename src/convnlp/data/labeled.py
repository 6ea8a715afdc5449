"""Readers for labeled texts (classification): ``<label> <text>`` lines, CSV/TSV, JSON lines,
and HuggingFace datasets (hub id or local directory). Each returns ``(texts, labels)``, labels
as strings.

Every problem names the file, line and column: a missing column, a row without a label, an
empty text. Nothing is skipped silently: with ``skip_empty`` rows with an empty text are
left out and their count is logged.
"""

from __future__ import annotations

import csv
from pathlib import Path

from convnlp.data.readers import RowCollector, json_objects, read_lines
from convnlp.errors import UserError

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

    def __init__(self, source, skip_empty: bool):
        super().__init__(source, skip_empty, "row(s) with an empty text", "no labeled texts found")

    def add(self, text: str, label: str, place: str, empty_error: str) -> None:
        text = text.strip()
        super().add(text, label, place, None if text else empty_error)


def read_label_first(path: str | Path, encoding: str = "utf-8", skip_empty: bool = False) -> Texts:
    """Lines ``<label> <text>`` (the SST-2 files): the label is the first whitespace-separated field."""
    rows = _Rows(path, skip_empty)
    for number, line in enumerate(read_lines(path, encoding), start=1):
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


def read_table(path: str | Path, text_column: str, label_column: str, delimiter: str = ",",
               encoding: str = "utf-8", skip_empty: bool = False) -> Texts:
    """A CSV or TSV file with a header row naming the columns."""
    lines = read_lines(path, encoding)
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = reader.fieldnames or []
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in header:
            raise UserError(f"{path}:1: no {role} column {column!r}; the header has: {', '.join(header)} "
                            f"(set data.{role}_column=...)")
    rows = _Rows(path, skip_empty)
    try:
        for row in reader:
            number = reader.line_num
            text, label = row.get(text_column), _label(row.get(label_column))
            if None in row:
                raise UserError(f"{path}:{number}: {len(header) + len(row[None])} fields, the header has {len(header)}")
            if label is None:
                raise UserError(f"{path}:{number}: no label in column {label_column!r}")
            rows.add(text or "", label, f"line {number}", f"{path}:{number}: empty text in column "
                     f"{text_column!r} (remove the row, or set data.skip_empty=true)")
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {e}") from None
    return rows.finish()


def read_jsonl(path: str | Path, text_column: str, label_column: str, encoding: str = "utf-8",
               skip_empty: bool = False) -> Texts:
    """One JSON object per line; blank lines are allowed between objects."""
    rows = _Rows(path, skip_empty)
    for number, row in json_objects(path, encoding):
        if text_column not in row:
            raise UserError(f"{path}:{number}: no text field {text_column!r}; the object has: "
                            f"{', '.join(row)} (set data.text_column=...)")
        label = _label(row.get(label_column))
        if label is None:
            raise UserError(f"{path}:{number}: no label in field {label_column!r}")
        text = row[text_column]
        if not isinstance(text, str):
            raise UserError(f"{path}:{number}: field {text_column!r} is {type(text).__name__}, not text")
        rows.add(text, label, f"line {number}", f"{path}:{number}: empty text in field {text_column!r} "
                 "(remove the row, or set data.skip_empty=true)")
    return rows.finish()


def read_hf(path: str, subset: str | None, split: str, text_column: str, label_column: str,
            revision: str | None = None, skip_empty: bool = False) -> Texts:
    """A split of a HuggingFace dataset: a hub id (``stanfordnlp/imdb``) or a local directory
    that ``datasets.load_dataset`` reads. Integer class labels become their names."""
    import datasets

    where = f"{path}[{split}]"
    try:
        dataset = datasets.load_dataset(path, subset, split=split, revision=revision)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise UserError(f"{where}: cannot load the dataset ({str(e).strip().splitlines()[0]})") from None
    except ConnectionError as e:
        raise UserError(f"{where}: cannot reach the HuggingFace hub ({e})") from None
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in dataset.column_names:
            raise UserError(f"{where}: no {role} column {column!r}; columns: {', '.join(dataset.column_names)} "
                            f"(set data.{role}_column=...)")
    feature = dataset.features[label_column]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    rows = _Rows(where, skip_empty)
    for number, (text, raw_label) in enumerate(zip(dataset[text_column], dataset[label_column])):
        label = names[raw_label] if names is not None and isinstance(raw_label, int) and raw_label >= 0 else None
        label = label if names is not None else _label(raw_label)
        if label is None:
            raise UserError(f"{where}: row {number}: no label in column {label_column!r} ({raw_label!r})")
        rows.add(text if isinstance(text, str) else "", label, f"row {number}",
                 f"{where}: row {number}: empty text in column {text_column!r} "
                 "(set data.skip_empty=true to leave such rows out)")
    return rows.finish()
