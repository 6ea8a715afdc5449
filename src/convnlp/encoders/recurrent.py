"""LSTM and BiLSTM baselines behind the same contract as the convolutional encoders."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class RecurrentEncoder(nn.Module):
    """A (bi)LSTM over the unpadded part of each sequence (packed), so padding never enters.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, output_dim]`` with
    ``output_dim = hidden`` (``2 * hidden`` if bidirectional); masked positions are zero. The
    mask must be a prefix (real positions first), as every batch in convnlp is. Receptive field:
    unbounded (``math.inf``).
    """

    receptive_field = math.inf

    def __init__(self, input_dim: int, hidden: int = 128, layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.1):
        """``encoder=lstm`` is this with ``bidirectional=False``, ``encoder=bilstm`` with True."""
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, H)
        return self.dropout(out) * mask[..., None].to(out.dtype)
