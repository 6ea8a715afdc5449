"""Sentence codes: the autoencoder's head (``task=autoencoder``). The encoder's output is reduced
to one fixed-size code per text, and a decoder grows the text back from that code alone.

    encoder output (B, T, C)
      pool        strided: the positions laid into a window of decoder.max_length (zeros after
                  the text), then stride-2 convolutions (kernel 3) down to one position, as
                  Zhang et al.'s encoder: the code knows where each symbol was      (B, C)
                  max: the maximum over real positions (any length; where is lost)  (B, C)
      code        linear -> z (B, D); variational: mean and log-variance (B, 2D), z sampled in
                  training (z = mean + eps * std), the mean otherwise
      decoder     reads z as a one-position memory (B, 1, D):
                  deconv: grows it to decoder.max_length positions, every position scored in
                          one pass (the vector bottleneck, fixed output length: Zhang et al. 2017)
                  convs2s / lstm: one symbol after the other, attending to that one position
                          (so only the code links the output to the input); Bowman et al.'s word
                          dropout replaces decoder inputs by <unk> in training (word_dropout)

The KL term of a variational code, KL(q(z|x) || N(0, I)) per dimension averaged over the batch,
is weighted by ``kl_weight * min(1, batches / kl_anneal_steps)`` (a linear warm-up from 0, counted
in training batches: the count is a buffer, so a resumed run goes on from it) and each dimension's
KL is held at least at ``free_bits`` nats (Kingma et al. 2016), so the optimizer gains nothing by
pushing a dimension's information below that: both fight posterior collapse.

``forward`` returns ``(logits, penalty)``: the decoder's scores (B, L, V) and the weighted KL
term in nats per text (a scalar; 0 for a plain code), which ``tasks/autoencoder.py`` adds to the
reconstruction loss.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.decoders import build_decoder, is_autoregressive, search
from convnlp.decoders.deconv import DOWN_KERNEL
from convnlp.encoders.layers import make_norm

END, UNK_LABEL = 1, 3  # the end symbol, and <unk> in an autoencoder's labels (tasks/autoencoder.py)
PATHS = ("line", "slerp")
POOLS = ("strided", "max")


def decoder_for_codes(decoder: dict) -> dict:
    """The decoder config an autoencoder builds: deconv reads the code as a vector and always
    writes ``max_length`` positions (the output length must come from the code, not from the
    input's length); an autoregressive decoder as it is."""
    if is_autoregressive(decoder):
        return dict(decoder)
    return {**decoder, "bottleneck": "vector", "output_length": "fixed"}


class CodeAutoencoder(nn.Module):
    """``forward(h[B, T, C], mask[B, T], batch) -> (logits[B, L, V], penalty[])``; ``code`` gives
    the codes of encoder outputs, ``generate`` the symbols decoded from codes."""

    def __init__(
        self,
        input_dim: int,
        num_labels: int,
        decoder: dict,
        code_dim: int = 256,
        pool: str = "max",
        variational: bool = False,
        kl_weight: float = 1.0,
        kl_anneal_steps: int = 0,
        free_bits: float = 0.0,
        word_dropout: float = 0.0,
    ):
        super().__init__()
        self.code_dim, self.variational = code_dim, variational
        self.kl_weight, self.kl_anneal_steps, self.free_bits = kl_weight, kl_anneal_steps, free_bits
        self.word_dropout = word_dropout
        self.to_code = nn.Linear(input_dim, code_dim * (2 if variational else 1))
        self.decoder_config = decoder_for_codes(decoder)
        self.autoregressive = is_autoregressive(decoder)
        self.decoder = build_decoder(self.decoder_config, code_dim, num_labels)
        self.max_length = self.decoder_config["max_length"]
        self.pool, self.window = pool, self.max_length
        steps = (self.window - 1).bit_length() if pool == "strided" else 0  # ceil(log2 window) halvings: one left
        self.down = nn.ModuleList(
            nn.Conv1d(input_dim, input_dim, DOWN_KERNEL, stride=2, padding=1) for _ in range(steps)
        )
        self.down_norms = nn.ModuleList(make_norm("layer", input_dim) for _ in self.down)
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))  # training batches: the KL clock

    # ---------------------------------------------------------------------------- the code

    def posterior(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code's mean (B, D) and, variational, its log-variance (B, D)."""
        out = self.to_code(self.pooled(h, mask))
        if not self.variational:
            return out, None
        mean, log_var = out.chunk(2, dim=-1)
        return mean, log_var.clamp(-10.0, 10.0)

    def pooled(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C): the encoder output reduced to one vector per text (``pool``)."""
        if self.pool == "max":
            pooled = h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)  # (B, C)
            return pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)
        if h.shape[1] > self.window:
            if mask[:, self.window :].any():
                raise ValueError(
                    f"a text of {int(mask.sum(dim=1).max())} symbols is longer than the window of {self.window}"
                )
            h, mask = h[:, : self.window], mask[:, : self.window]
        x = (h * mask[..., None].to(h.dtype)).transpose(1, 2)  # (B, C, T)
        x = F.pad(x, (0, self.window - x.shape[-1]))  # (B, C, window)
        for conv, norm in zip(self.down, self.down_norms):
            x = F.gelu(norm(conv(x)))
        return x[:, :, 0]  # (B, C): one position left

    def code(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, D): the code of each text (a variational code's mean)."""
        return self.posterior(h, mask)[0]

    def kl_weight_now(self) -> float:
        """The KL term's weight at this point of training (the linear warm-up)."""
        if not self.kl_anneal_steps:
            return self.kl_weight
        return self.kl_weight * min(1.0, int(self.batches) / self.kl_anneal_steps)

    def penalty(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """The weighted KL term in nats per text, each dimension held at least at ``free_bits``."""
        per_dimension = kl_divergence(mean, log_var).mean(dim=0)  # (D,) averaged over the batch
        return self.kl_weight_now() * per_dimension.clamp(min=self.free_bits).sum()

    # ---------------------------------------------------------------------------- training

    def forward(self, h: torch.Tensor, mask: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.posterior(h, mask)
        z, penalty = mean, mean.new_zeros(())
        if self.variational:
            if self.training:
                z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            penalty = self.penalty(mean, log_var)
        if self.training:
            self.batches += 1
        return self.scores(z, batch), penalty

    def scores(self, z: torch.Tensor, batch: dict) -> torch.Tensor:
        """The decoder's scores (B, L, V) of the code ``z`` (B, D): deconv's first positions up to the
        batch's longest target (all ``max_length`` without one), an autoregressive decoder's at every
        target position (teacher forcing)."""
        memory, ones = self.memory(z)
        if not self.autoregressive:  # the positions after the batch's longest target are never scored
            return self.decoder(memory, ones, scored=batch["target"].shape[1] if "target" in batch else None)
        target = batch["target"]
        if self.training and self.word_dropout > 0:  # Bowman et al.: the prefix sometimes hidden
            drop = torch.rand(target.shape, device=target.device) < self.word_dropout
            target = target.masked_fill(drop & (target != END), UNK_LABEL)
        return self.decoder(memory, ones, {"target": target})

    @staticmethod
    def memory(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The code as a decoder's input: one position (B, 1, D) and its mask (B, 1)."""
        return z[:, None, :], torch.ones(z.shape[0], 1, dtype=torch.bool, device=z.device)

    # ---------------------------------------------------------------------------- decoding

    @torch.no_grad()
    def generate(self, z: torch.Tensor, limits: torch.Tensor | None = None) -> list[list[int]]:
        """The label ids decoded from codes ``z`` (B, D) (greedy), each without the end symbol;
        ``limits`` (B,): output positions at most (default ``decoder.max_length``)."""
        if limits is None:
            limits = torch.full((z.shape[0],), self.max_length, dtype=torch.long, device=z.device)
        if self.autoregressive:
            memory, ones = self.memory(z)
            members = search.Members.of([self.decoder], [self.decoder.start(memory, ones)])
            return search.greedy(members, limits)
        best = self.decoder(*self.memory(z)).argmax(-1).tolist()  # (B, L)
        rows = []
        for row, limit in zip(best, limits.tolist()):
            row = row[:limit]
            row = row[: row.index(END)] if END in row else row
            rows.append([a for a in row if a > 2])  # <pad> and <blank> are never output
        return rows


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) per dimension (B, D), in nats."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Code dimensions whose mean varies across texts by more than ``threshold`` (variance):
    the dimensions the decoder can use (Burda et al. 2016)."""
    if means.shape[0] < 2:
        return 0
    return int((means.float().var(dim=0) > threshold).sum())


def path(a: torch.Tensor, b: torch.Tensor, steps: int, kind: str = "line") -> torch.Tensor:
    """``steps`` + 1 codes (steps + 1, D) from ``a`` to ``b`` (D,), evenly spaced along the line
    or, ``slerp``, along the great-circle arc between them (their norms interpolated linearly:
    where most of a Gaussian's mass lies, away from the origin)."""
    t = torch.linspace(0.0, 1.0, steps + 1, device=a.device)[:, None]  # (S, 1)
    if kind == "line":
        return (1 - t) * a + t * b
    norm_a, norm_b = a.norm(), b.norm()
    unit_a, unit_b = a / norm_a.clamp(min=1e-8), b / norm_b.clamp(min=1e-8)
    angle = torch.arccos((unit_a * unit_b).sum().clamp(-1.0, 1.0))
    if float(angle) < 1e-4:  # the same direction: the line
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * angle) * unit_a + torch.sin(t * angle) * unit_b) / torch.sin(angle)
    return direction * ((1 - t) * norm_a + t * norm_b)


def build(cfg, input_dim: int, num_labels: int, decoder: dict) -> CodeAutoencoder:
    """The head from the task's typed config (``tasks/autoencoder.AutoencoderConfig``)."""
    decoder = dataclasses.asdict(decoder) if dataclasses.is_dataclass(decoder) else dict(decoder)
    return CodeAutoencoder(
        input_dim,
        num_labels,
        decoder,
        code_dim=cfg.code_dim,
        pool=cfg.pool,
        variational=cfg.variational,
        kl_weight=cfg.kl_weight,
        kl_anneal_steps=cfg.kl_anneal_steps,
        free_bits=cfg.free_bits,
        word_dropout=cfg.word_dropout,
    )
