"""The training recipe, top to bottom: setup -> data and vocabularies -> model and optimizer ->
loop (step, log, evaluate, checkpoint, stop) -> final evaluation of the best model.

Everything the run produces lands in its Hydra run directory:
    train.log, .hydra/            the log and the resolved config
    tensorboard/                  loss, learning rate, gradient norm, tokens/s, validation metrics
    best/, last/                  checkpoints (see checkpoint.py); last/ can be resumed
    metrics.json                  final validation and test metrics, timings, model size

Where a run starts from (trainer.resume, trainer.init) and the state last/ saves live in
resume.py; distillation's relabeling (trainer.teacher) is a step before training, distill.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from convnlp import checkpoint, distributed, resume
from convnlp.data import DATASETS, load_splits
from convnlp.data import tokenizer as tok
from convnlp.config import LOWER_IS_BETTER
from convnlp.data.batching import token_batches
from convnlp.distill import relabel_with_teacher
from convnlp.errors import UserError
from convnlp.model import build_model, count_parameters
from convnlp.optimization import adamw, lr_factor, moving_average
from convnlp.resume import TrainState
from convnlp.tasks import TASKS, task_config
from convnlp.threads import ThreadPolicy

log = logging.getLogger(__name__)


DEFAULT_EPOCHS = 20  # trainer.max_epochs=null without a step or time budget


@dataclass
class Limits:
    """When training stops: ``trainer.max_steps`` / ``max_epochs`` / ``max_minutes`` (the
    budget of all runs of one training, resumed ones included), whichever comes first, and
    ``patience``; neither the epoch limit nor patience stops a run before ``min_steps``.
    ``planned``: the steps the run is expected to take (the learning-rate schedule's length;
    0 when only time bounds it)."""
    steps: int
    epochs: int
    seconds: float
    patience: int
    min_steps: int
    planned: int
    epoch_steps: int = 0  # the steps of max_epochs epochs
    metric: str = "accuracy"

    @classmethod
    def of(cls, tc, steps_per_epoch: int, metric: str) -> "Limits":
        epochs = tc.max_epochs if tc.max_epochs is not None else (
            0 if tc.max_steps or tc.max_minutes else DEFAULT_EPOCHS)
        planned = [n for n in (tc.max_steps, max(epochs * steps_per_epoch, tc.min_steps) if epochs else 0) if n]
        return cls(steps=tc.max_steps, epochs=epochs, seconds=60.0 * tc.max_minutes, patience=tc.patience,
                   min_steps=tc.min_steps, planned=min(planned) if planned else 0,
                   epoch_steps=epochs * steps_per_epoch, metric=metric)

    @property
    def min_steps_outlast_epochs(self) -> bool:
        """Whether the epoch limit comes before ``min_steps`` (a small training set), so it is not
        what ends the run."""
        return bool(self.epochs) and self.epoch_steps < self.min_steps

    def describe(self) -> str:
        parts = [f"{self.steps} steps (max_steps)"] * bool(self.steps) + \
                [f"{self.epochs} epochs (max_epochs)"] * bool(self.epochs) + \
                [f"{self.seconds / 60:g} min (max_minutes)"] * bool(self.seconds)
        text = " or ".join(parts) + ", whichever comes first" * (len(parts) > 1)
        if self.min_steps_outlast_epochs and (not self.steps or self.steps > self.epoch_steps):
            text += f", and at least {min(self.min_steps, self.steps or self.min_steps)} steps (min_steps)"
        return text

    def reached(self, state: TrainState) -> str | None:
        if self.steps and state.step >= self.steps:
            return f"trainer.max_steps={self.steps} reached"
        if self.seconds and state.elapsed() >= self.seconds:
            return f"trainer.max_minutes={self.seconds / 60:g} reached"
        if state.step < self.min_steps:
            return None
        if self.epochs and state.epoch >= self.epochs:
            if self.min_steps_outlast_epochs:
                return (f"trainer.min_steps={self.min_steps} reached ({state.epoch} epochs: a training set this "
                        f"small gets more than max_epochs={self.epochs})")
            return f"trainer.max_epochs={self.epochs} reached"
        if self.patience and state.bad_evals >= self.patience:
            return f"trainer.patience={self.patience}: no better validation {self.metric} in {self.patience} evaluations"
        return None


def selection_metric(setting: str, task_name: str, labels: list[str]) -> str:
    """``trainer.select``: auto is entity F1 for BIO tags, else accuracy."""
    from convnlp.tasks.tagging import is_bio

    if setting == "auto":
        return "f1" if task_name == "tagging" and is_bio(labels) else "accuracy"
    if setting in ("f1", "precision", "recall") and task_name == "tagging" and not is_bio(labels):
        raise UserError(f"trainer.select={setting} needs BIO entity tags (O, B-X, I-X, ...); the training tags "
                        f"include {next(t for t in labels if not is_bio([t]))!r}")
    return setting


def selection_score(metrics: dict, metric: str) -> float:
    """The validation score that picks best/ and drives patience: higher is better."""
    value = metrics.get(metric)
    if not isinstance(value, (int, float)):
        numbers = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)) and k != "examples")
        raise UserError(f"trainer.select={metric}: the validation metrics have no {metric!r}; they have: {numbers}")
    value = float(value)  # seqeval's are numpy floats, which a weights-only training state cannot hold
    return -value if metric in LOWER_IS_BETTER else value


def given_budget(cfg: DictConfig, given: set[str]) -> DictConfig:
    """The budget given on the command line (``given``: the keys it sets) is the budget: with
    ``trainer.max_steps`` or ``max_minutes`` the config files' epoch limit (the default, an
    experiment's) is not applied unless ``trainer.max_epochs`` is given too, and with any of the
    three ``trainer.min_steps`` is not applied unless it is given too."""
    tc, budget = cfg.trainer, {"trainer.max_steps", "trainer.max_minutes", "trainer.max_epochs"} & given
    steps_or_time = budget - {"trainer.max_epochs"} and (tc.max_steps or tc.max_minutes)
    lift_epochs = steps_or_time and "trainer.max_epochs" not in budget and tc.max_epochs is not None
    lift_min = budget and "trainer.min_steps" not in given and tc.min_steps
    if not (lift_epochs or lift_min):
        return cfg
    cfg = cfg.copy()
    if lift_epochs:
        log.info("trainer.max_steps / max_minutes given: no epoch limit (the config's max_epochs=%d is not "
                 "applied; give trainer.max_epochs too to keep one)", tc.max_epochs)
        cfg.trainer.max_epochs = None
    if lift_min:
        cfg.trainer.min_steps = 0
    return cfg


class Progress:
    """The run's progress: a bar over all its steps on a terminal; without one (a log file, a
    scheduler's output) a log line every ``minutes``: step, epoch, loss, speed, time left."""

    def __init__(self, limits: Limits, steps_per_epoch: int, state: TrainState, enabled: bool, minutes: float):
        self.limits, self.steps_per_epoch, self.minutes = limits, steps_per_epoch, minutes
        total = limits.planned or None
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=state.step, desc=self._epoch(state), leave=False,
                            dynamic_ncols=True)
        self.last_line = time.perf_counter()
        self.start_step, self.start_time = state.step, time.perf_counter()

    def _epoch(self, state: TrainState) -> str:
        limits = self.limits  # the epoch limit, unless min_steps outlasts it
        shown = limits.epochs and not limits.min_steps_outlast_epochs
        return f"epoch {state.epoch + 1}" + (f"/{limits.epochs}" if shown else "")

    def _eta(self, state: TrainState) -> str:
        rate = (state.step - self.start_step) / max(time.perf_counter() - self.start_time, 1e-9)
        left = []
        if self.limits.planned and rate > 0:
            left.append((self.limits.planned - state.step) / rate)
        if self.limits.seconds:
            left.append(self.limits.seconds - state.elapsed())
        return f", about {max(min(left), 0) / 60:.1f} min left" if left else ""

    def due(self) -> bool:
        """Whether a log line is due (no bar, and ``minutes`` since the last one)."""
        return self.bar is None and bool(self.minutes) and time.perf_counter() - self.last_line >= 60 * self.minutes

    def update(self, state: TrainState, loss: float | None, symbols_per_s: float | None) -> None:
        if self.bar is not None:
            self.bar.update(state.step - self.bar.n)
            self.bar.set_description(self._epoch(state), refresh=False)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{symbols_per_s:.0f}")
        elif loss is not None and self.due():
            self.last_line = time.perf_counter()
            total = f"/{self.limits.planned}" if self.limits.planned else ""
            log.info("step %d%s, %s (%.0f%%): loss %.4f, %.0f symbols/s%s", state.step, total, self._epoch(state),
                     100 * state.batch_in_epoch / max(self.steps_per_epoch, 1), loss, symbols_per_s, self._eta(state))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Checkpoints:
    """Writes best/ and last/ of one run: the scored weights (the moving average with
    trainer.ema), the config, vocabularies and metrics; last/ adds the training state. With
    several processes rank 0 writes; saving last/ is a step every rank takes (each rank's random
    state goes into it)."""

    def __init__(self, run_dir: Path, config: dict, tokenizer, labels: list[str], revision: str | None,
                 model: nn.Module, ema, optimizer, scaler, device: torch.device, sync: distributed.Sync):
        self.run_dir, self.config, self.tokenizer, self.labels, self.revision = run_dir, config, tokenizer, labels, revision
        self.model, self.ema, self.optimizer, self.scaler, self.device = model, ema, optimizer, scaler, device
        self.sync = sync
        self.scored = model if ema is None else ema.module
        self.last_saved = time.perf_counter()

    def save(self, name: str, state: TrainState, metrics: dict) -> None:
        training_state = None
        if name == "last":
            rank_rngs = self.sync.gather(resume.rng_state(self.device)) if self.sync.world.distributed else None
            self.last_saved = time.perf_counter()
            if not self.sync.world.main:
                return
            training_state = state.saved(self.model, self.ema, self.optimizer, self.scaler, self.device)
            if rank_rngs is not None:
                training_state["rank_rngs"] = rank_rngs
        meta = {**metrics, "step": state.step, "epoch": state.epoch, "finished": False,
                "git_revision": self.revision}
        checkpoint.save(self.run_dir / name, self.scored, self.config, self.tokenizer, self.labels, meta,
                        training_state)


