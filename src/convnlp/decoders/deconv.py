"""The deconvolutional decoder: compress the encoder output to a code, grow it back with
transposed convolutions to exactly ``max_length`` positions, let it settle with
length-preserving residual convolutions, and score the target vocabulary at every position.

    encoder output (B, T, C)
      bottleneck  vector:   max over real positions -> linear -> code (B, W, 1)
                  sequence: the positions laid into a window of ``source_length`` (zeros after
                            the source), 1x1 projection, then ``down`` stride-2 convolutions
                            -> code (B, W, ceil(source_length / 2**down))
      upsampling  transposed convolutions (kernel k, stride s, padding (k - s) // 2), each
                  giving (L - 1) * s - 2 * padding + k positions, until at least max_length;
                  cropped to max_length; a learned position vector is added
      resting     h + dropout(conv_d(activation(norm(h)))) for each d in rest_dilations
      output      norm, linear -> (B, L, num_labels)

How many positions a source gets (``output_length``): ``fixed``, all ``max_length``; or
``source``, ``length_ratio * n + length_extra`` for a source of n symbols (at most
``max_length``). With ``source`` the batch is cropped to its longest output, positions past a
source's own output are zeroed before every resting convolution, and the loss and decoding stop
there: the same model at a fraction of the work when most sources are short (G2P: about 22 of
64 positions), with an output that lines up with the source.

No recurrence: all positions are computed in one parallel pass. The window never depends on
how much padding the batch has, so a source gets the same output in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.encoders.layers import (
    activation_option,
    dropout_option,
    make_activation,
    make_norm,
    norm_option,
)
from convnlp.errors import UserError
from convnlp.registry import DECODERS, Check, at_least, odd, option

DOWN_KERNEL = 3  # the stride-2 convolutions of the sequence bottleneck: kernel 3, padding 1


def down_length(length: int) -> int:
    """Positions after one stride-2, kernel-3, padding-1 convolution: ceil(length / 2)."""
    return (length + 2 - DOWN_KERNEL) // 2 + 1


def output_lengths(
    source_lengths: torch.Tensor,
    output_length: str = "fixed",
    max_length: int = 64,
    length_ratio: int = 2,
    length_extra: int = 6,
) -> torch.Tensor:
    """The output positions of each source (a tensor of source lengths in symbols): all
    ``max_length`` (``fixed``), or ``length_ratio * n + length_extra`` at most ``max_length``
    (``source``)."""
    if output_length == "fixed":
        return torch.full_like(source_lengths, max_length)
    return (source_lengths * length_ratio + length_extra).clamp(max=max_length)


def code_lengths(bottleneck: str, source_length: int, down: int) -> list[int]:
    """The code's length after each stage of the bottleneck: [1] for a vector; for a sequence
    the window, then the length after each stride-2 convolution."""
    if bottleneck == "vector":
        return [1]
    lengths = [source_length]
    for _ in range(down):
        lengths.append(down_length(lengths[-1]))
    return lengths


def transposed_length(length: int, kernel: int, stride: int) -> int:
    """Positions after a transposed convolution with padding ``max((kernel - stride) // 2, 0)``:
    ``(length - 1) * stride - 2 * padding + kernel`` (``length * stride`` when kernel - stride is even)."""
    return (length - 1) * stride - 2 * max((kernel - stride) // 2, 0) + kernel


def upsampling_plan(
    code_length: int,
    max_length: int,
    stride: int = 2,
    kernel: int = 4,
    strides: list[int] | tuple = (),
    kernels: list[int] | tuple = (),
) -> list[dict]:
    """The transposed convolutions from ``code_length`` to at least ``max_length`` positions.

    With no explicit ``strides``, layers of ``stride`` are added until the length reaches
    ``max_length``; ``kernels`` gives one kernel per layer (empty: ``kernel`` for every layer).
    Returns one dict per layer: kernel, stride, padding, length_in, length_out.
    """
    strides = list(strides)
    if not strides:
        length = code_length
        while length < max_length:
            grown = transposed_length(length, kernel, stride)
            if grown <= length:
                raise UserError(
                    f"decoder.kernel={kernel} with decoder.stride={stride} does not grow the length "
                    f"({length} -> {grown}); use a kernel of at least the stride"
                )
            strides.append(stride)
            length = grown
    kernels = list(kernels) or [kernel] * len(strides)
    if len(kernels) != len(strides):
        raise UserError(
            f"decoder.kernels has {len(kernels)} entries but there are {len(strides)} upsampling "
            f"layers (decoder.strides={strides}); give one kernel per layer or none"
        )
    plan, length = [], code_length
    for k, s in zip(kernels, strides):
        out = transposed_length(length, k, s)
        plan.append({"kernel": k, "stride": s, "padding": max((k - s) // 2, 0), "length_in": length, "length_out": out})
        length = out
    if length < max_length:
        arithmetic = " -> ".join([str(code_length)] + [str(p["length_out"]) for p in plan])
        raise UserError(
            f"decoder.strides={strides} reach {length} positions ({arithmetic}), fewer than "
            f"decoder.max_length={max_length}; add layers or leave decoder.strides empty"
        )
    return plan


@dataclass
class DeconvConfig:
    name: str = "deconv"
    bottleneck: str = option(
        "sequence",
        choices=("vector", "sequence"),
        help="sequence: the encoder positions, strided down to a short code; vector: one vector",
    )
    source_length: int = option(32, at_least(1), help="sequence: longest source in symbols")
    down: int = option(
        0,
        Check(lambda v: v >= 0, "must be 0 (the encoder positions themselves) or more"),
        help="sequence: stride-2 convolutions from the window to the code",
    )
    width: int = option(128, at_least(1), help="channels of the code and of every decoder layer")
    max_length: int = option(64, at_least(2), help="output positions: at least the longest target + 1")
    stride: int = option(2, at_least(2, "each upsampling layer must grow the length"))
    kernel: int = option(4, at_least(1))
    strides: list[int] = option(
        [],
        Check(lambda v: all(s >= 1 for s in v), "must be numbers >= 1"),
        help="explicit per-layer strides (they must reach max_length)",
    )
    kernels: list[int] = option(
        [],
        Check(lambda v: all(k >= 1 for k in v), "must be numbers >= 1"),
        help="explicit per-layer kernels (empty: `kernel` for every layer)",
    )
    rest_dilations: list[int] = option(
        [1, 2, 4, 8],
        Check(lambda v: all(d >= 1 for d in v), "must be numbers >= 1 (empty: no resting stack)"),
        help="the resting stack: one residual length-preserving conv per entry",
    )
    rest_kernel: int = option(3, odd())
    activation: str = activation_option()
    norm: str = norm_option()
    dropout: float = dropout_option(0.0)
    output_length: str = option(
        "source",
        choices=("fixed", "source"),
        help="source: length_ratio x its symbols + length_extra; fixed: max_length",
    )
    length_ratio: int = option(2, at_least(1))
    length_extra: int = option(6, at_least(1, "room for the end symbol"))
    too_long: str = option(
        "error", choices=("error", "filter"), help="a training target longer than the decoder allows: error | filter"
    )

    def check(self) -> None:
        """The length arithmetic adds up (one line naming the settings otherwise)."""
        upsampling_plan(
            code_lengths(self.bottleneck, self.source_length, self.down)[-1],
            self.max_length,
            self.stride,
            self.kernel,
            list(self.strides),
            list(self.kernels),
        )


@DECODERS.register(DeconvConfig)
class DeconvDecoder(nn.Module):
    """``forward(h[B, T, C], mask[B, T]) -> logits[B, L, num_labels]``: L is ``max_length``, or with
    ``output_length=source`` the batch's longest output (``output_lengths(mask)`` per source)."""

    def __init__(self, cfg: DeconvConfig, input_dim: int, num_labels: int):
        super().__init__()
        bottleneck, source_length, down, width, max_length = (
            cfg.bottleneck,
            cfg.source_length,
            cfg.down,
            cfg.width,
            cfg.max_length,
        )
        norm, rest_kernel, output_length = cfg.norm, cfg.rest_kernel, cfg.output_length
        if bottleneck not in ("vector", "sequence"):
            raise ValueError(f"bottleneck must be vector or sequence, got {bottleneck!r}")
        if output_length not in ("fixed", "source"):
            raise ValueError(f"output_length must be fixed or source, got {output_length!r}")
        self.output_length, self.length_ratio, self.length_extra = output_length, cfg.length_ratio, cfg.length_extra
        self.bottleneck, self.source_length, self.max_length = bottleneck, source_length, max_length
        self.activation = make_activation(cfg.activation)
        self.dropout = nn.Dropout(cfg.dropout)
        self.code_lengths = code_lengths(bottleneck, source_length, down)
        if bottleneck == "vector":
            self.code = nn.Linear(input_dim, width)
        else:
            self.project = nn.Conv1d(input_dim, width, 1)
            self.down = nn.ModuleList(nn.Conv1d(width, width, DOWN_KERNEL, stride=2, padding=1) for _ in range(down))
            self.down_norms = nn.ModuleList(make_norm(norm, width) for _ in range(down))
        self.plan = upsampling_plan(self.code_lengths[-1], max_length, cfg.stride, cfg.kernel, cfg.strides, cfg.kernels)
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(width, width, p["kernel"], p["stride"], padding=p["padding"]) for p in self.plan
        )
        self.up_norms = nn.ModuleList(make_norm(norm, width) for _ in self.plan)
        self.positions = nn.Parameter(torch.zeros(width, max_length))
        self.rest = nn.ModuleList(
            nn.Conv1d(width, width, rest_kernel, dilation=d, padding=d * (rest_kernel - 1) // 2)
            for d in cfg.rest_dilations
        )
        self.rest_norms = nn.ModuleList(make_norm(norm, width) for _ in cfg.rest_dilations)
        self.final_norm = make_norm(norm, width)
        self.output = nn.Linear(width, num_labels)

    def lengths(self) -> list[tuple[str, int]]:
        """(stage, length after it) from the code to the output: the decoder's length arithmetic."""
        rows = []
        if self.bottleneck == "vector":
            rows.append(("code: pooled vector", 1))
        else:
            rows.append((f"window of {self.source_length}", self.source_length))
            for i, length in enumerate(self.code_lengths[1:]):
                rows.append((f"down[{i}] conv k={DOWN_KERNEL} s=2", length))
        for i, p in enumerate(self.plan):
            rows.append((f"up[{i}] deconv k={p['kernel']} s={p['stride']} p={p['padding']}", p["length_out"]))
        rows.append(("crop to max_length", self.max_length))
        if self.output_length == "source":
            rows.append(
                (f"a source of n symbols: min({self.length_ratio}n + {self.length_extra}, max_length)", self.max_length)
            )
        return rows

    def output_lengths(self, mask: torch.Tensor) -> torch.Tensor:
        """(B,) output positions of each source, from the encoder mask."""
        return output_lengths(
            mask.sum(dim=1), self.output_length, self.max_length, self.length_ratio, self.length_extra
        )

    def encode(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The code (B, width, code_length) of the encoder output."""
        if self.bottleneck == "vector":
            pooled = h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)  # (B, C)
            pooled = pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)
            return self.code(pooled)[:, :, None]
        length = self.source_length
        if h.shape[1] > length:
            if mask[:, length:].any():
                longest = int(mask.sum(dim=1).max())
                raise ValueError(f"a source of {longest} symbols does not fit decoder.source_length={length}")
            h, mask = h[:, :length], mask[:, :length]
        x = h.transpose(1, 2) * mask[:, None, :].to(h.dtype)  # (B, C, T)
        x = F.pad(x, (0, length - x.shape[-1]))  # (B, C, S)
        m = F.pad(mask, (0, length - mask.shape[-1]))[:, None, :].to(x.dtype)
        x = self.project(x) * m
        for conv, norm in zip(self.down, self.down_norms):
            x = self.activation(norm(conv(x)))
        return x

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor, batch: dict | None = None, scored: int | None = None
    ) -> torch.Tensor:
        """``scored``: only the first ``scored`` positions are scored over the vocabulary (the
        rest are computed as ever: the same scores there; a large vocabulary's output layer is most
        of the work, and training needs scores only up to the batch's longest target)."""
        x = self.encode(h, mask)
        for conv, norm in zip(self.up, self.up_norms):
            x = self.dropout(self.activation(norm(conv(x))))
        x = x[:, :, : self.max_length] + self.positions  # (B, W, max_length)
        keep = None
        if self.output_length == "source":
            lengths = self.output_lengths(mask)
            if not torch.jit.is_tracing():  # an exported graph keeps max_length positions: the same
                x = x[:, :, : int(lengths.max())]  # scores at each source's own positions  (B, W, L)
            keep = (torch.arange(x.shape[-1], device=x.device) < lengths[:, None])[:, None, :].to(x.dtype)
        for conv, norm in zip(self.rest, self.rest_norms):
            h = self.activation(norm(x))
            x = x + self.dropout(conv(h if keep is None else h * keep))
        if scored is not None:
            x = x[:, :, :scored]
        return self.output(self.final_norm(x).transpose(1, 2))  # (B, L, V)
