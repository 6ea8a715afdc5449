"""The training recipe, top to bottom: seed -> data -> tokenizer -> model -> optimizer ->
loop (step, log, evaluate, checkpoint, stop early) -> final evaluation of the best model.

Everything the run produces lands in its Hydra run directory:
    train.log, .hydra/            the log and the resolved config
    tensorboard/                  loss, learning rate, gradient norm, tokens/s, validation metrics
    best/, last/                  checkpoints (see checkpoint.py); last/ can be resumed
    metrics.json                  final validation and test metrics, timings, model size
"""

from __future__ import annotations

import json
import logging
import math
import random
import subprocess
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from safetensors.torch import load_file
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from convnlp import checkpoint, ensemble
from convnlp.data import DATASETS, load_splits
from convnlp.data import tokenizer as tok
from convnlp.data.batching import token_batches
from convnlp.errors import UserError
from convnlp.device import pick_device
from convnlp.model import build_model, count_parameters
from convnlp.resume import (INIT_GROUPS, INIT_NOT_COMPARED, config_difference, find_init_dir, find_resume_dir,
                            teacher_difference)
from convnlp.tasks import TASKS, task_config

log = logging.getLogger(__name__)


def lr_factor(step: int, progress: float, warmup: int, schedule: str) -> float:
    """Linear warmup over ``warmup`` steps, then decay to 0 as ``progress`` (the fraction of
    the budget after warmup that is used up) goes from 0 to 1."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress


def ema_average(decay: float):
    """``avg_fn`` of torch's AveragedModel for ``trainer.ema``: the running mean of the weights
    until 1 / (1 - decay) of them are in, then an exponential moving average, so that a short run
    is not evaluated on an average of its first, untrained weights."""
    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        rate = torch.clamp(1.0 / (n + 1), min=1.0 - decay)  # n: weights averaged so far
        return averaged + (current - averaged) * rate
    return average


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def relabel_with_teacher(split, teacher, task, task_name: str, task_cfg: dict, device: torch.device,
                         batch_tokens: int) -> tuple[dict, dict]:
    """``trainer.teacher``: the training split relabeled by a checkpoint or an ensemble of them
    (generation's ``distill``), and the counts that go to metrics.json."""
    if not hasattr(task, "distill"):
        raise UserError(f"trainer.teacher: distillation is for task=generation, not task={task_name}")
    paths = [str(p) for p in teacher] if isinstance(teacher, (list, tuple, ListConfig)) else [str(teacher)]
    if not paths:
        raise UserError("trainer.teacher=[]: give a checkpoint directory, or a list of them (an ensemble)")
    try:
        paths = [str(checkpoint.existing(p)) for p in paths]
        model, config, tokenizer, labels = ensemble.load(paths, device)  # one path: that model alone
    except UserError as e:
        raise UserError(f"trainer.teacher: {e}") from None
    teacher_task = task_config(config)
    if config["task"]["name"] != task_name:
        raise UserError(f"trainer.teacher: {paths[0]} is a task={config['task']['name']} model; it cannot teach "
                        f"task={task_name}")
    if teacher_task.get("target_tokens") != task_cfg.get("target_tokens"):
        raise UserError(f"trainer.teacher: {paths[0]} has task.target_tokens={teacher_task.get('target_tokens')}, "
                        f"this run {task_cfg.get('target_tokens')}; they must be the same")
    start = time.perf_counter()
    log.info("trainer.teacher: relabeling the training sources with %s", ", ".join(paths))
    split, counts = task.distill(split, model, tokenizer, labels, teacher_task, task_cfg, device, batch_tokens)
    counts = {"checkpoints": paths, **counts, "relabeled": counts["sources"] - counts["kept"],
              "seconds": time.perf_counter() - start}
    log.info("trainer.teacher: %d distinct training sources, %d relabeled (%d differ from every reference), "
             "%d kept their references (no output); %.1f min", counts["sources"], counts["relabeled"],
             counts["changed"], counts["kept"], counts["seconds"] / 60)
    return split, counts


def train(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    tc = cfg.trainer
    task = TASKS[cfg.task.name]
    task_cfg = task_config(config)

    def evaluate(split, net: nn.Module) -> dict:
        return task.evaluate(net, tokenizer, labels, split, task_cfg, device, 2 * tc.batch_tokens)

    # ---- setup: seed, device, threads
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    use_amp = tc.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    # ---- data and vocabularies
    log.info("data: %s (data=%s)", DATASETS[cfg.data.name].description, cfg.data.name)
    data = load_splits(cfg.data, task=cfg.task.name)
    train_split = data["train"]
    resume_dir = find_resume_dir(tc.resume, run_dir, config)
    init_dir = find_init_dir(tc.init) if resume_dir is None else None  # a resumed run has its weights
    if resume_dir is not None:  # the vocabularies the saved weights were trained with
        _, saved_config, tokenizer, labels = checkpoint.load(resume_dir)
        difference = config_difference(saved_config, config) or teacher_difference(saved_config, config)
        if difference:
            raise UserError(f"trainer.resume: {resume_dir} was trained with another config ({difference})")
    elif init_dir is not None:  # fine-tuning: the checkpoint's vocabularies and weights
        init_model, saved_config, tokenizer, labels = checkpoint.load(init_dir)
        difference = config_difference(saved_config, config, ("there", "now"), INIT_GROUPS, INIT_NOT_COMPARED)
        if difference:
            raise UserError(f"trainer.init: {init_dir} is another model ({difference}); set the model groups "
                            "as it has them")
    distilled = None
    if tc.teacher is not None:
        train_split, distilled = relabel_with_teacher(train_split, tc.teacher, task, cfg.task.name, task_cfg,
                                                      device, 2 * tc.batch_tokens)
    if init_dir is not None:
        known = set(labels)
        missing = [label for label in task.label_vocabulary(train_split, task_cfg) if label not in known]
        if missing:
            raise UserError(f"trainer.init: the training data has {len(missing)} label(s) {init_dir} cannot "
                            f"predict ({', '.join(missing[:5])})")
        log.info("trainer.init: starting from the weights of %s", init_dir)
    elif resume_dir is None:  # from the data as given (a teacher's outputs may lack some references' labels)
        tokenizer = tok.build(cfg.tokenizer.name, task.tokenizer_examples(data["train"]),
                              cfg.tokenizer.min_frequency, cfg.tokenizer.lowercase, cfg.tokenizer.max_vocab)
        labels = task.label_vocabulary(data["train"] if distilled is None else
                                       {"target": list(data["train"]["target"]) + train_split["target"]}, task_cfg)
    encoded = task.encode(train_split, tokenizer, labels, "train", task_cfg)
    lengths = [len(ids) for ids in encoded["ids"]]
    validation = data["validation"] if "validation" in data else None
    if validation is not None:
        task.report_unseen(validation, labels, "validation", task_cfg, tokenizer)  # evaluate() encodes it
        validation = {column: validation[column] for column in task.COLUMNS}  # read from Arrow once
    log.info("train: %s, %d symbols; vocabulary %d %s symbols, %d labels", task.describe(encoded),
             sum(lengths), tokenizer.get_vocab_size(), cfg.tokenizer.name, len(labels))

    # ---- model and optimizer
    model = build_model(task_cfg, config["encoder"], tokenizer.get_vocab_size(), len(labels)).to(device)
    if init_dir is not None:
        model.load_state_dict(init_model.state_dict())
        del init_model
    n_params = count_parameters(model)
    receptive_field = model.encoder.receptive_field
    receptive_field = int(receptive_field) if math.isfinite(receptive_field) else "unbounded"
    log.info("model: %s encoder, %d parameters, receptive field %s symbols",
             cfg.encoder.name, n_params, receptive_field)
    layer_weights = [(f"encoder.{name}", module.weight) for name, module in model.encoder.named_modules()
                     if isinstance(module, nn.Conv1d)]
    layer_weights += [(f"encoder.{name}", parameter) for name, parameter in model.encoder.named_parameters()
                      if name.startswith("lstm.weight_ih")]
    # an exponential moving average of the weights (trainer.ema): what is evaluated and saved
    ema = None
    if tc.ema:
        ema = AveragedModel(model, avg_fn=ema_average(tc.ema), use_buffers=True)
        for module in ema.module.modules():  # the copy's LSTM weights are no longer one cuDNN block
            if isinstance(module, nn.RNNBase):
                module.flatten_parameters()
    scored = model if ema is None else ema.module  # the weights validation scores and checkpoints hold
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                  weight_decay=cfg.optim.weight_decay)
    steps_per_epoch = len(token_batches(lengths, tc.batch_tokens, shuffle=False))
    total_steps = tc.max_epochs * steps_per_epoch
    if tc.max_steps > 0:
        total_steps = min(total_steps, tc.max_steps)
    max_seconds = 60.0 * tc.max_minutes
    warmup = cfg.optim.warmup_steps
    if warmup >= total_steps and not max_seconds:
        warmup = total_steps // 10
        log.warning("optim.warmup_steps=%d is not below the %d training steps; warming up for %d",
                    cfg.optim.warmup_steps, total_steps, warmup)

    # ---- state, possibly resumed
    step, epoch, batch_in_epoch, elapsed_before = 0, 0, 0, 0.0
    best_score, best_step, bad_evals = -1.0, 0, 0
    if resume_dir is not None:
        state = checkpoint.load_training_state(resume_dir)
        weights = load_file(resume_dir / "model.safetensors", device=str(device))
        try:
            # with trainer.ema the checkpoint holds the average; the trained weights are in the state
            model.load_state_dict(state.get("model") or weights)
            if ema is not None:  # from a run without the average: it starts at the saved weights
                ema.module.load_state_dict(weights)
                ema.n_averaged.fill_(int(state.get("ema_updates", 1)))
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise UserError(f"{resume_dir / 'training_state.pt'}: does not fit this model and optimizer "
                            f"({str(e).splitlines()[0]})") from None
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        best_score, best_step, bad_evals = state["best_score"], state["best_step"], state["bad_evals"]
        elapsed_before = state["elapsed"]
        if device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        scaler.load_state_dict(state["scaler"])
        try:
            previous_best = checkpoint.existing(resume_dir.parent / "best")
        except UserError:
            previous_best = None  # it had no validation data, or stopped before its first evaluation
        if previous_best is not None:  # carried over, so this run's best/ is the best of both runs
            checkpoint.copy(previous_best, run_dir / "best")
        checkpoint.remove_stale_writes(resume_dir.parent)
        marker = resume_dir.parent / "resumed_by"  # resume=true goes on from this run once it has a last/
        try:
            with open(marker, "a") as f:
                f.write(f"{run_dir.resolve()}\n")
        except OSError as e:
            raise UserError(f"cannot write {marker} ({e.strerror})") from None
        log.info("resumed from %s at step %d (epoch %d, batch %d)", resume_dir, step, epoch, batch_in_epoch)

    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    revision = git_revision()
    log.info("training: %d steps/epoch, up to %d epochs / %d steps%s on %s; run directory %s",
             steps_per_epoch, tc.max_epochs, total_steps,
             f" / {tc.max_minutes:g} min" if max_seconds else "", device, run_dir)

    def save_checkpoint(name: str, metrics: dict):
        training_state = None
        if name == "last":
            training_state = {
                "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch, "best_score": best_score, "best_step": best_step,
                "bad_evals": bad_evals, "elapsed": elapsed(),
                "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                "scaler": scaler.state_dict(),
            }
            if ema is not None:
                training_state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                training_state["ema_updates"] = int(ema.n_averaged)
        meta = {**metrics, "step": step, "epoch": epoch, "finished": False, "git_revision": revision}
        checkpoint.save(run_dir / name, scored, config, tokenizer, labels, meta, training_state)

    start_time = time.perf_counter()
    last_saved = start_time  # last/ is written at every evaluation and on its own schedule
    save_seconds = 60.0 * tc.checkpoint_minutes

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start_time

    # ---- the loop
    stop_reason, last_metrics = None, {}
    # resumed from a run that had already stopped (killed during its final evaluation): stop again
    if step >= total_steps:
        stop_reason = f"reached {total_steps} steps"
    elif epoch >= tc.max_epochs:
        stop_reason = f"reached {tc.max_epochs} epochs"
    elif max_seconds and elapsed_before >= max_seconds:
        stop_reason = f"reached {tc.max_minutes:g} minutes"
    elif tc.patience and bad_evals >= tc.patience:
        stop_reason = f"no improvement in {tc.patience} evaluations"
    window_symbols, window_start, trained_symbols = 0, time.perf_counter(), 0
    loop_start = time.perf_counter()
    while stop_reason is None:
        batches = token_batches(lengths, tc.batch_tokens, shuffle=True, seed=cfg.seed * 1000 + epoch)
        bar = tqdm(total=len(batches), initial=batch_in_epoch, desc=f"epoch {epoch + 1}",
                   disable=None if tc.progress else True, leave=False, dynamic_ncols=True)
        model.train()
        while batch_in_epoch < len(batches):
            indices = batches[batch_in_epoch]
            batch = task.make_batch(encoded, indices)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            progress = max((step - warmup) / max(total_steps - warmup, 1),
                           elapsed() / max_seconds if max_seconds else 0.0)
            lr = cfg.optim.lr * lr_factor(step, progress, warmup, cfg.optim.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr

            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(batch)                        # (B, W, num_labels) or (B, num_labels)
            loss, _ = task.loss(logits, batch, task_cfg)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or float("inf"))
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            batch_in_epoch += 1
            symbols = int(batch["mask"].sum())
            window_symbols += symbols
            trained_symbols += symbols
            bar.update(1)

            if step % 50 == 0 or step == 1:
                now = time.perf_counter()
                tokens_per_s = window_symbols / max(now - window_start, 1e-9)
                window_symbols, window_start = 0, now
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/tokens_per_s", tokens_per_s, step)
                for name, parameter in layer_weights:  # gradient flow, layer by layer
                    if parameter.grad is not None:
                        writer.add_scalar(f"grad_norm/{name}", parameter.grad.norm().item(), step)
                bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens_per_s:.0f}")

            end_of_epoch = batch_in_epoch == len(batches)
            if end_of_epoch:  # counted before evaluating, so last/ resumes at the next epoch
                epoch, batch_in_epoch = epoch + 1, 0
            if step >= total_steps:
                stop_reason = f"reached {total_steps} steps"
            elif max_seconds and elapsed() >= max_seconds:
                stop_reason = f"reached {tc.max_minutes:g} minutes"
            if (tc.eval_every and step % tc.eval_every == 0) or (not tc.eval_every and end_of_epoch) \
                    or stop_reason:
                metrics = {}
                if validation is not None:
                    metrics = last_metrics = evaluate(validation, scored)
                    task.log_metrics(writer, "validation", metrics, step)
                    score = metrics["accuracy"]
                    improved = score > best_score
                    if improved:
                        best_score, best_step, bad_evals = score, step, 0
                        save_checkpoint("best", metrics)
                    else:
                        bad_evals += 1
                    log.info("step %d epoch %.2f: validation accuracy %.4f%s (best %.4f at step %d), "
                             "%.1f min", step, epoch + batch_in_epoch / len(batches), score,
                             " *" if improved else "", best_score, best_step, elapsed() / 60)
                    if tc.patience and bad_evals >= tc.patience and not stop_reason:
                        stop_reason = f"no improvement in {tc.patience} evaluations"
                model.train()
                save_checkpoint("last", metrics)
                last_saved = time.perf_counter()
            elif (tc.checkpoint_every and step % tc.checkpoint_every == 0) or \
                    (save_seconds and time.perf_counter() - last_saved >= save_seconds):
                save_checkpoint("last", last_metrics)
                last_saved = time.perf_counter()
            if stop_reason or end_of_epoch:
                break
        bar.close()
        if stop_reason is None and epoch >= tc.max_epochs:
            stop_reason = f"reached {tc.max_epochs} epochs"
    train_seconds = elapsed()
    # symbols per second of this process's training, evaluations included (what a user waits)
    train_symbols_per_s = trained_symbols / max(time.perf_counter() - loop_start, 1e-9)
    log.info("stopped: %s after %d steps, %.1f min", stop_reason, step, train_seconds / 60)

    # ---- final evaluation with the best weights (the last ones without validation data)
    save_checkpoint("last", {})  # the end state: a larger budget continues from it (trainer.resume=DIR)
    if validation is None or not (run_dir / "best").is_dir():
        save_checkpoint("best", {})
    model.load_state_dict(load_file(run_dir / "best" / "model.safetensors", device=str(device)))
    results = {"git_revision": revision, "stop_reason": stop_reason, "steps": step,
               "epochs": round(epoch + batch_in_epoch / max(steps_per_epoch, 1), 2),
               "best_step": best_step, "train_seconds": train_seconds, "parameters": n_params,
               "receptive_field": receptive_field, "train_symbols_per_s": train_symbols_per_s,
               "threads": torch.get_num_threads()}
    if init_dir is not None:
        results["init"] = str(init_dir.resolve())
    if distilled is not None:
        results["teacher"] = distilled
    for name in ("validation", "test"):
        if name in data:
            results[name] = evaluate(data[name], model)
            log.info("%s (best model): %s", name, _format(results[name]))
            task.log_metrics(writer, f"final_{name}", results[name], step)
    best_meta = json.loads((run_dir / "best" / "metrics.json").read_text())
    checkpoint.save(run_dir / "best", model, config, tokenizer, labels, {**best_meta, **results})
    writer.close()
    results["total_seconds"] = time.perf_counter() - t0
    checkpoint.write_json(run_dir / "metrics.json", results)
    checkpoint.mark_finished(run_dir / "last")  # only now: resume=true finishes a run killed before this
    log.info("checkpoint: %s", run_dir / "best")
    return results


def _format(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                     if isinstance(v, (int, float)))
