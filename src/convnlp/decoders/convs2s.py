"""The convolutional autoregressive decoder (ConvS2S, Gehring et al. 2017; dilations as in
ByteNet, Kalchbrenner et al. 2016): causal gated convolutions over the target prefix, attention
to the encoder's output from every layer.

    input       target embedding + learned position -> linear to width: g
    each layer  y = GLU(causal_conv_d(dropout(norm(x))))        kernel k, dilation d, 2 x width
                y = (y + attend(query=(y + g) / sqrt 2)) / sqrt 2
                x = (x + y) / sqrt 2
    output      norm, dropout, linear -> (B, S, num_labels)

"Causal": position t sees positions t, t - d, ..., t - (k - 1) d of the layer below, padding
(zeros) before the first; so the scores of position t depend on the target symbols before t
only. The prefix receptive field is ``1 + sum((k - 1) * d)`` symbols.

Incremental decoding (``step``): each layer keeps the last ``(k - 1) * d + 1`` inputs of its
convolution (zeros at the start, as the padding) and computes one new position from them; the
attention keys and values are computed once per source (``start``). No position of the prefix is
computed twice; a step costs the same at every length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.decoders import autoregressive as ar
from convnlp.encoders.layers import dropout_option, norm_option
from convnlp.errors import UserError
from convnlp.registry import DECODERS, Check, at_least, option

SQRT_HALF = math.sqrt(0.5)


@dataclass
class ConvS2SConfig(ar.AutoregressiveOptions):
    name: str = "convs2s"
    width: int = option(256, at_least(1), help="channels of every decoder layer")
    embedding_dim: int = option(128, at_least(1), help="the target symbol embedding's size")
    layers: int = option(4, at_least(1))
    kernel: int = option(3, at_least(2, "a causal convolution sees the symbol before"))
    dilations: list[int] = option(
        [],
        Check(lambda v: all(d >= 1 for d in v), "must be numbers >= 1 (empty: 1 for every layer)"),
        help="one dilation per layer (ByteNet: [1, 2, 4, 8]); empty: 1 for every layer",
    )
    norm: str = norm_option()
    dropout: float = dropout_option(0.1)

    def check(self) -> None:
        if self.dilations and len(self.dilations) != self.layers:
            raise UserError(
                f"decoder.dilations has {len(self.dilations)} entries for decoder.layers={self.layers}; "
                "give one per layer or none"
            )


class CausalGLU(nn.Module):
    """``x (B, S, W) -> GLU(conv(x)) (B, S, W)``, each position from itself and the ones before."""

    def __init__(self, width: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, 2 * width, kernel, dilation=dilation)
        self.history = (kernel - 1) * dilation  # inputs before the current one that it reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x.transpose(1, 2), (self.history, 0)))  # (B, 2W, S)
        return F.glu(y, dim=1).transpose(1, 2)

    def step(self, window: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One new position ``x`` (N, W): its output (N, W) and the window (N, W, history + 1) moved on.
        The convolution at one position is one matrix product with the taps the kernel reads."""
        window = torch.cat([window[:, :, 1:], x[:, :, None]], dim=2)
        taps = window[:, :, :: self.conv.dilation[0]]  # (N, W, kernel)
        y = F.linear(taps.flatten(1), self.conv.weight.flatten(1), self.conv.bias)
        return F.glu(y, dim=1), window


@DECODERS.register(ConvS2SConfig)
class ConvS2SDecoder(nn.Module):
    """``forward(h[B, T, C], mask[B, T], batch) -> logits[B, S, num_labels]`` (teacher forcing on
    ``batch["target"]``); ``start``/``step``/``reorder`` decode incrementally (``autoregressive``)."""

    autoregressive = True

    def __init__(self, cfg: ConvS2SConfig, input_dim: int, num_labels: int):
        super().__init__()
        width, dilations = cfg.width, list(cfg.dilations) or [1] * cfg.layers
        self.max_length, self.dilations, self.kernel = cfg.max_length, dilations, cfg.kernel
        self.embedding = nn.Embedding(num_labels, cfg.embedding_dim)
        self.positions = nn.Embedding(cfg.max_length, cfg.embedding_dim)
        self.project = nn.Linear(cfg.embedding_dim, width)
        self.dropout = nn.Dropout(cfg.dropout)
        norm = (lambda: nn.LayerNorm(width)) if cfg.norm == "layer" else nn.Identity
        self.norms = nn.ModuleList(norm() for _ in dilations)
        self.convs = nn.ModuleList(CausalGLU(width, cfg.kernel, d) for d in dilations)
        self.attention = ar.Attention(input_dim, width)
        self.queries = nn.ModuleList(nn.Linear(width, width) for _ in dilations)
        self.attended = nn.ModuleList(nn.Linear(width, width) for _ in dilations)
        self.final_norm = norm()
        self.output = nn.Linear(width, num_labels)

    @property
    def receptive_field(self) -> int:
        """Target symbols the last layer's position t sees: t and the ones before it."""
        return 1 + sum((self.kernel - 1) * d for d in self.dilations)

    def embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """(B, S) symbols at positions start.. -> (B, S, width) layer input."""
        where = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.project(self.dropout(self.embedding(tokens) + self.positions(where)))

    def layer_out(self, i: int, y: torch.Tensor, g: torch.Tensor, memory: dict) -> torch.Tensor:
        """A layer's gated output ``y`` with its attention to the source added."""
        attended = self.attention((self.queries[i](y) + g) * SQRT_HALF, memory)
        return (y + self.attended[i](attended)) * SQRT_HALF

    def forward(self, h: torch.Tensor, mask: torch.Tensor, batch: dict) -> torch.Tensor:
        memory = self.attention.memory(h, mask)
        x = g = self.embed(ar.shift_right(batch["target"]))  # (B, S, W)
        for i, conv in enumerate(self.convs):
            y = conv(self.dropout(self.norms[i](x)))
            x = (x + self.dropout(self.layer_out(i, y, g, memory))) * SQRT_HALF
        return self.output(self.dropout(self.final_norm(x)))

    def start(self, h: torch.Tensor, mask: torch.Tensor) -> dict:
        windows = [h.new_zeros(h.shape[0], conv.conv.in_channels, conv.history + 1) for conv in self.convs]
        return {"memory": self.attention.memory(h, mask), "windows": windows}

    def step(self, state: dict, tokens: torch.Tensor, t: int) -> torch.Tensor:
        x = g = self.embed(tokens[:, None], t)[:, 0]  # (N, W)
        memory = state["memory"]
        for i, conv in enumerate(self.convs):
            y, state["windows"][i] = conv.step(state["windows"][i], self.norms[i](x))
            x = (x + self.layer_out(i, y[:, None], g[:, None], memory)[:, 0]) * SQRT_HALF
        return self.output(self.final_norm(x))

    reorder = staticmethod(ar.reorder_state)

    def flops(self, source_length: int) -> list[tuple[str, int]]:
        """FLOPs (2 per multiply-add) of one output symbol, by part, for a source of
        ``source_length`` encoder positions (the attention's share grows with it)."""
        width, embedding = self.project.out_features, self.project.in_features
        conv = 2 * self.kernel * width * 2 * width
        attention = 2 * (width * width + 2 * source_length * width + width * width)  # query, scores, sum, out
        return [
            ("input projection", 2 * embedding * width),
            (f"{len(self.convs)} causal GLU convolutions", len(self.convs) * conv),
            (f"{len(self.convs)} attentions (source of {source_length})", len(self.convs) * attention),
            ("output", 2 * width * self.output.out_features),
        ]