def train_step(model: nn.Module, batches: list[dict], task, task_cfg: dict, optimizer, scaler, amp_dtype,
               use_amp: bool, grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the mean gradient of ``batches`` (``trainer.accumulate`` of them;
    mixed precision on CUDA; under DDP averaged over the ranks too, synchronized once, at the
    last): the mean loss and the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(batch["mask"].device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(batch)                        # (B, W, num_labels) or (B, num_labels)
            loss, _ = task.loss(logits, batch, task_cfg)
            scaler.scale(loss / len(batches) if len(batches) > 1 else loss).backward()
        losses.append(loss.detach())
    loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    scaler.step(optimizer)
    scaler.update()
    return loss, grad_norm


def log_step(writer: SummaryWriter, step: int, loss: float, lr: float, grad_norm: float, tokens_per_s: float,
             layer_weights: list[tuple[str, torch.Tensor]]) -> None:
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/lr", lr, step)
    writer.add_scalar("train/grad_norm", grad_norm, step)
    writer.add_scalar("train/tokens_per_s", tokens_per_s, step)
    for name, parameter in layer_weights:  # gradient flow, layer by layer
        if parameter.grad is not None:
            writer.add_scalar(f"grad_norm/{name}", parameter.grad.norm().item(), step)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    tc, task = cfg.trainer, TASKS[cfg.task.name]
    task_cfg = task_config(config)

    # ---- setup: seed, processes, threads, device, mixed precision
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    world = distributed.start(tc.device, tc.ddp_backend, tc.ddp_timeout_minutes)  # torchrun: join the others
    threads = ThreadPolicy(tc.threads)  # 0: the cores other processes leave free, checked as it trains
    device = distributed.device(world, tc.device)
    sync = distributed.Sync(world, device)
    use_amp = tc.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    # ---- data and vocabularies (a resumed or fine-tuned run keeps its checkpoint's)
    log.info("data: %s (data=%s)", DATASETS[cfg.data.name].description, cfg.data.name)
    data = load_splits(cfg.data, task=cfg.task.name)
    start = resume.starting_point(tc, run_dir, config)
    train_split, distilled = data["train"], None
    if tc.teacher is not None:  # with several processes rank 0 relabels, the others take its targets
        if world.main:
            train_split, distilled = relabel_with_teacher(train_split, tc.teacher, task, cfg.task.name, task_cfg,
                                                          device, 2 * tc.batch_tokens)
        train_split, distilled = sync.from_main((train_split, distilled) if world.main else None)
    tokenizer, labels = start.tokenizer, start.labels
    if start.init_dir is not None:
        resume.check_init_labels(start, task.label_vocabulary(train_split, task_cfg))
        log.info("trainer.init: starting from the weights of %s", start.init_dir)
    elif start.resume_dir is None:  # from the data as given (a teacher's outputs may lack some references' labels)
        tokenizer = tok.build_from(cfg.tokenizer, task.tokenizer_examples(data["train"]))
        labels = task.label_vocabulary(data["train"] if distilled is None else
                                       {"target": list(data["train"]["target"]) + train_split["target"]}, task_cfg)
        if world.distributed:  # every rank uses rank 0's vocabularies
            text, labels = sync.from_main((tokenizer.to_str(), labels) if world.main else None)
            tokenizer = tokenizer if world.main else tok.Tokenizer.from_str(text)
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
    if start.init_model is not None:
        model.load_state_dict(start.init_model.state_dict())
        start.init_model = None
    n_params = count_parameters(model)
    receptive_field = model.encoder.receptive_field
    receptive_field = int(receptive_field) if math.isfinite(receptive_field) else "unbounded"
    log.info("model: %s encoder, %d parameters, receptive field %s symbols",
             cfg.encoder.name, n_params, receptive_field)
    if world.rank:  # each rank its own dropout (the weights are rank 0's: DDP sends them to the others)
        distributed.seed_rank(cfg.seed, world.rank)
    trained = model  # what the steps run: the model, or under DDP its wrapper, which averages gradients
    if world.distributed:  # (a 1x1 convolution's gradient comes transposed: slower to copy, not wrong)
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    layer_weights = [(f"encoder.{name}", module.weight) for name, module in model.encoder.named_modules()
                     if isinstance(module, nn.Conv1d)]
    layer_weights += [(f"encoder.{name}", parameter) for name, parameter in model.encoder.named_parameters()
                      if name.startswith("lstm.weight_ih")]
    ema = moving_average(model, tc.ema)  # trainer.ema: the average is what is evaluated and saved
    optimizer = adamw(model, cfg.optim)
    steps_per_epoch = distributed.steps_per_epoch(len(token_batches(lengths, tc.batch_tokens, shuffle=False)),
                                                  world, tc.accumulate)
    metric = selection_metric(tc.select, cfg.task.name, labels)
    limits = Limits.of(tc, steps_per_epoch, metric)
    warmup = cfg.optim.warmup_steps
    if limits.planned and warmup >= limits.planned:
        warmup = limits.planned // 10
        log.warning("optim.warmup_steps=%d is not below the %d training steps; warming up for %d",
                    cfg.optim.warmup_steps, limits.planned, warmup)

    # ---- the training state: new, or where the resumed run's last/ left it
    state = TrainState()
    if start.resume_dir is not None:
        state = resume.restore(start.resume_dir, run_dir, model, ema, optimizer, scaler, device, world,
                               tc.accumulate, cfg.seed)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", start.resume_dir, state.step, state.epoch,
                 state.batch_in_epoch)
        if state.select != metric:
            raise UserError(f"trainer.select: the resumed run selected by {state.select!r}, this one by {metric!r}; "
                            f"give trainer.select={state.select}")
    state.select, state.micro_batches, state.world_size = metric, world.size * tc.accumulate, world.size
    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard")) if world.main else NullWriter()
    revision = checkpoint.git_revision()
    checkpoints = Checkpoints(run_dir, config, tokenizer, labels, revision, model, ema, optimizer, scaler, device,
                              sync)
    scored = checkpoints.scored
    if world.distributed or tc.accumulate > 1:
        log.info("global batch: %d x %d symbols (trainer.batch_tokens=%d x %d processes x trainer.accumulate=%d); "
                 "optim.lr=%g as given (not scaled)", state.micro_batches, tc.batch_tokens, tc.batch_tokens,
                 world.size, tc.accumulate, cfg.optim.lr)
    log.info("training: %d steps/epoch, up to %s on %s; best/ by validation %s; run directory %s",
             steps_per_epoch, limits.describe(),
             f"{world.size} processes ({world.backend}, {device.type})" if world.distributed else device,
             metric if validation is not None else "(no validation data)", run_dir)

    # ---- the loop (a run resumed after it had stopped, killed in its final evaluation, stops again)
    stop_reason, last_metrics = limits.reached(state), {}
    window_symbols, window_start, trained_symbols = 0, time.perf_counter(), 0
    threads.start()
    loop_start = state.started = time.perf_counter()  # this run's time counts from here
    elapsed = state.elapsed()  # with several processes rank 0's, sent with each step: one schedule for all
    if world.distributed:  # a resumed run near its time budget: rank 0's clock decides whether it goes on
        stop_reason, elapsed = sync.from_main((limits.reached(state), elapsed))
    progress_bar = Progress(limits, steps_per_epoch, state, tc.progress and world.main,
                            tc.log_minutes if world.main else 0)
    while stop_reason is None:
        batches = token_batches(lengths, tc.batch_tokens, shuffle=True, seed=cfg.seed * 1000 + state.epoch)
        steps = distributed.shard(batches, world, tc.accumulate)  # this rank's micro-batches of each step
        trained.train()
        while stop_reason is None and state.batch_in_epoch < len(steps):
            threads.update()
            micro = [{k: v.to(device, non_blocking=True) for k, v in task.make_batch(encoded, indices).items()}
                     for indices in steps[state.batch_in_epoch]]
            seconds = elapsed if world.distributed else state.elapsed()
            progress = max((state.step - warmup) / max(limits.planned - warmup, 1) if limits.planned else 0.0,
                           seconds / limits.seconds if limits.seconds else 0.0)
            lr = cfg.optim.lr * lr_factor(state.step, progress, warmup, cfg.optim.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, grad_norm = train_step(trained, micro, task, task_cfg, optimizer, scaler, amp_dtype, use_amp,
                                         tc.grad_clip)
            if ema is not None:
                ema.update_parameters(model)
            state.step += 1
            state.batch_in_epoch += 1
            symbols = sum(int(batch["mask"].sum()) for batch in micro)
            shown = copy.copy(state)  # where the progress line says the run is: before an epoch's end counts
            end_of_epoch = state.batch_in_epoch == len(steps)
            if end_of_epoch:  # counted before evaluating, so last/ resumes at the next epoch
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            stop_reason = limits.reached(state)  # an epoch's end reaches the step limit as well
            log_due = state.step % tc.log_every == 0 or state.step == 1 or progress_bar.due()
            save_due = (tc.checkpoint_every and state.step % tc.checkpoint_every == 0) or (
                tc.checkpoint_minutes and time.perf_counter() - checkpoints.last_saved >= 60 * tc.checkpoint_minutes)
            shown_loss = None
            if world.distributed:  # rank 0's clock decides; symbols and loss of all ranks
                (stopped, save_due, log_due, elapsed), (symbols,), shown_loss = sync.step(
                    [float(stop_reason is not None), float(save_due), float(log_due), state.elapsed()],
                    [float(symbols)], loss)
                stop_reason = stop_reason if world.main else ("rank 0 stopped" if stopped else None)
            window_symbols += symbols
            trained_symbols += symbols
            tokens_per_s = None
            if log_due:
                now = time.perf_counter()
                tokens_per_s = window_symbols / max(now - window_start, 1e-9)
                window_symbols, window_start = 0, now
                shown_loss = loss.item() if shown_loss is None else shown_loss
                log_step(writer, state.step, shown_loss, lr, float(grad_norm), tokens_per_s, layer_weights)
            progress_bar.update(shown, shown_loss if log_due else None, tokens_per_s)

            if (tc.eval_every and state.step % tc.eval_every == 0) or (not tc.eval_every and end_of_epoch) \
                    or stop_reason:
                metrics = {}
                if validation is not None and world.main:
                    metrics = last_metrics = task.evaluate(scored, tokenizer, labels, validation, task_cfg, device,
                                                           2 * tc.batch_tokens)
                    task.log_metrics(writer, "validation", metrics, state.step)
                    score = selection_score(metrics, metric)
                    improved = score > state.best_score
                    if improved:
                        state.best_score, state.best_step, state.bad_evals = score, state.step, 0
                        checkpoints.save("best", state, metrics)
                    else:
                        state.bad_evals += 1
                    best = -state.best_score if metric in LOWER_IS_BETTER else state.best_score
                    log.info("step %d epoch %.2f: validation %s %.4f%s (best %.4f at step %d), %.1f min",
                             state.step, state.epoch + state.batch_in_epoch / len(steps), metric, metrics[metric],
                             " *" if improved else "", best, state.best_step, state.elapsed() / 60)
                    stop_reason = stop_reason or limits.reached(state)
                if world.distributed and validation is not None:  # the others wait for rank 0's verdict
                    stop_reason, state.best_score, state.best_step, state.bad_evals = sync.from_main(
                        (stop_reason, state.best_score, state.best_step, state.bad_evals))
                trained.train()
                checkpoints.save("last", state, metrics)
            elif save_due:
                checkpoints.save("last", state, last_metrics)
            if end_of_epoch:
                break
    progress_bar.close()
    train_seconds = state.elapsed()
    # symbols per second of the training (all processes), evaluations included (what a user waits)
    train_symbols_per_s = trained_symbols / max(time.perf_counter() - loop_start, 1e-9)
    log.info("stopped: %s after %d steps, %.1f min", stop_reason, state.step, train_seconds / 60)

    # ---- final evaluation with the best weights (the last ones without validation data), by rank 0
    checkpoints.save("last", state, {})  # the end state: a larger budget continues from it (trainer.resume=DIR)
    if not world.main:
        threads.restore()
        return {}
    if validation is None or not (run_dir / "best").is_dir():
        checkpoints.save("best", state, {})
    model.load_state_dict(load_file(run_dir / "best" / "model.safetensors", device=str(device)))
    results = {"git_revision": revision, "stop_reason": stop_reason, "steps": state.step,
               "epochs": round(state.epoch + state.batch_in_epoch / max(steps_per_epoch, 1), 2),
               "best_step": state.best_step, "selected_by": metric, "train_seconds": train_seconds, "parameters": n_params,
               "receptive_field": receptive_field, "train_symbols_per_s": train_symbols_per_s, **threads.summary()}
    if world.distributed or tc.accumulate > 1:
        results.update(processes=world.size, ddp_backend=world.backend, accumulate=tc.accumulate,
                       global_batch_tokens=state.micro_batches * tc.batch_tokens)
    if start.init_dir is not None:
        results["init"] = str(start.init_dir.resolve())
    if distilled is not None:
        results["teacher"] = distilled
    for name in ("validation", "test"):
        if name in data:
            results[name] = task.evaluate(model, tokenizer, labels, data[name], task_cfg, device, 2 * tc.batch_tokens)
            log.info("%s (best model): %s", name, _format(results[name]))
            task.log_metrics(writer, f"final_{name}", results[name], state.step)
    best_meta = json.loads((run_dir / "best" / "metrics.json").read_text())
    checkpoint.save(run_dir / "best", model, config, tokenizer, labels, {**best_meta, **results})
    writer.close()
    results["total_seconds"] = time.perf_counter() - t0
    checkpoint.write_json(run_dir / "metrics.json", results)
    checkpoint.mark_finished(run_dir / "last")  # only now: resume=true finishes a run killed before this
    log.info("checkpoint: %s", run_dir / "best")
    threads.restore()
    return results


class NullWriter:
    """The TensorBoard writer of ranks other than 0: writes nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _format(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                     if isinstance(v, (int, float)))
