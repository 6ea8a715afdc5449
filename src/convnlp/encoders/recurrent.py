"""LSTM and BiLSTM baselines behind the same contract as the convolutional encoders."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from convnlp.encoders.layers import dropout_option
from convnlp.registry import ENCODERS, at_least, option


@dataclass
class BilstmConfig:
    name: str = "bilstm"
    hidden: int = option(128, at_least(1), help="units per direction")
    layers: int = option(1, at_least(1))
    bidirectional: bool = True
    dropout: float = dropout_option(0.1)


@dataclass
class LstmConfig:
    name: str = "lstm"
    hidden: int = option(256, at_least(1), help="units")
    layers: int = option(1, at_least(1))
    bidirectional: bool = False
    dropout: float = dropout_option(0.1)


@ENCODERS.register(LstmConfig, size="hidden")
@ENCODERS.register(BilstmConfig, size="hidden")
class RecurrentEncoder(nn.Module):
    """A (bi)LSTM over the unpadded part of each sequence (packed), so padding never enters.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, output_dim]`` with
    ``output_dim = hidden`` (``2 * hidden`` if bidirectional); masked positions are zero. The
    mask must be a prefix (real positions first), as every batch in convnlp is. Receptive field:
    unbounded (``math.inf``).
    """

    receptive_field = math.inf

    def __init__(self, cfg: BilstmConfig | LstmConfig, input_dim: int):
        """``encoder=lstm`` is this with ``bidirectional=False``, ``encoder=bilstm`` with True."""
        super().__init__()
        self.lstm = nn.LSTM(
            input_dim,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_dim = cfg.hidden * (2 if cfg.bidirectional else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, H)
        return self.dropout(out) * mask[..., None].to(out.dtype)
