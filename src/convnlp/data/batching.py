"""Token-count batches with length bucketing, and padding into tensors.

Sentences of similar length go together, so little of a batch is padding; a batch holds at
most ``batch_tokens`` symbols, padding included. A sentence longer than that forms a batch of
its own: nothing is ever dropped.
"""

from __future__ import annotations

import random

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


def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    longest = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), max(longest, 1)), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def pad_features(features: list[list[tuple[int, ...]]], width: int) -> torch.Tensor:
    """(B, width, F) word-feature ids of each symbol (``convnlp.data.features``), 0 as padding."""
    count = next((len(seq[0]) for seq in features if seq), 0)
    out = torch.zeros((len(features), width, count), dtype=torch.long)
    for row, seq in enumerate(features):
        if seq:
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def lengths_to_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.as_tensor(lengths)[:, None]


def collate(ids: list[list[int]], firsts: list[list[int]], lasts: list[list[int]],
            tags: list[list[int]] | None = None,
            features: list[list[tuple[int, ...]]] | None = None) -> dict[str, torch.Tensor]:
    """Pad one batch. Word positions of padding words point at symbol 0 and are masked out."""
    batch = {
        "ids": pad(ids, PAD_ID),                   # (B, T)
        "first": pad(firsts, 0),                   # (B, W)
        "last": pad(lasts, 0),                     # (B, W)
    }
    batch["mask"] = lengths_to_mask([len(s) for s in ids], batch["ids"].shape[1])        # (B, T)
    batch["word_mask"] = lengths_to_mask([len(f) for f in firsts], batch["first"].shape[1])  # (B, W)
    if tags is not None:
        batch["tags"] = pad(tags, IGNORE)          # (B, W)
    if features is not None:
        batch["features"] = pad_features(features, batch["ids"].shape[1])  # (B, T, F)
    return batch
