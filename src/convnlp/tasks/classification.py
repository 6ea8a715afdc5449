"""Classification: one label per text (sentiment, spam, topic, syllable count).

The encoder reads the text's symbols (characters, words or subwords); the head reduces the
sequence to one vector and scores the classes with a linear layer. Reduction, configured in
``conf/task/classification.yaml``:

- ``conv_blocks > 0``: DPCNN-style reduction first (Johnson & Zhang 2017): blocks of two
  pre-activation residual convolutions, with a max pool of stride 2 between blocks, so the
  model itself shrinks the sequence (and its reach doubles at each block);
- then ``pooling``: ``max``, ``mean`` or ``attention`` over the positions that remain.

Padding never affects a text's result: masked positions are -inf for max pooling, left out of
means and attention, and zeroed before every convolution.

Data columns (``COLUMNS``): ``text`` (str) and ``label`` (str). The functions the trainer, ``eval`` and
``predict`` call are listed in ``convnlp/tasks/__init__.py``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.data import features as feats
from convnlp.data import tokenizer as tok
from convnlp.data.batching import (
    IGNORE,
    lengths_to_mask,
    pad,
    pad_features,
    token_batches,
)
from convnlp.encoders.layers import MaskedConv1d
from convnlp.registry import TASKS, odd, option, zero_or_more
from convnlp.tasks.shared import (
    count_unseen,
    dropout_option,
    embedding_dim_option,
    log_scalars,
)

log = logging.getLogger(__name__)

COLUMNS = ("text", "label")
OUTPUT_FIELDS = ("text", "label", "probabilities")  # the fields of a `convnlp predict` record (null with an error)
SELECT = ("auto", "accuracy", "macro_f1")  # trainer.select: auto is accuracy


@dataclass
class ClassificationConfig:
    name: str = "classification"
    embedding_dim: int = embedding_dim_option(128)
    embedding_dropout: float = dropout_option(0.5)
    token_dropout: float = dropout_option(0.25, "symbols replaced by <unk> in training")
    features: list[str] = feats.features_option()
    feature_rows: int = feats.feature_rows_option()
    pooling: str = option("max", choices=("max", "mean", "attention"))
    conv_blocks: int = option(0, zero_or_more("no reduction"), help="DPCNN reduction blocks before pooling")
    conv_kernel: int = option(3, odd())
    hidden: int = option(0, zero_or_more("no hidden layer"), help="a hidden layer before the output")
    dropout: float = dropout_option(0.5, "before the output layer")


class ConvReduction(nn.Module):
    """``blocks`` DPCNN blocks: ``h + conv(relu(conv(relu(h))))``, each block after the first
    preceded by a max pool (kernel 3, stride 2) over real positions. ``forward(h[B, T, C],
    mask[B, T]) -> (h[B, T', C], mask[B, T'])`` with ``T' = ceil(T / 2**(blocks - 1))``."""

    def __init__(self, width: int, blocks: int, kernel: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([MaskedConv1d(width, width, kernel), MaskedConv1d(width, width, kernel)])
            for _ in range(blocks)
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = h.transpose(1, 2)  # (B, C, T)
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        for i, (first, second) in enumerate(self.blocks):
            if i > 0:  # halve the length: a text of L positions keeps ceil(L / 2), as unpadded
                x = F.max_pool1d(x.masked_fill(m == 0, float("-inf")), 3, stride=2, padding=1)
                lengths = (m.sum(dim=-1) + 1) // 2  # (B, 1)
                m = (torch.arange(x.shape[-1], device=x.device) < lengths[..., None]).to(x.dtype)
                x = x.masked_fill(m == 0, 0.0)
            x = (x + second(F.relu(first(F.relu(x), m)), m)) * m
        return x.transpose(1, 2), m[:, 0] > 0


class ClassificationHead(nn.Module):
    """``forward(h[B, T, C], mask[B, T], batch) -> logits[B, num_labels]``."""

    def __init__(self, cfg: ClassificationConfig, input_dim: int, num_labels: int):
        super().__init__()
        pooling, conv_blocks, hidden, dropout = cfg.pooling, cfg.conv_blocks, cfg.hidden, cfg.dropout
        if pooling not in ("max", "mean", "attention"):
            raise ValueError(f"pooling must be max, mean or attention, got {pooling!r}")
        self.pooling = pooling
        self.reduce = ConvReduction(input_dim, conv_blocks, cfg.conv_kernel) if conv_blocks else None
        if pooling == "attention":
            self.attention = nn.Sequential(nn.Linear(input_dim, input_dim), nn.Tanh(), nn.Linear(input_dim, 1))
        self.dropout = nn.Dropout(dropout)
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.output = nn.Sequential(*layers, nn.Linear(hidden or input_dim, num_labels))

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C), (B, T) -> (B, C); a text with no real position pools to zeros."""
        real = mask[..., None]  # (B, T, 1)
        any_real = mask.any(dim=1, keepdim=True)  # (B, 1)
        if self.pooling == "max":
            pooled = h.masked_fill(~real, float("-inf")).amax(dim=1)
            return pooled.masked_fill(~any_real, 0.0)
        if self.pooling == "mean":
            return (h * real).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
        scores = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
        weights = torch.softmax(scores.float(), dim=1).nan_to_num(0.0).to(h.dtype)
        return (weights[..., None] * h).sum(dim=1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        if self.reduce is not None:
            h, mask = self.reduce(h, mask)
        return self.output(self.dropout(self.pool(h, mask)))


def build_head(cfg: ClassificationConfig, input_dim: int, num_labels: int, decoder=None) -> ClassificationHead:
    return ClassificationHead(cfg, input_dim, num_labels)


def loss(logits: torch.Tensor, batch: dict, task: dict | None = None) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the batch's texts with a known label, and how many there are."""
    targets = batch["label"]
    count = int((targets != IGNORE).sum())
    value = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum")
    return value / max(count, 1), count


