"""Symbol vocabularies built with HuggingFace `tokenizers`, and the encoding of sentences.

- ``char``: one symbol per character. A sentence is read as its words joined by single spaces,
  so the model sees word boundaries; we record where each word starts and ends.
- ``word``: one symbol per word.

Either way, ``encode`` returns the symbol ids and, per word, the index of its first and last
symbol: the task head pools word vectors from those positions. The tokenizer is saved as
``tokenizer.json`` in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

from convnlp.errors import UserError

PAD, UNK = "<pad>", "<unk>"
PAD_ID = 0


def build(kind: str, sentences: Iterable[list[str]], min_frequency: int = 1,
          lowercase: bool = False, max_vocab: int = 0) -> Tokenizer:
    """Train a character or word vocabulary on tokenized sentences (the training split)."""
    tokenizer = Tokenizer(WordLevel(unk_token=UNK))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    if kind == "char":
        # Every character, spaces and newlines included, is its own piece.
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        texts = (" ".join(words) for words in sentences)
    elif kind == "word":
        texts = (word for words in sentences for word in words)
    else:
        raise UserError(f"tokenizer={kind!r} is not known; choose one of: char, word")
    trainer = WordLevelTrainer(
        vocab_size=(max_vocab + 2) if max_vocab else 1 << 30,
        min_frequency=min_frequency,
        special_tokens=[PAD, UNK],  # PAD gets id 0, which the model's embedding keeps at zero
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def kind_of(tokenizer: Tokenizer) -> str:
    return "char" if tokenizer.pre_tokenizer is not None else "word"


def encode(tokenizer: Tokenizer, sentences: list[list[str]]) -> tuple[list, list, list]:
    """Symbol ids and each word's first and last symbol index, for a batch of sentences."""
    if kind_of(tokenizer) == "word":
        encodings = tokenizer.encode_batch([list(s) for s in sentences], is_pretokenized=True,
                                           add_special_tokens=False)
        ids = [e.ids for e in encodings]
        firsts = [list(range(len(s))) for s in sentences]
        return ids, firsts, firsts
    encodings = tokenizer.encode_batch([" ".join(s) for s in sentences], add_special_tokens=False)
    ids, firsts, lasts = [], [], []
    for words, encoding in zip(sentences, encodings):
        first, last, position = [], [], 0
        for word in words:
            first.append(position)
            last.append(position + max(len(word), 1) - 1)
            position += len(word) + 1
        if len(encoding.ids) != max(position - 1, 0):  # one id per character, or the offsets lie
            raise UserError(f"tokenizer produced {len(encoding.ids)} symbols for {position - 1} characters")
        ids.append(encoding.ids)
        firsts.append(first)
        lasts.append(last)
    return ids, firsts, lasts


def save(tokenizer: Tokenizer, path: Path) -> None:
    tokenizer.save(str(path))


def load(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
        raise UserError(f"{path}: not a valid tokenizer file ({str(e).splitlines()[0]})") from None
