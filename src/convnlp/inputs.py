"""Reading the lines that ``convnlp predict`` (and int8 calibration) take: each line decoded on
its own, so one undecodable byte costs one line, not the file, and that line is named."""

from __future__ import annotations

import codecs
import os
import select
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from convnlp.errors import UserError


@dataclass
class BadLine:
    """An input line that could not be read, and why (``where`` names the input and the line)."""

    number: int
    where: str
    problem: str


WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


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
                raise UserError(
                    f"{name}:1: the input starts with a {wide[:6].upper()} byte-order mark; set encoding={wide[:6]}"
                )
        yield _decode(raw.removesuffix(b"\n"), number, name, "utf-8" if codec == "utf-8-sig" else codec, encoding)


def _decode(raw: bytes, number: int, name: str, codec: str, encoding: str) -> str | BadLine:
    try:
        line = raw.decode(codec)
    except UnicodeDecodeError as e:
        return BadLine(
            number,
            f"{name}:{number}",
            f"cannot decode byte {raw[e.start : e.start + 1]!r} at column "
            f"{e.start + 1} as {encoding} (set encoding=...)",
        )
    line = line.removeprefix("\ufeff") if number == 1 else line
    return line[:-1] if line.endswith("\r") else line


def _wide_lines(stream, name: str, codec: str) -> Iterator[str | BadLine]:
    """Lines of a UTF-16 or UTF-32 stream: split at line feeds on code-unit boundaries, each line
    decoded on its own. The byte order is the codec's, or the byte-order mark's, or little-endian."""
    unit = 4 if codec.startswith("utf-32") else 2
    buffer = stream.read(4)
    while 0 < len(buffer) < 4 and (more := stream.read(4 - len(buffer))):  # a pipe may give fewer
        buffer += more
    fixed = codec if codec.endswith(("-le", "-be")) else None
    for bom, wide in WIDE_BOMS:
        if fixed is None and len(bom) == unit and buffer.startswith(bom):
            fixed, buffer = wide, buffer[len(bom) :]
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


class PipeLines:
    """The byte lines of a pipe or a terminal, read with ``os.read`` in this thread (no reader
    thread, no buffered reader's lock), and ``ready(timeout)``: whether more input came within
    ``timeout`` seconds, so ``chunks`` can hand on what it has when the writer pauses."""

    def __init__(self, stream):
        self.stream = stream  # kept: its descriptor closes with it
        self.fd, self.buffer, self.eof = stream.fileno(), b"", False

    def _fill(self) -> bool:
        chunk = os.read(self.fd, 1 << 16)
        self.buffer += chunk
        self.eof = not chunk
        return bool(chunk)

    def ready(self, timeout: float) -> bool:
        """Whether a whole line (or the end) is there within ``timeout`` seconds: a line half
        written when the time is up does not hold up the lines before it."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while b"\n" not in self.buffer and not self.eof:
            if not select.select([self.fd], [], [], max(deadline - time.monotonic(), 0.0))[0]:
                return False
            self._fill()
        return True

    def read(self, size: int = -1) -> bytes:
        """What has come (``size`` bytes at most), waiting only when nothing has: as a raw read."""
        if not self.buffer and not self.eof:
            self._fill()
        size = len(self.buffer) if size < 0 else size
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while b"\n" not in self.buffer:
            if self.eof or not self._fill():
                if not self.buffer:
                    raise StopIteration
                line, self.buffer = self.buffer, b""
                return line
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def chunks(
    items: Iterable, size: int, wait: float = 0.0, ready: Callable[[float], bool] | None = None
) -> Iterator[list]:
    """Lists of at most ``size`` of ``items``. Without ``ready`` (a file): full lists. With
    ``ready`` (``PipeLines.ready`` of a pipe or a terminal): a list is also handed on when the next
    item has not come ``wait`` seconds after the list's first one, so a reader whose writer pauses
    gets each answer promptly while a steady stream still goes in full batches."""
    items = iter(items)
    while chunk := list(islice(items, 1)):
        deadline = time.monotonic() + wait
        while len(chunk) < size and (ready is None or ready(deadline - time.monotonic())):
            item = next(items, _END)
            if item is _END:
                break
            chunk.append(item)
        yield chunk


_END = object()
