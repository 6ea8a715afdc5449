"""The recurrent baseline: an attention LSTM decoder (Luong et al. 2015, "general" attention),
behind the same contract as ``convs2s`` (``autoregressive``), so that every speed and accuracy
claim of the convolutional decoder is measured against it side by side.

    input       target embedding (the symbol before) + dropout
    recurrence  a ``layers``-layer LSTM over the prefix (hidden ``width``)
    attention   a_t = attend(W_q s_t) over the encoder output; o_t = tanh(W_o [s_t; a_t])
    output      dropout, linear -> (B, S, num_labels)

Without input feeding (the attention output is not fed to the next step's input), so training
runs the LSTM over the whole prefix in one call of PyTorch's fused kernel and attends for all
positions at once: the fastest form of this baseline to train. Decoding steps the LSTM one
position at a time, carrying its (h, c): the recurrence that the convolutional decoder removes
in training, not in decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convnlp.decoders import autoregressive as ar
from convnlp.encoders.layers import dropout_option
from convnlp.registry import DECODERS, at_least, option


@dataclass
class LSTMDecoderConfig(ar.AutoregressiveOptions):
    name: str = "lstm"
    width: int = option(256, at_least(1), help="the LSTM's hidden size and the attention's width")
    embedding_dim: int = option(128, at_least(1), help="the target symbol embedding's size")
    layers: int = option(1, at_least(1))
    dropout: float = dropout_option(0.2)


@DECODERS.register(LSTMDecoderConfig)
class LSTMDecoder(nn.Module):
    """``forward(h[B, T, C], mask[B, T], batch) -> logits[B, S, num_labels]`` (teacher forcing on
    ``batch["target"]``); ``start``/``step``/``reorder`` decode incrementally (``autoregressive``)."""

    autoregressive = True
    receptive_field = float("inf")  # every symbol of the prefix, through the recurrence

    def __init__(self, cfg: LSTMDecoderConfig, input_dim: int, num_labels: int):
        super().__init__()
        width = cfg.width
        self.embedding = nn.Embedding(num_labels, cfg.embedding_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(
            cfg.embedding_dim, width, cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0
        )
        self.attention = ar.Attention(input_dim, width)
        self.query = nn.Linear(width, width, bias=False)
        self.combine = nn.Linear(2 * width, width)
        self.output = nn.Linear(width, num_labels)

    def attend(self, s: torch.Tensor, memory: dict) -> torch.Tensor:
        """LSTM outputs (B, S, W) -> attentional hidden states (B, S, W)."""
        attended = self.attention(self.query(s), memory)
        return torch.tanh(self.combine(torch.cat([s, attended], dim=-1)))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, batch: dict) -> torch.Tensor:
        memory = self.attention.memory(h, mask)
        s, _ = self.lstm(self.dropout(self.embedding(ar.shift_right(batch["target"]))))
        return self.output(self.dropout(self.attend(s, memory)))

    def start(self, h: torch.Tensor, mask: torch.Tensor) -> dict:
        shape = (h.shape[0], self.lstm.num_layers, self.lstm.hidden_size)  # batch first, for reorder
        return {"memory": self.attention.memory(h, mask), "h": h.new_zeros(shape), "c": h.new_zeros(shape)}

    def step(self, state: dict, tokens: torch.Tensor, t: int) -> torch.Tensor:
        hidden = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        s, (h, c) = self.lstm(self.embedding(tokens[:, None]), hidden)
        state["h"], state["c"] = h.transpose(0, 1), c.transpose(0, 1)
        return self.output(self.attend(s, state["memory"])[:, 0])

    reorder = staticmethod(ar.reorder_state)

    def flops(self, source_length: int) -> list[tuple[str, int]]:
        """FLOPs (2 per multiply-add) of one output symbol, by part, for a source of
        ``source_length`` encoder positions."""
        width, embedding, layers = self.lstm.hidden_size, self.lstm.input_size, self.lstm.num_layers
        recurrence = 2 * 4 * width * (embedding + width) + (layers - 1) * 2 * 4 * width * 2 * width
        return [
            (f"{layers}-layer LSTM", recurrence),
            (f"attention (source of {source_length})", 2 * (width * width + 2 * source_length * width)),
            ("combine", 2 * 2 * width * width),
            ("output", 2 * width * self.output.out_features),
        ]
