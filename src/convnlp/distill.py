"""Sequence-level knowledge distillation (``trainer.teacher``, Kim and Rush 2016): a step that
runs before training and replaces the training split's targets by a teacher's outputs.

The teacher is one checkpoint or an ensemble of them (as in ``convnlp eval``); it decodes every
distinct training source, and its output becomes that source's one target. A source the teacher
gives no output for keeps its references. The counts go to the log and to metrics.json.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import ListConfig

from convnlp import checkpoint, ensemble
from convnlp.errors import UserError

log = logging.getLogger(__name__)


def relabel_with_teacher(
    split, teacher, task, task_name: str, task_cfg: dict, device: torch.device, batch_tokens: int
) -> tuple[dict, dict]:
    """The training split relabeled by ``teacher`` (a checkpoint, or a list: an ensemble) with
    the task's ``distill``, and the counts that go to metrics.json."""
    if not hasattr(task, "distill"):
        raise UserError(f"trainer.teacher: distillation is for task=generation, not task={task_name}")
    paths = [str(p) for p in teacher] if isinstance(teacher, (list, tuple, ListConfig)) else [str(teacher)]
    if not paths:
        raise UserError("trainer.teacher=[]: give a checkpoint directory, or a list of them (an ensemble)")
    try:
        paths = [str(checkpoint.existing(p)) for p in paths]
        teacher = ensemble.load(paths, device)  # one path: that model alone
    except UserError as e:
        raise UserError(f"trainer.teacher: {e}") from None
    config, teacher_task = teacher.config, teacher.task_cfg
    if config["task"]["name"] != task_name:
        raise UserError(
            f"trainer.teacher: {paths[0]} is a task={config['task']['name']} model; it cannot teach task={task_name}"
        )
    if teacher_task.get("target_tokens") != task_cfg.get("target_tokens"):
        raise UserError(
            f"trainer.teacher: {paths[0]} has task.target_tokens={teacher_task.get('target_tokens')}, "
            f"this run {task_cfg.get('target_tokens')}; they must be the same"
        )
    start = time.perf_counter()
    log.info("trainer.teacher: relabeling the training sources with %s", ", ".join(paths))
    split, counts = task.distill(
        split, teacher.model, teacher.tokenizer, teacher.labels, teacher_task, task_cfg, device, batch_tokens
    )
    counts = {
        "checkpoints": paths,
        **counts,
        "relabeled": counts["sources"] - counts["kept"],
        "seconds": time.perf_counter() - start,
    }
    log.info(
        "trainer.teacher: %d distinct training sources, %d relabeled (%d differ from every reference), "
        "%d kept their references (no output); %.1f min",
        counts["sources"],
        counts["relabeled"],
        counts["changed"],
        counts["kept"],
        counts["seconds"] / 60,
    )
    return split, counts
