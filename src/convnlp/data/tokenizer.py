"""Symbol vocabularies built with HuggingFace `tokenizers`, and the encoding of sentences.

- ``char``: one symbol per character. A sentence is read as its words joined by single spaces,
  so the model sees word boundaries; we record where each word starts and ends.
- ``word``: one symbol per word (``WordLevel``). Tokenized sentences keep their words; raw text
  is split on whitespace and punctuation.
- ``bpe``: subwords (HF ``BPE`` with an end-of-word marker) trained on the training split.

A vocabulary is trained on either tokenized sentences (lists of words: tagging) or raw texts
(strings: classification). ``encode`` returns the symbol ids and, per word, the index of its
first and last symbol: the tagging head pools word vectors from those positions. The tokenizer
is saved as ``tokenizer.json`` in every checkpoint.

Special tokens (``tokenizer.special_tokens``, and the matches of ``tokenizer.special_pattern`` in
the training texts) are read as one symbol wherever they occur, by every kind: ``V;PST`` or
``<en>`` in a character source is one symbol, not five or four letters. They are HF added
tokens of the saved tokenizer, so prediction reads them the same way.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
)
from tokenizers.models import BPE, WordLevel
from tokenizers.trainers import BpeTrainer

from convnlp.errors import UserError
from convnlp.registry import TOKENIZERS, Check, at_least, option, zero_or_more

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1  # in every vocabulary built here
KINDS = ("char", "word", "bpe")
END_OF_WORD = "</w>"


def _regex(v) -> bool:
    try:
        re.compile(v)
    except re.error:
        return False
    return True


def _special_tokens():
    return option([], help="read as one symbol wherever they occur")


def _special_pattern():
    return option(
        "",
        Check(_regex, "is not a valid regular expression (Python's re)"),
        help="a regular expression: its matches in the training texts are special tokens",
    )


@dataclass
class CharConfig:
    name: str = "char"
    min_frequency: int = option(1, at_least(1), help="rarer symbols become <unk>")
    lowercase: bool = False
    max_vocab: int = option(0, zero_or_more("no limit"))
    special_tokens: list[str] = _special_tokens()
    special_pattern: str = _special_pattern()


@dataclass
class WordConfig:
    name: str = "word"
    min_frequency: int = option(2, at_least(1), help="rarer words become <unk>")
    lowercase: bool = False
    max_vocab: int = option(50000, zero_or_more("no limit"), help="the most frequent words kept")
    special_tokens: list[str] = _special_tokens()
    special_pattern: str = _special_pattern()


@dataclass
class BpeConfig:
    name: str = "bpe"
    min_frequency: int = option(2, at_least(1))
    lowercase: bool = False
    max_vocab: int = option(8000, zero_or_more("no limit"), help="the vocabulary size to learn")
    special_tokens: list[str] = _special_tokens()
    special_pattern: str = _special_pattern()


for _config in (CharConfig, WordConfig, BpeConfig):
    TOKENIZERS.add(_config)


def _word_splitter() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def special_tokens(texts: Sequence[str], tokens: Sequence[str] = (), pattern: str = "") -> list[str]:
    """The given special tokens, then each distinct match of ``pattern`` in ``texts``, in order."""
    found = dict.fromkeys(t for t in tokens if t)
    if pattern:
        expression = re.compile(pattern)
        for text in texts:
            found.update(dict.fromkeys(m.group(0) for m in expression.finditer(text) if m.group(0)))
    return [t for t in found if t not in (PAD, UNK)]


def build_from(cfg, examples: Sequence[str] | Sequence[list[str]]) -> Tokenizer:
    """``build`` with a ``tokenizer`` config group's settings."""
    return build(
        cfg.name,
        examples,
        cfg.min_frequency,
        cfg.lowercase,
        cfg.max_vocab,
        list(cfg.special_tokens),
        cfg.special_pattern,
    )


