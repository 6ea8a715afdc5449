"""Token-count batches with length bucketing, and padding into tensors.

Sentences of similar length go together, so little of a batch is padding; a batch holds at
most ``batch_tokens`` symbols, padding included. A sentence longer than that forms a batch of
its own: nothing is ever dropped.
"""

from __future__ import annotations

import random
from array import array

import torch

from convnlp.data.tokenizer import PAD_ID

IGNORE = -100  # target of padding and of tags never seen in training: no loss, never "correct"


def token_batches(lengths: list[int], batch_tokens: int, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """Indices of examples grouped into batches of at most ``batch_tokens`` padded symbols."""
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)  # ties in length are broken randomly, so batches differ per epoch
    order.sort(key=lambda i: lengths[i])
    batches, batch, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if batch and longest_if_added * (len(batch) + 1) > batch_tokens:
            batches.append(batch)
            batch, longest_if_added = [], lengths[i]
        batch.append(i)
        longest = longest_if_added
    if batch:
        batches.append(batch)
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad(sequences: list[list[int]], value: int, length: int | None = None) -> torch.Tensor:
    """(B, length) of the sequences, padded with ``value`` (``length``: the longest, at least 1,
    unless given): one flat list, one tensor."""
    longest = max(max((len(s) for s in sequences), default=0), 1) if length is None else length
    flat = []
    for seq in sequences:
        flat += seq
        flat += [value] * (longest - len(seq))
    return _long_tensor(flat).view(len(sequences), longest)


def pad_features(features: list[list[int]], ids: list[list[int]]) -> torch.Tensor:
    """(B, T, F) word-feature ids of each symbol, 0 as padding, from each sequence's flat list of
    F ids per symbol (``convnlp.data.features``); T as ``pad(ids)`` makes it."""
    width = max(max((len(s) for s in ids), default=0), 1)
    count = next((len(f) // len(i) for i, f in zip(ids, features) if i), 0)  # 0: every sequence empty
    return pad(features, 0, count * width).view(len(features), width, count)


def _long_tensor(values: list[int]) -> torch.Tensor:
    """A 1-D int64 tensor of a list of ints: through an ``array`` (a C loop), several times
    faster than ``torch.tensor`` on a long list."""
    if not values:
        return torch.zeros(0, dtype=torch.long)
    return torch.frombuffer(array("q", values), dtype=torch.long)


def lengths_to_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.as_tensor(lengths)[:, None]


def collate(
    ids: list[list[int]],
    firsts: list[list[int]],
    lasts: list[list[int]],
    tags: list[list[int]] | None = None,
    features: list[list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Pad one batch. Word positions of padding words point at symbol 0 and are masked out."""
    batch = {
        "ids": pad(ids, PAD_ID),  # (B, T)
        "first": pad(firsts, 0),  # (B, W)
        "last": pad(lasts, 0),  # (B, W)
    }
    batch["mask"] = lengths_to_mask([len(s) for s in ids], batch["ids"].shape[1])  # (B, T)
    batch["word_mask"] = lengths_to_mask([len(f) for f in firsts], batch["first"].shape[1])  # (B, W)
    if tags is not None:
        batch["tags"] = pad(tags, IGNORE)  # (B, W)
    if features is not None:
        batch["features"] = pad_features(features, ids)  # (B, T, F)
    return batch
