"""Named datasets and file readers, all returning ``datasets.Dataset`` objects.

Tagging data has the columns ``tokens`` (list of str) and ``tags`` (list of str).
"""

from __future__ import annotations

import datasets
from omegaconf import DictConfig

from convnlp.errors import UserError

SPLITS = ("train", "validation", "test")
DESCRIPTIONS = {
    "cmudict_stress": "CMUdict lexical stress (phonemes -> stress digit per vowel), offline; "
                      "for real text use data=ud_ewt, data=conllu or data=conll",
    "probe_longrange": "synthetic long-range probe (tag = the token `distance` positions earlier)",
    "ud_ewt": "Universal Dependencies English-EWT",
    "conllu": "CoNLL-U files",
    "conll": "whitespace-column files",
}


def load_splits(cfg: DictConfig, splits: tuple[str, ...] = SPLITS) -> datasets.DatasetDict:
    """Load the requested splits of the configured data set (``cfg`` is the ``data`` group).

    Splits a file-based config leaves empty (``data.test: null``) are left out, except ``train``.
    """
    from convnlp.data import cmudict_stress, probe_longrange, readers, ud_ewt

    if cfg.name == "cmudict_stress":
        raw = cmudict_stress.load(cfg.validation_percent, cfg.test_percent)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "probe_longrange":
        raw = probe_longrange.load(cfg.distance, cfg.length, cfg.alphabet, cfg.train_size, cfg.eval_size, cfg.seed)
        raw = {s: raw[s] for s in splits}
    elif cfg.name == "ud_ewt":
        raw = ud_ewt.load(cfg.tagset, cfg.data_dir, cfg.url, cfg.cache_dir, splits)
    elif cfg.name in ("conllu", "conll"):
        raw = {}
        for split in splits:
            path = cfg.get(split)
            if path is None:
                if split == "train":
                    raise UserError(f"data={cfg.name} needs a training file: data.train=PATH")
                continue
            if cfg.name == "conllu":
                raw[split] = readers.read_conllu(path, cfg.tagset, cfg.encoding)
            else:
                raw[split] = readers.read_conll(path, cfg.token_column, cfg.tag_column, cfg.encoding)
    else:
        raise UserError(f"unknown data set {cfg.name!r}")
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({"tokens": tokens, "tags": tags})
         for split, (tokens, tags) in raw.items()}
    )
