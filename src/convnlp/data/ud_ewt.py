"""Universal Dependencies English Web Treebank (UD_English-EWT, release 2.16, CC BY-SA 4.0)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convnlp.data import download, split_option
from convnlp.data.readers import TAGSETS, read_conllu
from convnlp.registry import DATASETS, option

# Release file name parts and their SHA-256, for the split names convnlp uses.
FILES = {
    "train": ("train", "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b"),
    "validation": ("dev", "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
    "test": ("test", "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
}


@dataclass
class UdEwtConfig:
    name: str = "ud_ewt"
    split: str = split_option()
    tagset: str = option("upos", choices=TAGSETS)
    data_dir: Optional[str] = option(None, help="where ud_en_ewt/ is (else $CONVNLP_DATA_DIR, else a download)")
    url: str = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/en_ewt-ud-{split}.conllu"
    cache_dir: Optional[str] = option(None, help="the download cache (else $CONVNLP_CACHE_DIR or ~/.cache/convnlp)")


def resolve(split: str, data_dir: str | None, url: str, cache: str | None) -> Path:
    """The local file for a split: from the data directory if there, else downloaded to the cache."""
    part, sha256 = FILES[split]
    data_dir = data_dir or os.environ.get("CONVNLP_DATA_DIR")
    if data_dir:
        for candidate in (
            Path(data_dir) / "ud_en_ewt" / f"{part}.conllu",
            Path(data_dir) / f"en_ewt-ud-{part}.conllu",
            Path(data_dir) / "ud_en_ewt" / f"en_ewt-ud-{part}.conllu",
        ):
            if candidate.is_file():
                return candidate
    target = download.cache_dir(cache) / "ud_en_ewt" / f"en_ewt-ud-{part}.conllu"
    return download.fetch(url.format(split=part), target, sha256, local=f"ud_en_ewt/{part}.conllu")


def load(tagset: str, data_dir: str | None, url: str, cache_dir: str | None, splits=tuple(FILES)):
    return {s: read_conllu(resolve(s, data_dir, url, cache_dir), tagset) for s in splits}


@DATASETS.register(UdEwtConfig, tasks=("tagging",), description="Universal Dependencies English-EWT")
def load_ud_ewt(cfg: UdEwtConfig, splits, task: str) -> dict:
    return load(cfg.tagset, cfg.data_dir, cfg.url, cfg.cache_dir, splits)
