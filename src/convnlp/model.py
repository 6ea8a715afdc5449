"""Embedding -> encoder -> task head: the whole network, built from plain config dicts."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.data.features import from_task
from convnlp.data.tokenizer import PAD_ID, UNK_ID
from convnlp.encoders import build_encoder
from convnlp.registry import TASKS, from_dict


class Model(nn.Module):
    """``forward(batch) -> task-shaped scores``. ``feature_rows > 0``: hashed word features
    (``batch["features"]``, (B, T, F) ids, ``convnlp.data.features``) are summed into each
    symbol's embedding from one table of that many rows."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        embedding_dropout: float,
        encoder: nn.Module,
        head: nn.Module,
        token_dropout: float,
        feature_rows: int,
    ):
        super().__init__()
        self.token_dropout = token_dropout
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.features = (
            nn.EmbeddingBag(feature_rows, embedding_dim, mode="sum", padding_idx=0) if feature_rows else None
        )
        self.dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder
        self.head = head

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encode(batch), batch["mask"], batch)  # task-shaped scores

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's output (B, T, C): what the head reads (an autoregressive decoder reads it
        once per source and then steps, ``convnlp.decoders.search``)."""
        ids = batch["ids"]
        if self.training and self.token_dropout > 0:  # word dropout: symbols become <unk>
            drop = (torch.rand(ids.shape, device=ids.device) < self.token_dropout) & batch["mask"]
            ids = ids.masked_fill(drop, UNK_ID)
        x = self.embedding(ids)  # (B, T, E)
        features = batch.get("features")  # (B, T, F); F = 0 when every input is empty
        if self.features is not None and features.shape[-1]:
            x = x + self.feature_sum(features).view_as(x)
        x = self.dropout(x)
        return self.encoder(x, batch["mask"])  # (B, T, C)

    def feature_sum(self, features: torch.Tensor) -> torch.Tensor:
        """The sum of each symbol's feature rows, id 0 (padding) left out."""
        if torch.jit.is_tracing():  # ONNX has no EmbeddingBag: the same sum, written out
            weight = self.features.weight
            weight = torch.cat([weight.new_zeros(1, weight.shape[1]), weight[1:]])  # row 0, padding, adds nothing
            return nn.functional.embedding(features, weight).sum(dim=-2)
        return self.features(features.flatten(0, 1))


def build_model(task: dict, encoder: dict, vocab_size: int, num_labels: int) -> Model:
    """The model for a task config (with its ``decoder``, see ``tasks.task_config``) and an
    encoder config (plain dicts, e.g. a checkpoint's config.json). The head comes from the
    registry of tasks, never from a name or path in the config."""
    if task["name"] not in TASKS:
        raise ValueError(f"unknown task {task['name']!r}")
    entry = TASKS[task["name"]]
    cfg = from_dict(entry.config, {k: v for k, v in task.items() if k != "decoder"})
    enc = build_encoder(encoder, input_dim=cfg.embedding_dim)
    head = entry.target.build_head(cfg, enc.output_dim, num_labels, task.get("decoder"))
    features = from_task(task)
    return Model(
        vocab_size,
        cfg.embedding_dim,
        cfg.embedding_dropout,
        enc,
        head,
        token_dropout=cfg.token_dropout,
        feature_rows=features.table_rows if features else 0,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
