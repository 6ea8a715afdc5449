"""Ensembles: ``convnlp eval checkpoint=[A,B,...]`` and ``convnlp predict checkpoint=[A,B,...]``.

Several checkpoints trained for the same task on the same vocabularies (same tokenizer, same
labels, same word features; encoders, decoders and sizes may differ) predict together:

- tagging and classification: the mean of the members' probabilities (the ensemble's output
  is the log of that mean, so argmax and softmax downstream see the averaged distribution);
- generation: each member proposes its own greedy output, and the proposal with the highest
  summed log-likelihood under all members wins (CTC: the probability of the sequence summed
  over alignments; ``ce``: the sum over positions). Averaging position by position would mix
  CTC models whose outputs are aligned differently; rescoring whole sequences does not.

The cost of predicting grows with the number of members.
"""

from __future__ import annotations

import math

import torch
from omegaconf import ListConfig
from torch import nn

from convnlp import checkpoint
from convnlp.data import features
from convnlp.errors import UserError


class Ensemble(nn.Module):
    """Members that read the same inputs and score the same labels; ``forward`` returns the log
    of their mean probabilities. ``task_configs`` holds each member's task config."""

    def __init__(self, members: list[nn.Module], task_configs: list[dict]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task_configs = task_configs

    def forward(self, batch: dict) -> torch.Tensor:
        log_probs = torch.stack([member(batch).float().log_softmax(-1) for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def load(checkpoints, device: str | torch.device = "cpu"):
    """(model, config, tokenizer, labels) of one checkpoint directory, or of an ensemble of a
    list of them (the first one's config, tokenizer and labels)."""
    from convnlp.tasks import task_config

    if not isinstance(checkpoints, (list, tuple, ListConfig)):
        return checkpoint.load(str(checkpoints), device)
    checkpoints = [str(c) for c in checkpoints]
    if not checkpoints:
        raise UserError("checkpoint=[]: give a checkpoint directory, or a list of them for an ensemble")
    if len(checkpoints) == 1:
        return checkpoint.load(checkpoints[0], device)
    model, config, tokenizer, labels = checkpoint.load(checkpoints[0], device)
    members, configs = [model], [task_config(config)]
    task, first = config["task"]["name"], checkpoints[0]
    for path in checkpoints[1:]:
        other, other_config, other_tokenizer, other_labels = checkpoint.load(path, device)
        theirs = other_config["task"]
        problem = (f"task={theirs['name']} where {first} has task={task}" if theirs["name"] != task
                   else checkpoint.vocabulary_difference(first, labels, tokenizer, other_labels, other_tokenizer)
                   or (f"its word features (task.features={list(theirs.get('features') or [])}, "
                       f"feature_rows={theirs.get('feature_rows')}) differ from those of {first}"
                       if features.setting(theirs) != features.setting(config["task"]) else None))
        if problem:
            raise UserError(f"{path}: {problem}; an ensemble's checkpoints must share the task, the tokenizer, "
                            "the labels and the word features")
        members.append(other)
        configs.append(task_config(other_config))
    return Ensemble(members, configs).to(device), config, tokenizer, labels


def rescore_proposals(log_probs: list[torch.Tensor], configs: list[dict],
                      source_lengths: torch.Tensor) -> list[list[int]]:
    """Generation: every member's greedy output is a proposal; each row takes the proposal with the highest
    log-likelihood summed over the members (the first member's on a tie). A proposal some member
    cannot produce at all (longer than that member's output) scores -inf; if every proposal
    does, the first member's is kept. ``log_probs``: each member's (B, L, V); ``configs``: their
    task configs."""
    from convnlp.decoders import output_lengths
    from convnlp.tasks.generation import decode_ids, sequence_log_likelihood

    lengths = [output_lengths(c["decoder"], source_lengths) for c in configs]
    proposals = []                                                                 # [member][row]
    for lp, n, c in zip(log_probs, lengths, configs):
        best = lp.argmax(-1).tolist()
        proposals.append([decode_ids(row[:k], c["loss"]) for row, k in zip(best, n.tolist())])
    scores = torch.stack([sum(sequence_log_likelihood(lp, n, candidates, c["loss"])
                              for lp, n, c in zip(log_probs, lengths, configs))
                          for candidates in proposals], dim=1)                     # (B, members)
    choice = scores.argmax(dim=1).tolist()
    return [proposals[k][b] for b, k in enumerate(choice)]
