"""A run's setup, in the order it happens: its processes and device, its data and vocabularies,
its model and optimizer, and where its training state starts (new, or a resumed run's)."""

from __future__ import annotations

import logging
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from convnlp import distributed, resume
from convnlp.data import hold_out, load_splits
from convnlp.data import tokenizer as tok
from convnlp.data.batching import token_batches
from convnlp.distill import relabel_with_teacher
from convnlp.errors import UserError
from convnlp.model import Model, build_model, count_parameters
from convnlp.optimization import adamw, moving_average
from convnlp.registry import DATASETS
from convnlp.resume import Start, TrainState
from convnlp.tasks import get_task, task_config
from convnlp.threads import ThreadPolicy
from convnlp.train.budget import Limits, selection_metric, warmup_steps

log = logging.getLogger("convnlp.train")


@dataclass
class Environment:
    """Where a run trains: its processes, threads and device, and its mixed precision."""

    world: distributed.World
    threads: ThreadPolicy
    device: torch.device
    sync: distributed.Sync
    use_amp: bool
    amp_dtype: torch.dtype
    scaler: torch.amp.GradScaler


def environment(cfg: DictConfig) -> Environment:
    """Seed, processes (torchrun: join the others), threads, device, mixed precision."""
    tc = cfg.trainer
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    world = distributed.start(tc.device, tc.ddp_backend, tc.ddp_timeout_minutes)
    device = distributed.device(world, tc.device)
    use_amp = tc.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    return Environment(
        world=world,
        threads=ThreadPolicy(tc.threads),  # 0: the cores other processes leave free
        device=device,
        sync=distributed.Sync(world, device),
        use_amp=use_amp,
        amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
    )


@dataclass
class Data:
    """The splits, the vocabularies and the encoded training set of a run."""

    splits: dict
    start: Start
    tokenizer: object
    labels: list[str]
    encoded: dict
    lengths: list[int]
    validation: dict | None
    distilled: dict | None


def data(cfg: DictConfig, config: dict, env: Environment, run_dir: Path) -> Data:
    """The data, and the vocabularies: built from the training split, or (a resumed or
    fine-tuned run) its checkpoint's."""
    tc, task, task_cfg, world = cfg.trainer, get_task(cfg.task.name), task_config(config), env.world
    log.info("data: %s (data=%s)", DATASETS[cfg.data.name].info["description"], cfg.data.name)
    splits = load_splits(cfg.data, task=cfg.task.name)
    if tc.holdout and "validation" not in splits:
        splits = hold_out(splits, tc.holdout, cfg.seed)
        log.info(
            "no validation split: %d of the %d training examples (trainer.holdout=%g, seed %d) are held out as one",
            len(splits["validation"]),
            len(splits["validation"]) + len(splits["train"]),
            tc.holdout,
            cfg.seed,
        )
    start = resume.starting_point(tc, run_dir, config)
    train_split, distilled = splits["train"], None
    if tc.teacher is not None:  # with several processes rank 0 relabels, the others take its targets
        if world.main:
            train_split, distilled = relabel_with_teacher(
                train_split, tc.teacher, task, cfg.task.name, task_cfg, env.device, 2 * tc.batch_tokens
            )
        train_split, distilled = env.sync.from_main((train_split, distilled) if world.main else None)
    tokenizer, labels = start.tokenizer, start.labels
    # new labels come from the data as given (a teacher's outputs may lack some references' labels)
    given = (
        splits["train"] if distilled is None else {"target": list(splits["train"]["target"]) + train_split["target"]}
    )
    if start.transfer:  # an autoencoder's vocabulary, encoder and embedding; this task's labels
        labels = task.label_vocabulary(given, task_cfg, tokenizer)
        log.info("trainer.init: the embedding and encoder of the autoencoder %s, and its vocabulary", start.init_dir)
    elif start.init_dir is not None:
        resume.check_init_labels(start, task.label_vocabulary(train_split, task_cfg, tokenizer))
        log.info("trainer.init: starting from the weights of %s", start.init_dir)
    elif start.resume_dir is None:  # a new run: its vocabulary and labels from the data
        tokenizer = tok.build_from(cfg.tokenizer, task.tokenizer_examples(splits["train"]))
        labels = task.label_vocabulary(given, task_cfg, tokenizer)
        if world.distributed:  # every rank uses rank 0's vocabularies
            text, labels = env.sync.from_main((tokenizer.to_str(), labels) if world.main else None)
            tokenizer = tokenizer if world.main else tok.Tokenizer.from_str(text)
    encoded = task.encode(train_split, tokenizer, labels, "train", task_cfg)
    lengths = [len(ids) for ids in encoded["ids"]]
    validation = splits["validation"] if "validation" in splits else None
    if validation is not None:
        task.report_unseen(validation, labels, "validation", task_cfg, tokenizer)  # evaluate() encodes it
        validation = {column: validation[column] for column in task.COLUMNS}  # read from Arrow once
    log.info(
        "train: %s, %d symbols; vocabulary %d %s symbols, %d labels",
        task.describe(encoded),
        sum(lengths),
        tokenizer.get_vocab_size(),
        cfg.tokenizer.name,
        len(labels),
    )
    return Data(
        splits=splits,
        start=start,
        tokenizer=tokenizer,
        labels=labels,
        encoded=encoded,
        lengths=lengths,
        validation=validation,
        distilled=distilled,
    )


