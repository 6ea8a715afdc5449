"""Named datasets and file readers, all returning ``datasets.Dataset`` objects.

Tagging data has the columns ``tokens`` (list of str) and ``tags`` (list of str);
classification data has ``text`` (str) and ``label`` (str); generation data has ``source``
(str) and ``target`` (str).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from omegaconf import DictConfig

from convnlp.errors import UserError

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "validation", "test")
COLUMNS = {"tagging": ("tokens", "tags"), "classification": ("text", "label"), "generation": ("source", "target")}


class DataSet(NamedTuple):
    """A named data set (``data=<name>``): the tasks it serves, a line for the log, and its
    loader ``load(cfg, splits, task) -> {split: (first column, second column)}``, ``cfg`` being
    the ``data`` group."""
    tasks: tuple[str, ...]
    description: str
    load: Callable[[DictConfig, tuple[str, ...], str], dict]


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


def _cmudict(module: str):
    """A CMUdict data set split by a hash of the word (all three splits come at once)."""
    def load(cfg, splits, task):
        from importlib import import_module

        raw = import_module(f"convnlp.data.{module}").load(cfg.validation_percent, cfg.test_percent)
        return {s: raw[s] for s in splits}
    return load


def _probe(cfg, splits, task):
    from convnlp.data import probe_longrange

    raw = probe_longrange.load(cfg.distance, cfg.length, cfg.alphabet, cfg.train_size, cfg.eval_size, cfg.seed, task)
    return {s: raw[s] for s in splits}


def _ud_ewt(cfg, splits, task):
    from convnlp.data import ud_ewt

    return ud_ewt.load(cfg.tagset, cfg.data_dir, cfg.url, cfg.cache_dir, splits)


def _sst2(cfg, splits, task):
    from convnlp.data import sentiment

    return sentiment.load_sst2(cfg.data_dir, cfg.url, cfg.cache_dir, splits)


def _mr(cfg, splits, task):
    from convnlp.data import sentiment

    return sentiment.load_mr(cfg.fold, cfg.data_dir, cfg.url, cfg.cache_dir, cfg.encoding, splits)


def _conllu(cfg, splits, task):
    from convnlp.data import readers

    return _per_split(cfg, splits, lambda path: readers.read_conllu(path, cfg.tagset, cfg.encoding))


def _conll(cfg, splits, task):
    from convnlp.data import readers

    return _per_split(cfg, splits, lambda path: readers.read_conll(path, cfg.token_column, cfg.tag_column,
                                                                   cfg.encoding))


def _table(delimiter: str):
    def load(cfg, splits, task):
        from convnlp.data import labeled

        return _per_split(cfg, splits, lambda path: labeled.read_table(
            path, cfg.text_column, cfg.label_column, delimiter, cfg.encoding, cfg.skip_empty, cfg.quoting))
    return load


def _jsonl(cfg, splits, task):
    from convnlp.data import labeled

    return _per_split(cfg, splits, lambda path: labeled.read_jsonl(
        path, cfg.text_column, cfg.label_column, cfg.encoding, cfg.skip_empty))


def _hub(cfg, splits, task):
    from convnlp.data import labeled

    return _per_split(cfg, splits, lambda name: labeled.read_hf(
        cfg.path, cfg.subset, name, cfg.text_column, cfg.label_column, cfg.revision, cfg.skip_empty),
        key="{split}_split", what="split", value="NAME")


def _parallel(cfg, splits, task):
    from convnlp.data import parallel

    return _per_split(cfg, splits, lambda path: parallel.read(
        path, cfg.format, cfg.source_column, cfg.target_column, cfg.source_suffix, cfg.target_suffix,
        cfg.encoding, cfg.skip_empty))


# Every named data set, one entry each (its config is conf/data/<name>.yaml).
DATASETS: dict[str, DataSet] = {
    "cmudict_stress": DataSet(("tagging",), "CMUdict lexical stress (phonemes -> stress digit per vowel), offline; "
                              "for real text use data=ud_ewt, data=conllu or data=conll", _cmudict("cmudict_stress")),
    "ud_ewt": DataSet(("tagging",), "Universal Dependencies English-EWT", _ud_ewt),
    "conllu": DataSet(("tagging",), "CoNLL-U files", _conllu),
    "conll": DataSet(("tagging",), "whitespace-column files", _conll),
    "probe_longrange": DataSet(("tagging", "classification"),
                               "synthetic long-range probe (depends on the token `distance` positions away)", _probe),
    "cmudict_syllables": DataSet(("classification",), "CMUdict syllable counts (spelling -> number of syllables), "
                                 "offline; for real text use data=sst2, data=mr, data=csv, data=jsonl or data=hub",
                                 _cmudict("cmudict_syllables")),
    "sst2": DataSet(("classification",), "Stanford Sentiment Treebank, binary sentence split", _sst2),
    "mr": DataSet(("classification",), "MR sentence polarity (Pang & Lee), one of 10 folds", _mr),
    "csv": DataSet(("classification",), "CSV files with a header row", _table(",")),
    "tsv": DataSet(("classification",), "TSV files with a header row", _table("\t")),
    "jsonl": DataSet(("classification",), "JSON lines files", _jsonl),
    "hub": DataSet(("classification",), "a HuggingFace dataset (hub id or local directory)", _hub),
    "cmudict_g2p": DataSet(("generation",), "CMUdict grapheme to phoneme (spelling -> ARPAbet with stress), "
                           "offline; for your own pairs use data=parallel", _cmudict("cmudict_g2p")),
    "parallel": DataSet(("generation",), "parallel source/target files (TSV, JSON lines or two aligned text files)",
                        _parallel),
}


def check_task(data_name: str, task: str) -> None:
    """One line when a data set cannot feed a task."""
    serves = DATASETS[data_name].tasks if data_name in DATASETS else ()
    if task not in serves:
        fitting = [name for name, entry in DATASETS.items() if task in entry.tasks]
        raise UserError(f"data={data_name} is {' and '.join(serves) or 'unknown'} data; task={task} "
                        f"needs one of: {', '.join(fitting)}")


def load_splits(cfg: DictConfig, splits: tuple[str, ...] = SPLITS, task: str = "tagging") -> "datasets.DatasetDict":
    """Load the requested splits of the configured data set (``cfg`` is the ``data`` group).

    Splits a file-based config leaves empty (``data.test: null``) are left out, except ``train``.
    """
    import datasets

    check_task(cfg.name, task)
    raw = DATASETS[cfg.name].load(cfg, splits, task)
    first, second = COLUMNS[task]
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({first: a, second: b}) for split, (a, b) in raw.items()}
    )
