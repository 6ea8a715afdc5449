"""Tagging: one label per token (part of speech, named entities, stress).

The encoder reads symbols (characters by default); this head pools a vector per word from its
first / last / all symbols, reads the word sequence with a small dilated convolution stack,
and scores tags with a linear layer. Also here: the loss, the metrics, and how sentences of
any length are tagged (in overlapping windows when longer than ``predict_max_chars``).

Data columns (``COLUMNS``): ``tokens`` (list of str) and ``tags`` (list of str). The functions the trainer,
``eval`` and ``predict`` call are listed in ``convnlp/tasks/__init__.py``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.data import features as feats
from convnlp.data import tokenizer as tok
from convnlp.data.batching import IGNORE, collate, token_batches
from convnlp.encoders.dilated import DilatedConfig, DilatedEncoder
from convnlp.registry import TASKS, at_least, odd, option, zero_or_more
from convnlp.tasks.shared import (
    count_unseen,
    dropout_option,
    embedding_dim_option,
    log_scalars,
)

log = logging.getLogger(__name__)

COLUMNS = ("tokens", "tags")
OUTPUT_FIELDS = ("tokens", "tags")  # the fields of a `convnlp predict` record (null with an error)
SELECT = ("auto", "accuracy", "f1", "precision", "recall")  # trainer.select: auto is f1 for BIO tags


@dataclass
class TaggingConfig:
    name: str = "tagging"
    embedding_dim: int = embedding_dim_option(64)
    embedding_dropout: float = dropout_option(0.1)
    token_dropout: float = dropout_option(0.0, "symbols replaced by <unk> in training")
    features: list[str] = feats.features_option()
    feature_rows: int = feats.feature_rows_option()
    pooling: str = option(
        "first_last", choices=("first", "last", "mean", "first_last"), help="a word's vector from its symbols"
    )
    word_layers: int = option(3, zero_or_more(), help="dilated convolutions over the word vectors")
    word_kernel: int = option(3, odd())
    word_dropout: float = dropout_option(0.2)
    predict_max_chars: int = option(2000, at_least(1), help="longer sentences are tagged in overlapping windows")
    predict_context_words: int = option(16, zero_or_more(), help="words of context on each side of a window")


class TaggingHead(nn.Module):
    """``forward(h[B, T, C], mask[B, T], batch) -> logits[B, W, num_tags]`` using ``batch``'s
    ``first``, ``last`` (B, W) symbol indices of each word and ``word_mask`` (B, W)."""

    def __init__(self, cfg: TaggingConfig, input_dim: int, num_tags: int):
        super().__init__()
        self.pooling = cfg.pooling
        pooled_dim = 2 * input_dim if cfg.pooling == "first_last" else input_dim
        self.context = None
        if cfg.word_layers > 0:
            self.context = DilatedEncoder(
                DilatedConfig(
                    width=input_dim,
                    kernel=cfg.word_kernel,
                    dilations=[2**i for i in range(cfg.word_layers)],
                    blocks=1,
                    dropout=cfg.word_dropout,
                ),
                pooled_dim,
            )
        self.output = nn.Linear(input_dim if cfg.word_layers > 0 else pooled_dim, num_tags)

    def pool(self, h: torch.Tensor, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        def at(index):  # (B, W) -> (B, W, C)
            return h.gather(1, index[..., None].expand(-1, -1, h.shape[-1]))

        if self.pooling == "first":
            return at(first)
        if self.pooling == "last":
            return at(last)
        if self.pooling == "first_last":
            return torch.cat([at(first), at(last)], dim=-1)
        # mean over first..last: differences of a running sum, (B, T + 1, C)
        running = F.pad(h.cumsum(dim=1), (0, 0, 1, 0))
        expand = (-1, -1, h.shape[-1])
        total = running.gather(1, (last + 1)[..., None].expand(*expand)) - running.gather(
            1, first[..., None].expand(*expand)
        )
        return total / (last - first + 1).clamp(min=1)[..., None].to(h.dtype)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, batch: dict) -> torch.Tensor:
        words = self.pool(h, batch["first"], batch["last"])  # (B, W, C')
        words = words * batch["word_mask"][..., None].to(words.dtype)
        if self.context is not None:
            words = self.context(words, batch["word_mask"])  # (B, W, C)
        return self.output(words)  # (B, W, num_tags)


def build_head(cfg: TaggingConfig, input_dim: int, num_labels: int, decoder=None) -> TaggingHead:
    return TaggingHead(cfg, input_dim, num_labels)


def loss(logits: torch.Tensor, batch: dict, task: dict | None = None) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over real words with a known tag, and how many such words."""
    targets = batch["tags"]
    count = int((targets != IGNORE).sum())
    value = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum")
    return value / max(count, 1), count


