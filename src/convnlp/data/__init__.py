"""Named datasets and file readers, all returning ``datasets.Dataset`` objects.

Tagging data has the columns ``tokens`` (list of str) and ``tags`` (list of str);
classification data has ``text`` (str) and ``label`` (str); generation data has ``source``
(str) and ``target`` (str).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from convnlp.errors import UserError

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "validation", "test")
DESCRIPTIONS = {
    "cmudict_stress": "CMUdict lexical stress (phonemes -> stress digit per vowel), offline; "
                      "for real text use data=ud_ewt, data=conllu or data=conll",
    "cmudict_syllables": "CMUdict syllable counts (spelling -> number of syllables), offline; "
                         "for real text use data=sst2, data=mr, data=csv, data=jsonl or data=hub",
    "probe_longrange": "synthetic long-range probe (depends on the token `distance` positions away)",
    "ud_ewt": "Universal Dependencies English-EWT",
    "conllu": "CoNLL-U files",
    "conll": "whitespace-column files",
    "sst2": "Stanford Sentiment Treebank, binary sentence split",
    "mr": "MR sentence polarity (Pang & Lee), one of 10 folds",
    "csv": "CSV files with a header row",
    "tsv": "TSV files with a header row",
    "jsonl": "JSON lines files",
    "hub": "a HuggingFace dataset (hub id or local directory)",
    "cmudict_g2p": "CMUdict grapheme to phoneme (spelling -> ARPAbet with stress), offline; "
                   "for your own pairs use data=parallel",
    "parallel": "parallel source/target files (TSV, JSON lines or two aligned text files)",
}
# Which tasks each data set serves (its columns).
DATA_TASKS = {
    "cmudict_stress": ("tagging",), "ud_ewt": ("tagging",), "conllu": ("tagging",), "conll": ("tagging",),
    "probe_longrange": ("tagging", "classification"),
    "cmudict_syllables": ("classification",), "sst2": ("classification",), "mr": ("classification",),
    "csv": ("classification",), "tsv": ("classification",), "jsonl": ("classification",),
    "hub": ("classification",),
    "cmudict_g2p": ("generation",), "parallel": ("generation",),
}
COLUMNS = {"tagging": ("tokens", "tags"), "classification": ("text", "label"), "generation": ("source", "target")}
FILE_DATA = ("conllu", "conll", "csv", "tsv", "jsonl", "parallel")  # data.train / data.validation / data.test paths


def check_task(data_name: str, task: str) -> None:
    """One line when a data set cannot feed a task."""
    serves = DATA_TASKS.get(data_name, ())
    if task not in serves:
        fitting = [name for name, tasks in DATA_TASKS.items() if task in tasks]
        raise UserError(f"data={data_name} is {' and '.join(serves) or 'unknown'} data; task={task} "
                        f"needs one of: {', '.join(fitting)}")


def _per_split(cfg: DictConfig, splits, read, key: str = "{split}", what: str = "file", value: str = "PATH") -> dict:
    """``read(cfg[key])`` for each split whose key is set (``data.train``, or ``data.train_split``
    with ``key="{split}_split"``); only the training split is required."""
    raw = {}
    for split in splits:
        name = cfg.get(key.format(split=split))
        if name is None:
            if split == "train":
                raise UserError(f"data={cfg.name} needs a training {what}: data.{key.format(split='train')}={value}")
            continue
        raw[split] = read(name)
    return raw


def load_splits(cfg: DictConfig, splits: tuple[str, ...] = SPLITS, task: str = "tagging") -> "datasets.DatasetDict":
    """Load the requested splits of the configured data set (``cfg`` is the ``data`` group).

    Splits a file-based config leaves empty (``data.test: null``) are left out, except ``train``.
    """
    import datasets

    from convnlp.data import (cmudict_g2p, cmudict_stress, cmudict_syllables, labeled, parallel,
                              probe_longrange, readers, sentiment, ud_ewt)

    check_task(cfg.name, task)
    if cfg.name == "cmudict_stress":
        raw = cmudict_stress.load(cfg.validation_percent, cfg.test_percent)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "cmudict_syllables":
        raw = cmudict_syllables.load(cfg.validation_percent, cfg.test_percent)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "cmudict_g2p":
        raw = cmudict_g2p.load(cfg.validation_percent, cfg.test_percent)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "probe_longrange":
        raw = probe_longrange.load(cfg.distance, cfg.length, cfg.alphabet, cfg.train_size, cfg.eval_size,
                                   cfg.seed, task)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "ud_ewt":
        raw = ud_ewt.load(cfg.tagset, cfg.data_dir, cfg.url, cfg.cache_dir, splits)
    elif cfg.name == "sst2":
        raw = sentiment.load_sst2(cfg.data_dir, cfg.url, cfg.cache_dir, splits)
    elif cfg.name == "mr":
        raw = sentiment.load_mr(cfg.fold, cfg.data_dir, cfg.url, cfg.cache_dir, cfg.encoding, splits)
    elif cfg.name == "conllu":
        raw = _per_split(cfg, splits, lambda path: readers.read_conllu(path, cfg.tagset, cfg.encoding))
    elif cfg.name == "conll":
        raw = _per_split(cfg, splits, lambda path: readers.read_conll(path, cfg.token_column, cfg.tag_column,
                                                                       cfg.encoding))
    elif cfg.name in ("csv", "tsv"):
        delimiter = "\t" if cfg.name == "tsv" else ","
        raw = _per_split(cfg, splits, lambda path: labeled.read_table(
            path, cfg.text_column, cfg.label_column, delimiter, cfg.encoding, cfg.skip_empty, cfg.quoting))
    elif cfg.name == "jsonl":
        raw = _per_split(cfg, splits, lambda path: labeled.read_jsonl(
            path, cfg.text_column, cfg.label_column, cfg.encoding, cfg.skip_empty))
    elif cfg.name == "parallel":
        raw = _per_split(cfg, splits, lambda path: parallel.read(
            path, cfg.format, cfg.source_column, cfg.target_column, cfg.source_suffix, cfg.target_suffix,
            cfg.encoding, cfg.skip_empty))
    elif cfg.name == "hub":
        raw = _per_split(cfg, splits, lambda name: labeled.read_hf(
            cfg.path, cfg.subset, name, cfg.text_column, cfg.label_column, cfg.revision, cfg.skip_empty),
            key="{split}_split", what="split", value="NAME")
    else:
        raise UserError(f"unknown data set {cfg.name!r}")
    first, second = COLUMNS[task]
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({first: a, second: b}) for split, (a, b) in raw.items()}
    )
