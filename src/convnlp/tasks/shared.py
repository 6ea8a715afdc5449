"""What every task does the same way."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import torch

from convnlp.data.batching import lengths_to_mask, pad
from convnlp.data.tokenizer import PAD_ID
from convnlp.registry import at_least, fraction, option


def embedding_dim_option(default: int):
    return option(default, at_least(1), help="the symbol embedding's size (the encoder's input width)")


def dropout_option(default: float, help: str = ""):
    return option(default, fraction(), help=help)


def log_scalars(writer, prefix: str, result: dict, step: int) -> None:
    """Every number of a metrics dict to TensorBoard, as ``<prefix>/<key>``."""
    for key, value in result.items():
        if isinstance(value, (int, float)):
            writer.add_scalar(f"{prefix}/{key}", value, step)


def count_unseen(
    items: Iterable[str], known: Iterable[str], where: str, what: str, consequence: str, log: logging.Logger
) -> dict[str, int]:
    """Counts of ``items`` (tags, labels, target tokens of an evaluation split) that are not in
    ``known`` (what training saw), most common first; warned about once, naming the five most
    common: they are never dropped, and ``consequence`` says what becomes of them."""
    known = set(known)
    unseen = Counter(item for item in items if item not in known)
    if unseen:
        shown = ", ".join(f"{item} ({n})" for item, n in unseen.most_common(5))
        log.warning("%s: %d %s never seen in training: %s; %s", where, sum(unseen.values()), what, shown, consequence)
    return dict(unseen.most_common())


def sequence_batch(ids: list[list[int]], targets: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """A batch of symbol ids (padded, with their mask) and, given, of target label ids (padded with
    label 0, with their lengths): generation's and the autoencoder's."""
    batch = {"ids": pad(ids, PAD_ID)}
    batch["mask"] = lengths_to_mask([len(s) for s in ids], batch["ids"].shape[1])
    if targets is not None:
        batch["target"] = pad(targets, 0)  # (B, S)
        batch["target_lengths"] = torch.as_tensor([len(t) for t in targets], dtype=torch.long)
    return batch
