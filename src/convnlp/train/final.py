"""After the loop: the end state saved, and the best model evaluated on validation and test
(by rank 0), its figures in metrics.json and best/."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from safetensors.torch import load_file

from convnlp import checkpoint
from convnlp.resume import TrainState
from convnlp.tasks import get_task, task_config
from convnlp.train.checkpoints import Checkpoints
from convnlp.train.progress import format_metrics
from convnlp.train.setup import Data, Environment, Network

log = logging.getLogger("convnlp.train")


@dataclass
class Outcome:
    """How the loop ended: why, after how long, how fast it trained (symbols per second of all
    processes, evaluations included: what a user waits), and the steps of an epoch."""

    stop_reason: str
    train_seconds: float
    train_symbols_per_s: float
    steps_per_epoch: int


def finish(
    cfg: DictConfig,
    env: Environment,
    data: Data,
    net: Network,
    state: TrainState,
    checkpoints: Checkpoints,
    writer,
    run_dir: Path,
    outcome: Outcome,
) -> dict:
    """Save the end state (a larger budget continues from it: trainer.resume=DIR); rank 0
    evaluates the best weights (the last ones without validation data); the results."""
    tc, world, device, model = cfg.trainer, env.world, env.device, net.model
    checkpoints.save("last", state, {})
    if not world.main:
        return {}
    if data.validation is None or not (run_dir / "best").is_dir():
        checkpoints.save("best", state, {})
    model.load_state_dict(load_file(run_dir / "best" / "model.safetensors", device=str(device)))
    results = {
        "git_revision": checkpoints.revision,
        "stop_reason": outcome.stop_reason,
        "steps": state.step,
        "epochs": round(state.epoch + state.batch_in_epoch / max(outcome.steps_per_epoch, 1), 2),
        "best_step": state.best_step,
        "selected_by": net.metric,
        "train_seconds": outcome.train_seconds,
        "parameters": net.parameters,
        "receptive_field": net.receptive_field,
        "train_symbols_per_s": outcome.train_symbols_per_s,
        **env.threads.summary(),
    }
    if world.distributed or tc.accumulate > 1:
        results.update(
            processes=world.size,
            ddp_backend=world.backend,
            accumulate=tc.accumulate,
            global_batch_tokens=state.micro_batches * tc.batch_tokens,
        )
    if data.start.init_dir is not None:
        results["init"] = str(data.start.init_dir.resolve())
    if data.distilled is not None:
        results["teacher"] = data.distilled
    task, task_cfg = get_task(cfg.task.name), task_config(checkpoints.config)
    for name in ("validation", "test"):
        if name in data.splits:
            results[name] = task.evaluate(
                model, data.tokenizer, data.labels, data.splits[name], task_cfg, device, 2 * tc.batch_tokens
            )
            log.info("%s (best model): %s", name, format_metrics(results[name]))
            task.log_metrics(writer, f"final_{name}", results[name], state.step)
    best_meta = json.loads((run_dir / "best" / "metrics.json").read_text())
    checkpoint.save(run_dir / "best", model, checkpoints.config, data.tokenizer, data.labels, {**best_meta, **results})
    return results


def write_metrics(run_dir: Path, results: dict, started: float) -> None:
    """metrics.json, and only then last/ marked finished (resume=true finishes a run killed before this)."""
    results["total_seconds"] = time.perf_counter() - started
    checkpoint.write_json(run_dir / "metrics.json", results)
    checkpoint.mark_finished(run_dir / "last")
    log.info("checkpoint: %s", run_dir / "best")