def build(
    kind: str,
    examples: Sequence[str] | Sequence[list[str]],
    min_frequency: int = 1,
    lowercase: bool = False,
    max_vocab: int = 0,
    specials: Sequence[str] = (),
    special_pattern: str = "",
) -> Tokenizer:
    """Train a vocabulary on the training split: tokenized sentences or raw texts.

    ``char`` and ``word`` vocabularies are counted here and handed to ``WordLevel`` with no
    added special tokens, so text that happens to contain ``<unk>`` or ``<pad>`` is read as
    ordinary text. For ``bpe``, ``max_vocab`` is the vocabulary size to learn. ``specials`` and
    the matches of ``special_pattern`` are kept whole (see the module's docstring), whatever
    their frequency.
    """
    if kind not in KINDS:
        raise UserError(f"tokenizer={kind!r} is not known; choose one of: {', '.join(KINDS)}")
    raw = bool(examples) and isinstance(examples[0], str)
    texts = examples if raw else [" ".join(words) for words in examples]
    specials = special_tokens(texts, specials, special_pattern)
    normalizer = normalizers.Lowercase() if lowercase else None

    def normalize(text: str) -> str:
        return normalizer.normalize_str(text) if normalizer else text

    if kind == "bpe":
        tokenizer = Tokenizer(BPE(unk_token=UNK, end_of_word_suffix=END_OF_WORD))
        tokenizer.pre_tokenizer = _word_splitter()
        tokenizer.decoder = decoders.BPEDecoder(suffix=END_OF_WORD)
        if normalizer:
            tokenizer.normalizer = normalizer
        trainer = BpeTrainer(
            vocab_size=max_vocab or 8000,
            min_frequency=min_frequency,
            special_tokens=[PAD, UNK, *specials],
            end_of_word_suffix=END_OF_WORD,
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return tokenizer

    if specials:  # what is left between the special tokens is counted as usual
        between = re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)))
        texts = [piece for text in texts for piece in between.split(text)]
        if not raw:
            whole = set(specials)
            examples = [[w for w in words if w not in whole] for words in examples]
    splitter = _word_splitter() if kind == "word" and raw else None
    counts: Counter[str] = Counter()
    if kind == "char":
        for text in texts:
            counts.update(normalize(text))  # a string counts as its characters
    elif splitter is not None:
        for text in texts:
            counts.update(piece for piece, _ in splitter.pre_tokenize_str(normalize(text)))
    else:
        for words in examples:
            counts.update(normalize(w) for w in words)
    kept = sorted(
        (s for s, n in counts.items() if n >= min_frequency and s not in (PAD, UNK) and s not in specials),
        key=lambda s: (-counts[s], s),
    )
    if max_vocab:
        kept = kept[:max_vocab]
    vocab = {s: i for i, s in enumerate([PAD, UNK, *specials, *kept])}  # PAD_ID is 0
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    if normalizer:
        tokenizer.normalizer = normalizer
    if kind == "char":  # every character, spaces and newlines included, is its own piece
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    elif splitter is not None:
        tokenizer.pre_tokenizer = splitter
    if specials:  # matched in the raw text before normalizing and splitting
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in specials])
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Symbol ids of raw texts."""
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def encode_texts_with_offsets(tokenizer: Tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Symbol ids of raw texts, and where each symbol starts in its text."""
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [e.ids for e in encodings], [[start for start, _ in e.offsets] for e in encodings]


_WORDS = None


def words(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The words of a raw text as the ``word`` tokenizer splits it (whitespace, then
    punctuation), each with its (start, end) in the text."""
    global _WORDS
    if _WORDS is None:
        _WORDS = _word_splitter()
    return _WORDS.pre_tokenize_str(text)


def kind_of(tokenizer: Tokenizer) -> str:
    if isinstance(tokenizer.model, BPE):
        return "bpe"
    return "char" if isinstance(tokenizer.pre_tokenizer, pre_tokenizers.Split) else "word"


@lru_cache(maxsize=4)
def _word_ids(tokenizer: Tokenizer):
    """For a ``word`` vocabulary that splits nothing further: ids of given words by a dict lookup
    (what ``WordLevel`` does, without its per-call cost), normalized as the tokenizer would; else None."""
    if tokenizer.pre_tokenizer is not None or kind_of(tokenizer) != "word":
        return None
    vocab, normalizer = tokenizer.get_vocab(), tokenizer.normalizer
    unk = vocab.get(UNK, UNK_ID)
    if normalizer is None:
        return lambda words: [vocab.get(w, unk) for w in words]
    return lambda words: [vocab.get(normalizer.normalize_str(w), unk) for w in words]


def encode(tokenizer: Tokenizer, sentences: list[list[str]]) -> tuple[list, list, list]:
    """Symbol ids and each word's first and last symbol index, for a batch of sentences."""
    lookup = _word_ids(tokenizer)
    if lookup is not None:  # one id per given word, whatever it holds
        ids = [lookup(words) for words in sentences]
        firsts = [list(range(len(s))) for s in sentences]
        return ids, firsts, firsts
    if kind_of(tokenizer) == "word":
        encodings = tokenizer.encode_batch([list(s) for s in sentences], is_pretokenized=True, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        for words, row in zip(sentences, ids):
            if len(row) != len(words):
                raise UserError(f"word tokenizer gave {len(row)} ids for {len(words)} words: {' '.join(words)[:80]}")
        firsts = [list(range(len(s))) for s in sentences]
        return ids, firsts, firsts
    encodings = tokenizer.encode_batch([" ".join(s) for s in sentences], add_special_tokens=False)
    ids, firsts, lasts = [], [], []
    for words, encoding in zip(sentences, encodings):
        # Symbols map back to character spans of the joined text (a normalizer such as
        # lowercasing may turn one character into two symbols, and a word may be several
        # subwords, so count through the offsets).
        starts = [start for start, _ in encoding.offsets]
        first, last, position = [], [], 0
        for word in words:
            a = bisect_left(starts, position)
            b = bisect_left(starts, position + max(len(word), 1)) - 1
            first.append(min(a, len(starts) - 1))
            last.append(max(b, first[-1]))
            position += len(word) + 1
        ids.append(encoding.ids)
        firsts.append(first)
        lasts.append(last)
    return ids, firsts, lasts


def save(tokenizer: Tokenizer, path: Path) -> None:
    try:
        tokenizer.save(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for an I/O error
        raise OSError(f"{path}: {str(e).splitlines()[0]}") from None


def load(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
        raise UserError(f"{path}: not a valid tokenizer file ({str(e).splitlines()[0]})") from None
