"""Decoding with autoregressive decoders: batched greedy search and beam search, for one model or
an ensemble (the mean of the members' next-symbol log-probabilities).

Every source of a batch is decoded at once (N = sources x beam rows); a source stops at the end
symbol ``</s>`` or at its maximum output length (``autoregressive.output_lengths``), where ``</s>``
is the only symbol left. ``<pad>`` and ``<blank>`` are never produced.

Beam search keeps the ``beam`` best prefixes of each source; a prefix that ends enters the
source's finished list with its log-probability divided by ``length ** length_penalty`` (length
normalisation: 0 ranks by the sum, 1 by the mean per symbol); a source is done when ``beam``
prefixes have ended and the worst of them scores better than the best open prefix would if it
ended at the next position (as Hugging Face's beam search decides; log-probabilities only fall
as a prefix grows), or at its maximum length. With ``beam=1`` and ``length_penalty=0`` it is greedy search
(``task.beam=1`` decodes greedily, whatever the length penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convnlp.decoders.autoregressive import END

PAD, BLANK = 0, 2  # the other special symbols (tasks/generation.py): never produced


class Members:
    """The decoders of one model or of an ensemble, each with its decoding state."""

    def __init__(self, models: list, batch: dict):
        self.decoders = [m.head for m in models]
        self.states = [m.head.start(m.encode(batch), batch["mask"]) for m in models]

    @classmethod
    def of(cls, decoders: list, states: list) -> Members:
        """Decoders already started (``states``: what their ``start`` gave): an autoencoder's,
        started from codes rather than from a batch of sources."""
        members = cls.__new__(cls)
        members.decoders, members.states = list(decoders), list(states)
        return members

    def log_probs(self, tokens: torch.Tensor, t: int) -> torch.Tensor:
        """(N, V) the mean of the members' log-probabilities of the next symbol."""
        scores = [d.step(s, tokens, t).float().log_softmax(-1) for d, s in zip(self.decoders, self.states)]
        mean = scores[0] if len(scores) == 1 else torch.stack(scores).mean(dim=0)
        mean[:, PAD] = mean[:, BLANK] = float("-inf")
        return mean

    def reorder(self, index: torch.Tensor, expand: bool = False) -> None:
        """The states at rows ``index``: within each source (a beam step), or ``expand``ed."""
        self.states = [d.reorder(s, index, expand) for d, s in zip(self.decoders, self.states)]


def _only_end(log_probs: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Rows at their last position (``last``, N) may produce only the end symbol."""
    if last.any():
        end = log_probs[:, END].clone()
        log_probs = log_probs.masked_fill(last[:, None], float("-inf"))
        log_probs[:, END] = end
    return log_probs


@torch.no_grad()
def greedy(members: Members, limits: torch.Tensor) -> list[list[int]]:
    """The most probable next symbol at every step. ``limits`` (B,): output positions at most.
    Returns each source's symbols without the end symbol."""
    n = limits.shape[0]
    tokens = torch.full((n,), END, dtype=torch.long, device=limits.device)
    done = torch.zeros(n, dtype=torch.bool, device=limits.device)
    out = []
    for t in range(int(limits.max())):
        tokens = _only_end(members.log_probs(tokens, t), t + 1 >= limits).argmax(-1)
        tokens = tokens.masked_fill(done, END)
        out.append(tokens)
        done |= tokens == END
        if done.all():
            break
    rows = torch.stack(out, dim=1).tolist()
    return [row[: row.index(END)] if END in row else row for row in rows]


@dataclass
class Hypothesis:
    score: float  # log-probability / length ** length_penalty
    log_prob: float
    tokens: list[int]  # without the end symbol


@torch.no_grad()
def beam_search(members: Members, limits: torch.Tensor, beam: int, length_penalty: float) -> list[list[Hypothesis]]:
    """The ``beam`` best outputs of each source, best first. ``limits`` (B,): output positions at most."""
    b, device = limits.shape[0], limits.device
    rows = torch.arange(b, device=device)
    members.reorder(rows.repeat_interleave(beam), expand=True)
    scores = torch.full((b, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0
    prefixes = torch.zeros(b * beam, 0, dtype=torch.long, device=device)
    tokens = torch.full((b * beam,), END, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=device)
    for t in range(int(limits.max())):
        log_probs = _only_end(members.log_probs(tokens, t), (t + 1 >= limits).repeat_interleave(beam))
        vocabulary = log_probs.shape[1]
        candidates = (scores[:, :, None] + log_probs.view(b, beam, vocabulary)).view(b, -1)
        top, index = candidates.topk(min(2 * beam, candidates.shape[1]), dim=1)  # (B, 2K)
        origin, symbol = index // vocabulary, index % vocabulary
        ends = (symbol == END) & torch.isfinite(top)
        ending = ends[:, :beam] & ~done[:, None]  # an end among the K best: a finished output
        for i, j in ending.nonzero().tolist():
            prefix = prefixes[i * beam + origin[i, j]].tolist()
            log_prob = top[i, j].item()
            finished[i].append(Hypothesis(log_prob / (len(prefix) + 1) ** length_penalty, log_prob, prefix))
            finished[i] = sorted(finished[i], key=lambda h: -h.score)[:beam]
        # the K best candidates that do not end go on (sorted: non-ending first, then by rank)
        keep = (ends.long() * top.shape[1] + torch.arange(top.shape[1], device=device)).argsort(dim=1)[:, :beam]
        scores = top.gather(1, keep).masked_fill(ends.gather(1, keep), float("-inf"))
        done |= _finished(finished, scores.amax(dim=1) / (t + 2) ** length_penalty, beam) | (t + 1 >= limits)
        if done.all():
            break
        picked = (rows[:, None] * beam + origin.gather(1, keep)).view(-1)
        tokens = symbol.gather(1, keep).view(-1)
        prefixes = torch.cat([prefixes[picked], tokens[:, None]], dim=1)
        members.reorder(picked)
    return finished


def _finished(finished: list[list[Hypothesis]], bound: torch.Tensor, beam: int) -> torch.Tensor:
    """(B,) sources with ``beam`` finished outputs, the worst better than ``bound``: what the best
    prefix still open would score if it ended at the next position."""
    return torch.as_tensor(
        [len(f) >= beam and f[-1].score >= b for f, b in zip(finished, bound.tolist())], device=bound.device
    )
