"""Embedding -> encoder -> task head: the whole network, built from plain config dicts."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.data.tokenizer import PAD_ID
from convnlp.encoders import build_encoder


class Model(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, embedding_dropout: float,
                 encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder
        self.head = head

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.dropout(self.embedding(batch["ids"]))  # (B, T, E)
        h = self.encoder(x, batch["mask"])               # (B, T, C)
        return self.head(h, batch["mask"], batch)        # task-shaped scores


def build_model(task: dict, encoder: dict, vocab_size: int, num_labels: int) -> Model:
    """The model for a task and encoder config (plain dicts, e.g. a checkpoint's config.json).
    The head comes from the fixed table of tasks, never from a name or path in the config."""
    from convnlp.tasks import TASKS

    if task["name"] not in TASKS:
        raise ValueError(f"unknown task {task['name']!r}")
    enc = build_encoder(encoder, input_dim=task["embedding_dim"])
    head = TASKS[task["name"]].build_head(task, enc.output_dim, num_labels)
    return Model(vocab_size, task["embedding_dim"], task["embedding_dropout"], enc, head)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