# ------------------------------------------------------------------------------- encoding


def label_vocabulary(split, task: dict | None = None, tokenizer=None) -> list[str]:
    """The training labels, in numeric order when they are all numbers (``2`` before ``10``)."""
    labels = set(split["label"])
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def tokenizer_examples(split) -> list[str]:
    return split["text"]


def report_unseen(split, labels: list[str], where: str, task: dict | None = None, tokenizer=None) -> dict[str, int]:
    """Counts of labels the model does not know, warned about once; those texts count as errors."""
    return count_unseen(split["label"], labels, where, "text(s) carry labels", "they count as errors", log)


def encode_texts(tokenizer, texts: list[str], features=None) -> dict[str, list]:
    """Symbol ids, and (with ``features``, a ``WordFeatures``) each symbol's word-feature ids:
    those of the word (as the ``word`` tokenizer splits text) the symbol starts in."""
    if features is None:
        return {"ids": tok.encode_texts(tokenizer, texts)}
    ids, starts = tok.encode_texts_with_offsets(tokenizer, texts)
    return {"ids": ids, "features": [features.text(tok.words(text), s) for text, s in zip(texts, starts)]}


def encode(split, tokenizer, labels: list[str], where: str, task: dict | None = None) -> dict[str, list]:
    index = {label: i for i, label in enumerate(labels)}
    report_unseen(split, labels, where)
    return {
        **encode_texts(tokenizer, split["text"], feats.from_task(task)),
        "label": [index.get(label, IGNORE) for label in split["label"]],
    }


def make_batch(encoded: dict[str, list], indices: list[int]) -> dict[str, torch.Tensor]:
    ids = [encoded["ids"][i] for i in indices]
    batch = {"ids": pad(ids, tok.PAD_ID)}
    batch["mask"] = lengths_to_mask([len(s) for s in ids], batch["ids"].shape[1])
    if "features" in encoded:
        batch["features"] = pad_features([encoded["features"][i] for i in indices], ids)
    if "label" in encoded:
        batch["label"] = torch.as_tensor([encoded["label"][i] for i in indices], dtype=torch.long)
    return batch


def describe(encoded: dict[str, list]) -> str:
    return f"{len(encoded['ids'])} texts"


# -------------------------------------------------------------------------------- metrics