# ------------------------------------------------------------------------------- encoding


def report_unseen_tags(tags: list[list[str]], labels: list[str], where: str) -> dict[str, int]:
    """Counts of tags the label vocabulary lacks, warned about once; they count as errors."""
    return count_unseen(
        (t for sentence in tags for t in sentence), labels, where, "token(s) carry tags", "they count as errors", log
    )


def encode_words(tokenizer, sentences: list[list[str]], features=None) -> dict[str, list]:
    """Symbol ids, each word's first and last symbol, and (with ``features``, a
    ``WordFeatures``) each symbol's word-feature ids."""
    ids, firsts, lasts = tok.encode(tokenizer, sentences)
    encoded = {"ids": ids, "first": firsts, "last": lasts}
    if features is not None:
        encoded["features"] = [
            features.symbols(words, f, la, len(i)) for words, i, f, la in zip(sentences, ids, firsts, lasts)
        ]
    return encoded


def prediction_batches(tokenizer, sentences: list[list[str]], features, batch_tokens: int) -> tuple[dict, list]:
    """What prediction feeds the model: ``encode_words`` of the sentences, and the indices of
    each batch of at most ``batch_tokens`` symbols."""
    encoded = encode_words(tokenizer, sentences, features)
    return encoded, token_batches([len(i) for i in encoded["ids"]], batch_tokens, shuffle=False)


def encode_split(
    tokens: list[list[str]], tags: list[list[str]], tokenizer, labels: list[str], where: str, features=None
) -> dict[str, list]:
    """``encode_words`` and tag ids. Tags unknown to the label vocabulary are kept as IGNORE
    (they count as errors in evaluation) and reported once."""
    encoded = encode_words(tokenizer, tokens, features)
    index = {label: i for i, label in enumerate(labels)}
    encoded["unseen_tags"] = report_unseen_tags(tags, labels, where)
    encoded["tags"] = [[index.get(t, IGNORE) for t in sentence] for sentence in tags]
    return encoded


def label_vocabulary(split, task: dict | None = None, tokenizer=None) -> list[str]:
    return sorted({t for sentence in split["tags"] for t in sentence})


def tokenizer_examples(split) -> list[list[str]]:
    """What the vocabulary is trained on: the training sentences' words."""
    return split["tokens"]


def report_unseen(split, labels: list[str], where: str, task: dict | None = None, tokenizer=None) -> dict[str, int]:
    return report_unseen_tags(split["tags"], labels, where)


def encode(split, tokenizer, labels: list[str], where: str, task: dict | None = None) -> dict[str, list]:
    """The training split as lists the batches are cut from; ``ids`` gives the lengths."""
    encoded = encode_split(split["tokens"], split["tags"], tokenizer, labels, where, feats.from_task(task))
    return {k: v for k, v in encoded.items() if k != "unseen_tags"}


def make_batch(encoded: dict[str, list], indices: list[int]) -> dict[str, torch.Tensor]:
    tags = [encoded["tags"][i] for i in indices] if "tags" in encoded else None
    features = [encoded["features"][i] for i in indices] if "features" in encoded else None
    return collate(*([encoded[k][i] for i in indices] for k in ("ids", "first", "last")), tags, features)


def describe(encoded: dict[str, list]) -> str:
    return f"{len(encoded['ids'])} sentences, {sum(len(f) for f in encoded['first'])} words"


def evaluate(model, tokenizer, labels, split, task: dict, device, batch_tokens: int) -> dict:
    """Metrics of ``split`` (columns tokens, tags) and tagging speed in words/s."""
    start = time.perf_counter()
    predicted = predict(
        model,
        tokenizer,
        labels,
        split["tokens"],
        device,
        batch_tokens=batch_tokens,
        max_chars=task["predict_max_chars"],
        context=task["predict_context_words"],
        features=feats.from_task(task),
    )
    seconds = time.perf_counter() - start
    result = metrics(split["tags"], predicted)
    result["words_per_s"] = result["tokens"] / max(seconds, 1e-9)
    return result


