"""What every task does the same way."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

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