def metrics(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """Accuracy, macro-F1 over the classes in gold or predicted (as scikit-learn computes it),
    and the confusion matrix (rows gold, columns predicted) over ``labels`` plus any gold label
    the model does not know."""
    n = len(gold)
    known = set(labels)
    classes = list(labels) + sorted({g for g in gold if g not in known})
    index = {c: i for i, c in enumerate(classes)}
    confusion = [[0] * len(classes) for _ in classes]
    for g, p in zip(gold, predicted):
        confusion[index[g]][index[p]] += 1
    f1s = []
    for c in sorted(set(gold) | set(predicted), key=index.get):
        i = index[c]
        true_positive = confusion[i][i]
        gold_count = sum(confusion[i])
        predicted_count = sum(row[i] for row in confusion)
        f1s.append(2 * true_positive / (gold_count + predicted_count) if gold_count + predicted_count else 0.0)
    return {
        "accuracy": sum(g == p for g, p in zip(gold, predicted)) / max(n, 1),
        "macro_f1": sum(f1s) / max(len(f1s), 1),
        "examples": n,
        "confusion": confusion,
        "confusion_labels": classes,
    }


def confusion_figure(confusion: list[list[int]], labels: list[str]):
    """A matplotlib figure of the confusion matrix, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    size = min(2 + 0.5 * len(labels), 16)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if len(labels) <= 30:
        top = max((max(row) for row in confusion), default=0)
        for i, row in enumerate(confusion):
            for j, count in enumerate(row):
                axes.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    color="white" if count > top / 2 else "black",
                    fontsize=8,
                )
    figure.tight_layout()
    return figure


def log_metrics(writer, prefix: str, result: dict, step: int) -> None:
    """Scalars and the confusion matrix image to TensorBoard."""
    log_scalars(writer, prefix, result, step)
    if result.get("confusion"):
        writer.add_figure(
            f"{prefix}/confusion", confusion_figure(result["confusion"], result["confusion_labels"]), step, close=True
        )


# ----------------------------------------------------------------------------- prediction


@torch.no_grad()
def probabilities(
    model: nn.Module, tokenizer, texts: list[str], device: torch.device, batch_tokens: int = 8000, features=None
) -> torch.Tensor:
    """Class probabilities (N, num_labels) of every text, batched by symbol count
    (``features``: the model's ``WordFeatures``, if it reads any)."""
    model.eval()
    encoded = encode_texts(tokenizer, texts, features)
    out = [None] * len(texts)
    for indices in token_batches([len(i) for i in encoded["ids"]], batch_tokens, shuffle=False):
        batch = {k: v.to(device) for k, v in make_batch(encoded, indices).items()}
        probs = torch.softmax(model(batch).float(), dim=-1).cpu()
        for row, i in enumerate(indices):
            out[i] = probs[row]
    return torch.stack(out) if out else torch.zeros(0)


def evaluate(model, tokenizer, labels, split, task: dict, device, batch_tokens: int) -> dict:
    """Metrics of ``split`` (columns text, label) and speed in texts/s and words/s."""
    start = time.perf_counter()
    probs = probabilities(model, tokenizer, split["text"], device, batch_tokens, feats.from_task(task))
    seconds = time.perf_counter() - start
    predicted = [labels[i] for i in probs.argmax(-1).tolist()] if len(probs) else []
    result = metrics(split["label"], predicted, labels)
    result["texts_per_s"] = len(predicted) / max(seconds, 1e-9)
    result["words_per_s"] = sum(len(t.split()) for t in split["text"]) / max(seconds, 1e-9)
    return result


def read_input(line: str) -> str:
    """One text per input line."""
    return line.strip()


def predict_records(
    model, tokenizer, labels, inputs: list[str], device, task: dict, batch_tokens: int = 8000
) -> list[dict]:
    """The label and class probabilities of each text; an empty text gets ``label: null``."""
    texts = [t for t in inputs if t]
    probs = (
        probabilities(model, tokenizer, texts, device, batch_tokens, feats.from_task(task)).tolist() if texts else []
    )
    records, row = [], 0
    for text in inputs:
        if not text:
            records.append({"text": text, "label": None, "probabilities": None, "error": "empty text"})
            continue
        p = probs[row]
        row += 1
        best = max(range(len(labels)), key=p.__getitem__)
        records.append(
            {"text": text, "label": labels[best], "probabilities": {label: round(q, 6) for label, q in zip(labels, p)}}
        )
    return records


TASKS.add(ClassificationConfig, sys.modules[__name__], select=SELECT)
