"""Hashed word features: what a word looks like, as extra input next to its symbols.

spaCy's CPU models get most of their accuracy from cheap lexical attributes of each word,
hashed into embedding tables (Bloom embeddings); ``task.features`` gives convnlp the same input
option. Each named feature of a word is a string:

- ``lower``: the word lowercased;
- ``prefixN`` / ``suffixN``: its first / last N characters (N = 1..9), e.g. ``suffix3``;
- ``shape``: its letters as ``X``/``x``, digits as ``d``, other characters kept, runs cut at 4
  (``McDonald's`` -> ``XxXxxxx'x``, ``1990s`` -> ``ddddx``).

Each value is hashed (CRC-32 of the feature's name and value: stable across processes and
machines, unlike Python's ``hash``) into ``rows - 1`` rows of that feature's block of one table;
row 0 is the padding row. Every symbol of a word (each character of it, or the word itself for
``tokenizer=word``) carries the word's feature ids; symbols between words (the spaces a
character model reads) carry none. The model sums the rows into the symbol's embedding.
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_right
from functools import lru_cache

from convnlp.errors import UserError
from convnlp.registry import Check, at_least, option

FEATURE_NAME = re.compile(r"^(lower|shape|prefix[1-9]|suffix[1-9])$")


def features_option():
    """``task.features``: the hashed word features to add (empty: none)."""
    return option(
        [],
        Check(
            lambda v: all(isinstance(n, str) and FEATURE_NAME.match(n) for n in v) and len(set(v)) == len(v),
            "must list word features, each once: lower, shape, prefixN, suffixN (N = 1..9)",
        ),
        help="hashed word features: lower, shape, prefixN, suffixN",
    )


def feature_rows_option():
    return option(5000, at_least(2, "row 0 is padding"), help="rows of the feature table")


CACHE_LIMIT = 500_000  # word types remembered; the cache starts over beyond this


def shape(word: str) -> str:
    out, last, run = [], "", 0
    for ch in word:
        s = "X" if ch.isupper() else "x" if ch.isalpha() else "d" if ch.isdigit() else ch
        run = run + 1 if s == last else 1
        last = s
        if run <= 4:
            out.append(s)
    return "".join(out)


def value(name: str, word: str) -> str:
    if name == "lower":
        return word.lower()
    if name == "shape":
        return shape(word)
    n = int(name[6:])
    return word[:n] if name.startswith("prefix") else word[-n:]


def check(names, rows: int, where: str = "task.features") -> None:
    """One line for a feature name that is not known, a repeated one, or too few rows."""
    for name in names:
        if not isinstance(name, str) or not FEATURE_NAME.match(name):
            raise UserError(
                f"{where}: {name!r} is not a word feature; use lower, shape, prefixN or suffixN "
                "(N = 1..9), e.g. [lower,prefix1,suffix3,shape]"
            )
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise UserError(f"{where}: {', '.join(repeated)} given more than once")
    if names and rows < 2:
        raise UserError(f"task.feature_rows={rows} must be at least 2 (row 0 is padding)")


class WordFeatures:
    """Feature ids of words: ``len(names)`` ids per word, feature ``k``'s in rows
    ``[k * rows + 1, (k + 1) * rows)`` of one table of ``len(names) * rows`` rows."""

    def __init__(self, names, rows: int):
        check(names, rows)
        self.names, self.rows = tuple(names), rows
        self.none = (0,) * len(self.names)  # a symbol that belongs to no word
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def table_rows(self) -> int:
        return len(self.names) * self.rows

    def word(self, word: str) -> tuple[int, ...]:
        ids = self._cache.get(word)
        if ids is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            ids = self._cache[word] = tuple(
                k * self.rows
                + 1
                + zlib.crc32(f"{name}\x1f{value(name, word)}".encode("utf-8", "surrogatepass")) % (self.rows - 1)
                for k, name in enumerate(self.names)
            )
        return ids

    def symbols(self, words: list[str], firsts: list[int], lasts: list[int], length: int) -> list[int]:
        """The ids of a sentence of ``length`` symbols, flat: ``len(names)`` per symbol, those
        of the word the symbol is part of (zeros for a symbol between words)."""
        out = []
        if length == len(words) and firsts == list(range(length)):  # one symbol per word
            for w in words:
                out += self.word(w)
            return out
        owner = [-1] * length  # the word each symbol belongs to; a word with no symbol of its own
        for i, (a, b) in enumerate(zip(firsts, lasts)):  # points at the next word's first one,
            owner[a : b + 1] = [i] * (b + 1 - a)  # which that next word then takes back
        for i in owner:
            out += self.none if i < 0 else self.word(words[i])
        return out

    def text(self, pieces: list[tuple[str, tuple[int, int]]], starts: list[int]) -> list[int]:
        """The ids of a raw text's symbols, flat: per symbol those of the word piece (``pieces``:
        (word, (start, end)) from a pre-tokenizer) whose span holds the symbol's start offset;
        zeros between words."""
        bounds = [span[0] for _, span in pieces]
        out = []
        for start in starts:
            k = bisect_right(bounds, start) - 1
            out += self.word(pieces[k][0]) if k >= 0 and start < pieces[k][1][1] else self.none
        return out


def setting(task: dict | None) -> tuple[tuple[str, ...], int] | None:
    """A task config's word features as (names, rows), or None without any (``feature_rows``
    then does not matter)."""
    names = (task or {}).get("features") or []
    return (tuple(names), int(task.get("feature_rows", 0))) if names else None


def from_task(task: dict | None) -> WordFeatures | None:
    """The run's word features (``task.features``, ``task.feature_rows``), or None without any."""
    chosen = setting(task)
    return _shared(*chosen) if chosen else None


@lru_cache(maxsize=8)
def _shared(names: tuple[str, ...], rows: int) -> WordFeatures:
    return WordFeatures(names, rows)  # one per setting, so its cache of words lasts across calls