@dataclass
class Network:
    """The model and what trains it: its DDP wrapper (``trained``, the model itself in one
    process), the moving average, the optimizer and the selection metric."""

    model: Model
    trained: nn.Module
    ema: object
    optimizer: torch.optim.Optimizer
    parameters: int
    receptive_field: int | str
    layer_weights: list[tuple[str, torch.Tensor]]
    metric: str


def network(cfg: DictConfig, config: dict, env: Environment, d: Data) -> Network:
    """The model (a fine-tuned run's initial weights loaded), under DDP wrapped, its moving
    average (``trainer.ema``) and optimizer."""
    world = env.world
    model = build_model(task_config(config), config["encoder"], d.tokenizer.get_vocab_size(), len(d.labels)).to(
        env.device
    )
    if d.start.transfer:
        resume.load_transferred(model, d.start.init_model)
        d.start.init_model = None
    elif d.start.init_model is not None:
        model.load_state_dict(d.start.init_model.state_dict())
        d.start.init_model = None
    receptive_field = model.encoder.receptive_field
    receptive_field = int(receptive_field) if math.isfinite(receptive_field) else "unbounded"
    log.info(
        "model: %s encoder, %d parameters, receptive field %s symbols",
        cfg.encoder.name,
        count_parameters(model),
        receptive_field,
    )
    if world.rank:  # each rank its own dropout (the weights are rank 0's: DDP sends them to the others)
        distributed.seed_rank(cfg.seed, world.rank)
    trained = model  # what the steps run: the model, or under DDP its wrapper, which averages gradients
    if world.distributed:  # (a 1x1 convolution's gradient comes transposed: slower to copy, not wrong)
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    layer_weights = [
        (f"encoder.{name}", module.weight)
        for name, module in model.encoder.named_modules()
        if isinstance(module, nn.Conv1d)
    ]
    layer_weights += [
        (f"encoder.{name}", parameter)
        for name, parameter in model.encoder.named_parameters()
        if name.startswith("lstm.weight_ih")
    ]
    return Network(
        model=model,
        trained=trained,
        ema=moving_average(model, cfg.trainer.ema),
        optimizer=adamw(model, cfg.optim),
        parameters=count_parameters(model),
        receptive_field=receptive_field,
        layer_weights=layer_weights,
        metric=selection_metric(cfg.trainer.select, cfg.task.name, d.labels),
    )


def schedule(cfg: DictConfig, env: Environment, d: Data, net: Network) -> tuple[int, Limits, int]:
    """Steps per epoch (of every process), the limits and the warmup steps."""
    tc = cfg.trainer
    steps_per_epoch = distributed.steps_per_epoch(
        len(token_batches(d.lengths, tc.batch_tokens, shuffle=False)), env.world, tc.accumulate
    )
    limits = Limits.of(tc, steps_per_epoch, net.metric)
    return steps_per_epoch, limits, warmup_steps(cfg.optim.warmup_steps, limits)


def state(cfg: DictConfig, env: Environment, d: Data, net: Network, run_dir: Path) -> TrainState:
    """A new training state, or where the resumed run's last/ left it."""
    tc, world = cfg.trainer, env.world
    state = TrainState()
    if d.start.resume_dir is not None:
        state = resume.restore(
            d.start.resume_dir,
            run_dir,
            net.model,
            net.ema,
            net.optimizer,
            env.scaler,
            env.device,
            world,
            tc.accumulate,
            cfg.seed,
        )
        log.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            d.start.resume_dir,
            state.step,
            state.epoch,
            state.batch_in_epoch,
        )
        if state.select != net.metric:
            raise UserError(
                f"trainer.select: the resumed run selected by {state.select!r}, this one by "
                f"{net.metric!r}; give trainer.select={state.select}"
            )
    state.select, state.micro_batches, state.world_size = net.metric, world.size * tc.accumulate, world.size
    return state
