"""Tasks: each file holds its config, head, loss, metrics, encoding and prediction, satisfies
the ``Task`` protocol below (a checker can verify it; tests/test_tasks.py does at run time),
which the trainer, ``eval`` and ``predict`` call, and registers itself (``TASKS.add(Config,
module, select=...)``: ``select`` lists the metrics ``trainer.select`` can name). ``task_cfg`` is
the run's ``task`` group, with the ``decoder`` group under ``task_cfg["decoder"]`` (see
``task_config``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from convnlp.decoders import is_autoregressive
from convnlp.errors import UserError
from convnlp.registry import TASKS


@runtime_checkable
class Task(Protocol):
    COLUMNS: tuple[str, ...]  # the data set's column names (an autoencoder has one: text)
    OUTPUT_FIELDS: tuple[
        str, ...
    ]  # the fields of a predict record (null, with "error", for a line that cannot be read)

    def build_head(self, cfg, input_dim: int, num_labels: int, decoder: dict | None) -> nn.Module: ...

    def label_vocabulary(self, split, task: dict, tokenizer=None) -> list[str]:
        """The labels, from the training split (an autoencoder's: the ``tokenizer``'s symbols)."""

    def tokenizer_examples(self, split) -> Sequence: ...  # what the vocabulary is trained on

    def report_unseen(self, split, labels: list[str], where: str, task: dict, tokenizer=None) -> dict[str, int]:
        """Warn about labels training never saw; their counts."""

    def encode(self, split, tokenizer, labels: list[str], where: str, task: dict) -> dict[str, list]:
        """Lists the batches are cut from ("ids" first)."""

    def make_batch(self, encoded: dict[str, list], indices: list[int]) -> dict[str, torch.Tensor]:
        """Padded tensors, "ids" and "mask" included."""

    def describe(self, encoded: dict[str, list]) -> str: ...  # "12544 sentences, 204577 words" for the log

    def loss(self, logits: torch.Tensor, batch: dict, task: dict) -> tuple[torch.Tensor, int]: ...  # (mean, count)

    def evaluate(self, model, tokenizer, labels, split, task: dict, device, batch_tokens: int) -> dict:
        """Metrics; ``trainer.select`` names the one that selects the best checkpoint."""

    def log_metrics(self, writer, prefix: str, result: dict, step: int) -> None: ...  # to TensorBoard

    def read_input(self, line: str) -> Any: ...  # one line of `convnlp predict` input

    def predict_records(
        self, model, tokenizer, labels, inputs: list, device, task: dict, batch_tokens: int = 8000
    ) -> list[dict]: ...  # JSON-ready, one per input


def get_task(name: str) -> Task:
    """The task named ``name`` (a module of this package, from the registry)."""
    return TASKS[name].target


def task_config(config: dict) -> dict:
    """The ``task`` group of a resolved run config, with its ``decoder`` group (None if none)."""
    return {**config["task"], "decoder": config.get("decoder")}


def with_decoding(task_cfg: dict, beam: int | None = None, nbest: int = 0) -> dict:
    """A checkpoint's task config with ``predict``/``eval``'s ``beam`` (None: the checkpoint's
    ``task.beam``) and ``nbest`` (0: none): for generation with an autoregressive decoder only."""
    if beam is None and not nbest:
        return task_cfg
    decoder = task_cfg.get("decoder") or {}
    if task_cfg["name"] != "generation" or not is_autoregressive(decoder):
        given = " ".join(f"{k}={v}" for k, v in (("beam", beam), ("nbest", nbest)) if v)
        kind = f"decoder={decoder['name']}" if decoder else f"task={task_cfg['name']}"
        raise UserError(
            f"{given}: beam search is for task=generation with decoder=convs2s or lstm; this checkpoint has {kind}"
        )
    return {**task_cfg, "beam": beam or task_cfg.get("beam", 1), "nbest": nbest}