log_metrics = log_scalars  # numbers only


def read_input(line: str) -> list[str]:
    """One sentence per input line, whitespace-separated tokens."""
    return line.split()


def predict_records(
    model, tokenizer, labels, inputs: list[list[str]], device, task: dict, batch_tokens: int = 8000
) -> list[dict]:
    tags = predict(
        model,
        tokenizer,
        labels,
        inputs,
        device,
        batch_tokens=batch_tokens,
        max_chars=task["predict_max_chars"],
        context=task["predict_context_words"],
        features=feats.from_task(task),
    )
    return [{"tokens": words, "tags": word_tags} for words, word_tags in zip(inputs, tags)]


# -------------------------------------------------------------------------------- metrics

_BIO = re.compile(r"^(O|[BIESL]-.+)$")


def is_bio(tags) -> bool:
    """Whether tags are entity tags (O, B-X, I-X; E-, S-, L- too) with at least one entity tag."""
    tagset = set(tags)
    return bool(tagset) and all(_BIO.match(t) for t in tagset) and tagset != {"O"}


def metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Token accuracy; entity precision / recall / F1 (seqeval) when the tags are BIO-style."""
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    result = {"accuracy": sum(g == p for g, p in pairs) / max(len(pairs), 1), "tokens": len(pairs)}
    if is_bio(g for g, _ in pairs):
        from seqeval.metrics import f1_score, precision_score, recall_score

        result.update(
            precision=float(precision_score(gold, predicted)),
            recall=float(recall_score(gold, predicted)),
            f1=float(f1_score(gold, predicted)),
        )
    return result


# ----------------------------------------------------------------------------- prediction


def windows(word_lengths: list[int], max_chars: int, context: int) -> list[tuple[int, int, int, int]]:
    """Split a sentence into (window_start, window_end, core_start, core_end) word spans.

    Each window holds at most ``max_chars`` characters (words plus separating spaces), with up
    to ``context`` words on either side of its core (fewer where they would not fit). Every word
    is in exactly one core, so every word gets a tag; only a single word longer than
    ``max_chars`` makes a longer window.
    """
    n = len(word_lengths)
    prefix = [0]
    for length in word_lengths:
        prefix.append(prefix[-1] + length + 1)

    def chars(a, b):
        return prefix[b] - prefix[a] - 1

    if chars(0, n) <= max_chars:
        return [(0, n, 0, n)]
    spans, start = [], 0
    while start < n:
        margin = context  # shrink the context until one core word and its context fit
        while margin > 0 and chars(max(0, start - margin), min(n, start + 1 + margin)) > max_chars:
            margin -= 1
        left, end = max(0, start - margin), start + 1
        while end < n and chars(left, min(n, end + 1 + margin)) <= max_chars:
            end += 1
        spans.append((left, min(n, end + margin), start, end))
        start = end
    return spans


@torch.no_grad()
def predict(
    model: nn.Module,
    tokenizer,
    labels: list[str],
    sentences: list[list[str]],
    device: torch.device,
    batch_tokens: int = 8000,
    max_chars: int = 2000,
    context: int = 16,
    features=None,
) -> list[list[str]]:
    """Tags for every word of every sentence, however long (``features``: the model's
    ``WordFeatures``, if it reads any)."""
    model.eval()
    pieces = []  # (sentence, window start, core start, core end)
    for s, words in enumerate(sentences):
        if words:
            for a, b, c, d in windows([len(w) for w in words], max_chars, context):
                pieces.append((s, a, b, c, d))
    texts = [sentences[s][a:b] for s, a, b, _, _ in pieces]
    encoded, batches = prediction_batches(tokenizer, texts, features, batch_tokens)
    out = [[None] * len(words) for words in sentences]
    for batch_index in batches:
        batch = {k: v.to(device) for k, v in make_batch(encoded, batch_index).items()}
        best = model(batch).argmax(-1).cpu().tolist()  # (B, W)
        for row, i in enumerate(batch_index):
            s, a, _, c, d = pieces[i]
            for w in range(c, d):
                out[s][w] = labels[best[row][w - a]]
    return out


TASKS.add(TaggingConfig, sys.modules[__name__], select=SELECT)
