"""Noise for a denoising autoencoder (``task.noise``): the input symbols of a training text are
corrupted afresh in every batch, the target stays the clean text, so the model learns to undo
the corruption (over characters: a spelling corrector).

Each kind is a probability per symbol, applied in this order:

- ``drop``: the symbol is deleted;
- ``swap``: the symbol trades places with the next one (a transposition, "teh");
- ``substitute``: the symbol is replaced by one drawn uniformly from the vocabulary (over
  characters: a character substitution);
- ``insert``: a symbol drawn from the vocabulary is inserted before it.

Drawn symbols are the vocabulary's ordinary ones: never <pad> or <unk>, and over characters never
whitespace, so word boundaries move only by deletion or transposition. A text never loses all its
symbols (one is kept).
"""

from __future__ import annotations

import random

from convnlp.data.tokenizer import PAD, UNK

KINDS = ("drop", "swap", "substitute", "insert")


def check(noise: dict) -> bool:
    """Known kinds, each a probability below 1."""
    return all(k in KINDS and isinstance(v, (int, float)) and 0 <= v < 1 for k, v in dict(noise).items())


def active(noise: dict | None) -> dict[str, float]:
    """The kinds that corrupt anything (probability above 0)."""
    return {k: float(v) for k, v in dict(noise or {}).items() if v}


def symbols(tokenizer) -> list[int]:
    """The ids noise may draw: every symbol but <pad>, <unk> and whitespace."""
    return [i for token, i in tokenizer.get_vocab().items() if token not in (PAD, UNK) and token.strip()]


def corrupt(ids: list[int], noise: dict[str, float], drawn: list[int], rng: random.Random) -> list[int]:
    """A corrupted copy of one text's symbol ids."""
    out = list(ids)
    if noise.get("drop"):
        kept = [a for a in out if rng.random() >= noise["drop"]]
        out = kept or [out[rng.randrange(len(out))]]
    if noise.get("swap"):
        i = 0
        while i < len(out) - 1:
            if rng.random() < noise["swap"]:
                out[i], out[i + 1] = out[i + 1], out[i]
                i += 1  # a symbol moves once
            i += 1
    if drawn and noise.get("substitute"):
        out = [drawn[rng.randrange(len(drawn))] if rng.random() < noise["substitute"] else a for a in out]
    if drawn and noise.get("insert"):
        grown = []
        for a in out:
            if rng.random() < noise["insert"]:
                grown.append(drawn[rng.randrange(len(drawn))])
            grown.append(a)
        out = grown
    return out
