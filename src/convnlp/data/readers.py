"""Readers for token-per-line files: CoNLL-U (via the `conllu` library) and whitespace columns
(CoNLL-2003 and friends). Each returns ``(tokens, tags)``: two lists of sentences.

Every problem is reported as ``file:line: problem`` in a UserError; nothing is skipped
silently. Lines that are skipped on purpose (CoNLL-U comments, multiword-token ranges and
empty nodes, ``-DOCSTART-``) are part of the formats, not data loss.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import conllu

from convnlp.errors import UserError

TAGSETS = ("upos", "xpos")  # CoNLL-U's tag columns

log = logging.getLogger(__name__)

Sentences = tuple[list[list[str]], list[list[str]]]


class RowCollector:
    """Collects the two columns of one source's rows. A row with a problem (``add``'s ``error``)
    raises it, or with ``skip_empty`` is left out and counted; ``ignore`` counts what the format
    itself leaves out (a blank line between rows, a ``-DOCSTART-`` block). ``finish`` logs those
    counts, checks that every one of the source's ``lines`` (counted before parsing) belongs to
    exactly one row read, left out or ignored, and refuses a source with no rows left.
    ``skipped`` and ``nothing`` word the log and the error: "row(s) with an empty text", "no
    labeled texts found"."""

    def __init__(self, source, skip_empty: bool, skipped: str, nothing: str, lines: int):
        self.source, self.skip_empty, self.skipped_what, self.nothing = source, skip_empty, skipped, nothing
        self.first, self.second, self.skipped = [], [], []
        self.lines, self.accounted = lines, 0  # physical lines (rows of a data set), and those accounted for
        self.ignored = {}  # what the format leaves out -> [places]

    def add(self, first, second, place: str, error: str | None, lines: int = 1) -> None:
        if error is None:
            self.first.append(first)
            self.second.append(second)
        elif self.skip_empty:
            self.skipped.append(place)
        else:
            raise UserError(error)
        self.accounted += lines

    def ignore(self, what: str | None, place: str = "", lines: int = 1) -> None:
        """Lines the format leaves out; ``what=None``: not worth a log line (blank separators)."""
        if what is not None:
            self.ignored.setdefault(what, []).append(place)
        self.accounted += lines

    def finish(self) -> tuple[list, list]:
        if self.skipped:
            log.warning(
                "%s: left out %d %s (first at %s)", self.source, len(self.skipped), self.skipped_what, self.skipped[0]
            )
        for what, places in self.ignored.items():
            log.debug("%s: %d %s (first at %s)", self.source, len(places), what, places[0])
        if self.accounted != self.lines:  # a reader bug, never the user's: refuse rather than lose rows
            raise UserError(
                f"{self.source}: {self.lines} lines, but the {len(self.first)} rows read, "
                f"{len(self.skipped)} left out and the lines ignored account for {self.accounted}; "
                "please report this"
            )
        if not self.first:
            raise UserError(f"{self.source}: {self.nothing}")
        return self.first, self.second


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """All lines of a text file, without line ends. Undecodable bytes name their line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError(f"{path}: file is empty")
    return decode_lines(raw, str(path), encoding)


def decode_lines(raw: bytes, name: str, encoding: str = "utf-8") -> list[str]:
    """Lines of ``raw`` (read from ``name``), without line ends or a leading byte-order mark.
    An undecodable byte is reported with its line and column."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(
            f"{name}:{line}: cannot decode byte {raw[e.start : e.start + 1]!r} at column "
            f"{column} as {encoding} (set the encoding option)"
        ) from None
    except LookupError:
        raise UserError(f"{name}: unknown encoding {encoding!r}") from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]  # the \r of a \r\n line end


def json_objects(path: str | Path, encoding: str, rows: RowCollector):
    """Yield (line number, object) for each JSON object of a JSON lines file; blank lines are
    allowed between objects. ``rows`` gets the file's line count (``rows.lines``) and counts
    the blank lines. Bad JSON or a value that is not an object names its line."""
    lines = read_lines(path, encoding)
    rows.lines = len(lines)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            rows.ignore("blank line(s) between objects", f"line {number}")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise UserError(f"{path}:{number}: JSON nested too deeply") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, found {type(row).__name__}")
        yield number, row


