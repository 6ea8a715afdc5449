"""Named datasets and file readers, all returning ``datasets.Dataset`` objects.

Tagging data has the columns ``tokens`` (list of str) and ``tags`` (list of str);
classification data has ``text`` (str) and ``label`` (str); generation data has ``source``
(str) and ``target`` (str).

Each data set is one file of this package that declares its config dataclass and registers its
loader with ``@DATASETS.register(Config, tasks=(...), description="...")`` (``convnlp.registry``):
``load(cfg, splits, task) -> {split: (first column, second column)}``, ``cfg`` being the typed
``data`` group. Its YAML is ``conf/data/<name>.yaml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convnlp.errors import UserError
from convnlp.registry import DATASETS, option

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "validation", "test")
COLUMNS = {
    "tagging": ("tokens", "tags"),
    "classification": ("text", "label"),
    "generation": ("source", "target"),
    "autoencoder": ("text",),
}
# an autoencoder reads the texts of any data set: a classification set's texts, a tagging set's
# sentences (words joined by spaces), a generation set's distinct sources
TEXTS = {
    "classification": lambda first: first,
    "tagging": lambda first: [" ".join(words) for words in first],
    "generation": lambda first: list(dict.fromkeys(first)),
}


def split_option():
    return option("validation", choices=SPLITS, help="the split `convnlp eval` evaluates")


def per_split(cfg, splits, read, key: str = "{split}", what: str = "file", value: str = "PATH") -> dict:
    """``read(cfg.<key>)`` for each split whose key is set (``data.train``, or ``data.train_split``
    with ``key="{split}_split"``); only the training split is required."""
    raw = {}
    for split in splits:
        name = getattr(cfg, key.format(split=split))
        if name is None:
            if split == "train":
                raise UserError(f"data={cfg.name} needs a training {what}: data.{key.format(split='train')}={value}")
            continue
        raw[split] = read(name)
    return raw


def serves(data_name: str) -> tuple[str, ...]:
    """The tasks a data set feeds (one with text, unless registered with ``texts=False``, feeds an
    autoencoder too)."""
    info = DATASETS[data_name].info if data_name in DATASETS else {"tasks": ()}
    tasks = tuple(info["tasks"])
    texts = info.get("texts", True) and set(tasks) & set(TEXTS) and "autoencoder" not in tasks
    return tasks + (("autoencoder",) if texts else ())


def check_task(data_name: str, task: str) -> None:
    """One line when a data set cannot feed a task."""
    if task not in serves(data_name):
        serves_now = DATASETS[data_name].info["tasks"] if data_name in DATASETS else ()
        fitting = [e.name for e in DATASETS.entries() if task in serves(e.name)]
        raise UserError(
            f"data={data_name} is {' and '.join(serves_now) or 'unknown'} data; task={task} "
            f"needs one of: {', '.join(fitting)}"
        )


def load_splits(cfg, splits: tuple[str, ...] = SPLITS, task: str = "tagging") -> datasets.DatasetDict:
    """Load the requested splits of the configured data set (``cfg``: the ``data`` group, typed
    or a DictConfig). Splits a file-based config leaves empty (``data.test: null``) are left
    out, except ``train``."""
    import datasets

    check_task(cfg.name, task)
    entry = DATASETS[cfg.name]
    raw = entry.target(DATASETS.config(_plain(cfg)), splits, task)
    if task == "autoencoder" and task not in entry.info["tasks"]:  # labeled data: its texts
        kind = next(t for t in entry.info["tasks"] if t in TEXTS)
        raw = {split: (TEXTS[kind](columns[0]),) for split, columns in raw.items()}
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(dict(zip(COLUMNS[task], columns))) for split, columns in raw.items()}
    )


def _plain(cfg) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)


def hold_out(splits: datasets.DatasetDict, fraction: float, seed: int) -> datasets.DatasetDict:
    """``trainer.holdout``: data without a validation split gets one, ``fraction`` of the training
    examples chosen by ``seed`` (the rest stays the training split); data with one is returned as it is."""
    if not fraction or "validation" in splits:
        return splits
    train = splits["train"]
    held = max(1, round(fraction * len(train)))
    if held >= len(train):
        raise UserError(f"trainer.holdout={fraction:g}: {len(train)} training example(s) are too few to hold out any")
    parts = train.train_test_split(test_size=held, seed=seed, shuffle=True)
    return type(splits)({**splits, "train": parts["train"], "validation": parts["test"]})
