"""Ensembles: ``convnlp eval checkpoint=[A,B,...]`` and ``convnlp predict checkpoint=[A,B,...]``.

Several checkpoints trained for the same task on the same vocabularies (same tokenizer, same
labels, same word features; encoders, decoders and sizes may differ) predict together:

- tagging and classification: the mean of the members' probabilities (the ensemble's output
  is the log of that mean, so argmax and softmax downstream see the averaged distribution);
- generation: each member proposes its own greedy output, and the proposal with the highest
  summed log-likelihood under all members wins (``tasks/generation.py``, ``rescore_proposals``).

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


def load(checkpoints, device: str | torch.device = "cpu") -> checkpoint.Checkpoint:
    """One checkpoint directory, or an ensemble of a list of them (with the first one's config,
    tokenizer and labels)."""
    if not isinstance(checkpoints, (list, tuple, ListConfig)):
        return checkpoint.load(str(checkpoints), device)
    checkpoints = [str(c) for c in checkpoints]
    if not checkpoints:
        raise UserError("checkpoint=[]: give a checkpoint directory, or a list of them for an ensemble")
    if len(checkpoints) == 1:
        return checkpoint.load(checkpoints[0], device)
    ours = checkpoint.load(checkpoints[0], device)
    members, configs = [ours.model], [ours.task_cfg]
    task, first = ours.config["task"]["name"], checkpoints[0]
    if task == "autoencoder":
        raise UserError(f"{first}: autoencoders do not ensemble (each has codes of its own); give one checkpoint")
    for path in checkpoints[1:]:
        other = checkpoint.load(path, device)
        theirs = other.config["task"]
        problem = (
            f"task={theirs['name']} where {first} has task={task}"
            if theirs["name"] != task
            else checkpoint.vocabulary_difference(first, ours, other)
            or (
                f"its word features (task.features={list(theirs.get('features') or [])}, "
                f"feature_rows={theirs.get('feature_rows')}) differ from those of {first}"
                if features.setting(theirs) != features.setting(ours.config["task"])
                else None
            )
        )
        if problem:
            raise UserError(
                f"{path}: {problem}; an ensemble's checkpoints must share the task, the tokenizer, "
                "the labels and the word features"
            )
        members.append(other.model)
        configs.append(other.task_cfg)
    return checkpoint.Checkpoint(Ensemble(members, configs).to(device), ours.config, ours.tokenizer, ours.labels)