def _blocks(lines: list[str]):
    """Yield (first line number, lines) for each blank-line separated block."""
    block, start = [], 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def _sentence_blocks(path: str | Path, encoding: str):
    """A collector for a file of blank-line separated sentences, with its blank lines already
    accounted for, and the file's (first line number, lines) blocks."""
    lines = read_lines(path, encoding)
    sentences = RowCollector(path, False, "", "no sentences found", len(lines))
    sentences.ignore(None, lines=sum(not line.strip() for line in lines))  # the blank lines between sentences
    return sentences, _blocks(lines)


_CONLLU_ID = re.compile(r"^(\d+|\d+-\d+|\d+\.\d+)$")


def read_conllu(path: str | Path, tagset: str = "upos", encoding: str = "utf-8") -> Sentences:
    """Sentences of a CoNLL-U file with their UPOS (column 4) or XPOS (column 5) tags."""
    field, tag_column = {"upos": ("upos", 3), "xpos": ("xpos", 4)}[tagset]
    sentences, blocks = _sentence_blocks(path, encoding)
    for start, block in blocks:
        for offset, line in enumerate(block):
            if line.startswith("#"):
                continue
            columns = line.split("\t")
            where = f"{path}:{start + offset}"
            if len(columns) != 10:
                raise UserError(f"{where}: expected 10 tab-separated columns, found {len(columns)}")
            if not _CONLLU_ID.match(columns[0]):
                raise UserError(f"{where}: ID column is {columns[0]!r}, expected 1, 2-3 or 4.1")
            if columns[0].isdigit() and columns[tag_column] in ("", "_"):
                raise UserError(f"{where}: token {columns[1]!r} has no {tagset.upper()} tag")
        try:
            sentence = conllu.parse("\n".join(block) + "\n\n")[0]
        except Exception as e:  # conllu raises several types; all mean a malformed block
            raise UserError(f"{path}:{start}: malformed CoNLL-U sentence: {e}") from None
        words = [t for t in sentence if isinstance(t["id"], int)]  # not ranges, not empty nodes
        if words:
            sentences.add([t["form"] for t in words], [t[field] for t in words], f"line {start}", None, len(block))
        else:
            sentences.ignore("block(s) of comments only", f"line {start}", len(block))
    return sentences.finish()


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1, encoding: str = "utf-8") -> Sentences:
    """Sentences of a whitespace-column file: blank lines end sentences, -DOCSTART- is ignored."""
    sentences, blocks = _sentence_blocks(path, encoding)
    width = None  # every token line of a file has the same number of columns
    for start, block in blocks:
        tokens, tags = [], []
        for offset, line in enumerate(block):
            columns = line.split()
            if columns[0] == "-DOCSTART-":
                continue
            if width is None:
                width = len(columns)
                if (
                    -width <= token_column < width
                    and -width <= tag_column < width
                    and (token_column % width == tag_column % width)
                ):
                    raise UserError(
                        f"{path}:{start + offset}: token column {token_column} and tag column "
                        f"{tag_column} are the same column of {width}"
                    )
            if len(columns) != width:
                raise UserError(
                    f"{path}:{start + offset}: line has {len(columns)} column(s), earlier lines have {width}"
                )
            try:
                tokens.append(columns[token_column])
                tags.append(columns[tag_column])
            except IndexError:
                raise UserError(
                    f"{path}:{start + offset}: line has {len(columns)} column(s), need columns "
                    f"{token_column} (token) and {tag_column} (tag)"
                ) from None
        if tokens:
            sentences.add(tokens, tags, f"line {start}", None, len(block))
        else:
            sentences.ignore("-DOCSTART- block(s)", f"line {start}", len(block))
    return sentences.finish()
