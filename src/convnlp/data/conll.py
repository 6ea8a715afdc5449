"""Your own tagging files: ``data=conllu`` (CoNLL-U, UPOS or XPOS) and ``data=conll``
(whitespace columns, CoNLL-2003 and friends); the readers are in ``readers.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from convnlp.data import per_split, split_option
from convnlp.data.readers import TAGSETS, read_conll, read_conllu
from convnlp.registry import DATASETS, option


@dataclass
class ConlluConfig:
    name: str = "conllu"
    split: str = split_option()
    train: Optional[str] = option(None, help="a CoNLL-U file (required)")
    validation: Optional[str] = None
    test: Optional[str] = None
    tagset: str = option("upos", choices=TAGSETS)
    encoding: str = "utf-8"


@dataclass
class ConllConfig:
    name: str = "conll"
    split: str = split_option()
    train: Optional[str] = option(None, help="a file of `token ... tag` lines, blank lines between sentences")
    validation: Optional[str] = None
    test: Optional[str] = None
    token_column: int = option(0, help="the column of the token (0: the first)")
    tag_column: int = option(-1, help="the column of the tag (-1: the last)")
    encoding: str = "utf-8"


@DATASETS.register(ConlluConfig, tasks=("tagging",), description="CoNLL-U files")
def load_conllu(cfg: ConlluConfig, splits, task: str) -> dict:
    return per_split(cfg, splits, lambda path: read_conllu(path, cfg.tagset, cfg.encoding))


@DATASETS.register(ConllConfig, tasks=("tagging",), description="whitespace-column files")
def load_conll(cfg: ConllConfig, splits, task: str) -> dict:
    return per_split(cfg, splits, lambda path: read_conll(path, cfg.token_column, cfg.tag_column, cfg.encoding))
