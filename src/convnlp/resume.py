"""Where a run starts from and where it stands: ``trainer.resume`` (its own last/ checkpoint, or
the newest unfinished run of the same config) and ``trainer.init`` (another run's weights), the
config comparisons that decide whether a checkpoint fits a run (``Start``), and the training
state that last/ saves and a resumed run restores (``TrainState``).

A run directory that a later run resumed holds ``resumed_by``; ``resume=true`` skips it once the
later run has written a last/ of its own, so a resume killed before its first checkpoint loses
nothing. A last/ mid-swap (``.last.old``, see checkpoint.py) counts as the run's last/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from convnlp import checkpoint
from convnlp.config import validate_group, with_earlier_defaults
from convnlp.distributed import SINGLE, seed_rank
from convnlp.errors import UserError

log = logging.getLogger(__name__)

MODEL_GROUPS = ("task", "encoder", "decoder", "tokenizer", "data")  # what a resumed run must share
RESUME_NOT_COMPARED = {"data": {"split"}}  # the split `convnlp eval` reads
# what a run started from a checkpoint (trainer.init) must share with it, less the keys that do
# not shape the weights
INIT_GROUPS = ("task", "encoder", "decoder", "tokenizer")
INIT_NOT_COMPARED = {"decoder": {"too_long"}, "task": {"predict_max_chars", "predict_context_words"}}


def _with_defaults(group: str, values: dict) -> dict:
    """A group's values with the schema's defaults filled in, so a config saved before a key
    existed compares equal to one with that key at its default."""
    try:
        return OmegaConf.to_container(validate_group(group, OmegaConf.create(values)))
    except UserError:
        return values


def config_difference(
    saved: dict,
    current: dict,
    names: tuple[str, str] = ("there", "now"),
    groups: tuple[str, ...] = MODEL_GROUPS,
    not_compared: dict[str, set[str]] = RESUME_NOT_COMPARED,
) -> str | None:
    """The first model-defining key of ``groups`` where two run configs differ, or None; ``names``
    say where each value is from; ``not_compared`` the keys of a group left out."""
    saved, current = with_earlier_defaults(saved), with_earlier_defaults(current)
    for group in groups:
        a, b = (_with_defaults(group, c.get(group) or {}) if c.get(group) else {} for c in (saved, current))
        skip = not_compared.get(group, ())
        a = {k: v for k, v in a.items() if k not in skip}
        b = {k: v for k, v in b.items() if k not in skip}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{group}.{key}: {a.get(key)!r} {names[0]}, {b.get(key)!r} {names[1]}"
    return None


def _resumable_checkpoint(last: Path) -> Path | None:
    """A last/ directory (or its previous version, if a save was killed while swapping them)
    that holds a training state and a config, or None."""
    try:
        last = checkpoint.existing(last)
    except UserError:
        return None
    return last if (last / "training_state.pt").is_file() and (last / "config.json").is_file() else None


def resumable(run: Path) -> Path | None:
    """A run directory's resumable last/ checkpoint, or None."""
    return _resumable_checkpoint(run / "last")


def _superseded(run: Path) -> bool:
    """Whether a run was resumed by another that got far enough to write its own last/; a
    resuming run killed before its first checkpoint leaves the run it resumed resumable."""
    marker = run / "resumed_by"
    if not marker.is_file():
        return False
    return any(resumable(Path(line)) for line in marker.read_text().split("\n") if line.strip())


def find_resume_dir(resume, run_dir: Path, config: dict) -> Path | None:
    """``trainer.resume``: false, a path to a run or its last/ directory, or true for the newest
    unfinished run with the same config beside this one (same parent directory) that no later
    run has taken further."""
    if resume in (False, None, "false", "False"):
        return None
    if resume not in (True, "true", "True"):
        path = Path(str(resume))
        last = resumable(path) or _resumable_checkpoint(path)
        if last is None:
            raise UserError(
                f"trainer.resume={resume}: no resumable checkpoint (last/training_state.pt) there"
                + (
                    "; the run stopped before its first checkpoint (trainer.checkpoint_minutes)"
                    if (path / ".hydra").is_dir()
                    else ""
                )
            )
        return last
    candidates, finished = [], []
    for run in run_dir.parent.iterdir():
        last = resumable(run) if run.is_dir() and run != run_dir else None
        if last is None or _superseded(run):
            continue
        try:
            done = json.loads((last / "metrics.json").read_text()).get("finished", False)
            saved = json.loads((last / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if config_difference(saved, config) is None and teacher_difference(saved, config) is None:
            (finished if done else candidates).append(last)
    if not candidates:
        newest = max(finished, key=lambda p: p.stat().st_mtime).parent if finished else None
        raise UserError(
            f"trainer.resume=true: no unfinished run of this config with a last/ checkpoint "
            f"in {run_dir.parent}"
            + (
                f"; the newest run of this config, {newest}, has finished (to train it further, raise "
                f"its limit and give trainer.resume={newest})"
                if newest
                else "; give its path instead: trainer.resume=DIR"
            )
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def teacher_difference(saved: dict, current: dict) -> str | None:
    """Why a run cannot resume another whose training targets came from another teacher, or None."""
    teachers = [(c.get("trainer") or {}).get("teacher") for c in (saved, current)]
    if teachers[0] != teachers[1]:
        return f"trainer.teacher: {teachers[0]!r} there, {teachers[1]!r} now"
    return None


def find_init_dir(init) -> Path | None:
    """``trainer.init``: a checkpoint directory, or a run directory (its best/)."""
    if init in (None, "", "null", "None"):
        return None
    try:
        return checkpoint.existing(str(init))
    except UserError as e:
        raise UserError(f"trainer.init: {e}") from None


# ------------------------------------------------------------------ where a run starts from


@dataclass
class Start:
    """A new run (all None), a resumed one (``resume_dir``: its last/, whose vocabularies the
    saved weights were trained with) or a fine-tuned one (``init_dir``: its weights and
    vocabularies, ``init_model``)."""

    resume_dir: Path | None = None
    init_dir: Path | None = None
    tokenizer: object | None = None
    labels: list[str] | None = None
    init_model: torch.nn.Module | None = None
    transfer: bool = False  # an autoencoder's embedding and encoder only (TRANSFERRED), labels of its own


def starting_point(trainer, run_dir: Path, config: dict) -> Start:
    """Where ``trainer.resume`` / ``trainer.init`` start this run, checked against its config."""
    resume_dir = find_resume_dir(trainer.resume, run_dir, config)
    if resume_dir is not None:  # a resumed run has its weights: trainer.init is not used
        saved = checkpoint.load(resume_dir)
        difference = config_difference(saved.config, config) or teacher_difference(saved.config, config)
        if difference:
            raise UserError(f"trainer.resume: {resume_dir} was trained with another config ({difference})")
        return Start(resume_dir=resume_dir, tokenizer=saved.tokenizer, labels=saved.labels)
    init_dir = find_init_dir(trainer.init)
    if init_dir is None:
        return Start()
    saved = checkpoint.load(init_dir)
    if saved.config["task"]["name"] == "autoencoder" != config["task"]["name"]:
        difference = transfer_difference(saved.config, config)
        if difference:
            raise UserError(
                f"trainer.init: the autoencoder {init_dir} has another encoder than this model ({difference}); "
                "set the encoder, tokenizer and task.embedding_dim as it has them"
            )
        return Start(init_dir=init_dir, tokenizer=saved.tokenizer, init_model=saved.model, transfer=True)
    difference = config_difference(saved.config, config, ("there", "now"), INIT_GROUPS, INIT_NOT_COMPARED)
    if difference:
        raise UserError(
            f"trainer.init: {init_dir} is another model ({difference}); set the model groups as it has them"
        )
    return Start(init_dir=init_dir, tokenizer=saved.tokenizer, labels=saved.labels, init_model=saved.model)


TRANSFERRED = ("embedding.", "encoder.")  # what an autoencoder gives a model of another task


def transfer_difference(saved: dict, current: dict) -> str | None:
    """Why an autoencoder's embedding and encoder cannot start this model (another encoder,
    tokenizer or embedding size), or None."""
    difference = config_difference(saved, current, ("there", "now"), ("encoder", "tokenizer"))
    if difference:
        return difference
    sizes = [c["task"].get("embedding_dim") for c in (saved, current)]
    return f"task.embedding_dim: {sizes[0]!r} there, {sizes[1]!r} now" if sizes[0] != sizes[1] else None


def load_transferred(model: torch.nn.Module, source: torch.nn.Module) -> None:
    """Copies ``source``'s embedding and encoder weights into ``model`` (shapes checked)."""
    own = model.state_dict()
    parts = {k: v for k, v in source.state_dict().items() if k.startswith(TRANSFERRED)}
    for name, value in parts.items():
        if name not in own or own[name].shape != value.shape:
            shape = tuple(own[name].shape) if name in own else "none"
            raise UserError(
                f"trainer.init: the autoencoder's {name} has shape {tuple(value.shape)}, this model's {shape}"
            )
    missing = [k for k in own if k.startswith(TRANSFERRED) and k not in parts]
    if missing:
        raise UserError(f"trainer.init: the autoencoder has no {missing[0]} for this model")
    model.load_state_dict(parts, strict=False)


def check_init_labels(start: Start, needed: list[str]) -> None:
    """A fine-tuned model must be able to predict every label of its new training data."""
    known = set(start.labels)
    missing = [label for label in needed if label not in known]
    if missing:
        raise UserError(
            f"trainer.init: the training data has {len(missing)} label(s) {start.init_dir} cannot "
            f"predict ({', '.join(missing[:5])})"
        )


# ------------------------------------------------------------------ where training stands


@dataclass
class TrainState:
    """The counters last/ saves (with the optimizer, the RNGs and the weights) and a resumed
    run goes on from. ``elapsed_before``: seconds trained by the runs this one continues."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = -math.inf  # of the selection metric, higher is better (see train.selection_score)
    best_step: int = 0
    bad_evals: int = 0
    select: str = "accuracy"  # trainer.select's metric
    micro_batches: int = 1  # batches per step, all processes together (processes x trainer.accumulate)
    world_size: int = 1  # processes
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.perf_counter, compare=False)  # this process's start

    def elapsed(self) -> float:
        """Training seconds, this run's and those of the runs it continues."""
        return self.elapsed_before + time.perf_counter() - self.started

    def saved(self, model, ema, optimizer, scaler, device: torch.device) -> dict:
        """last/'s training_state.pt: these counters, the optimizer, the RNGs and the loss scaler;
        with ``trainer.ema`` the trained weights too (the checkpoint's weights are the average)."""
        state = {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare},
            "elapsed": self.elapsed(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "scaler": scaler.state_dict(),
        }
        del state["elapsed_before"]
        if ema is not None:
            state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            state["ema_updates"] = int(ema.n_averaged)
        return state


def rng_state(device: torch.device) -> dict:
    """This process's random number generators (each rank of a data-parallel run has its own)."""
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore(
    resume_dir: Path,
    run_dir: Path,
    model,
    ema,
    optimizer,
    scaler,
    device: torch.device,
    world=None,
    accumulate: int = 1,
    seed: int = 0,
) -> TrainState:
    """Load a resumed run's weights, optimizer and RNGs from ``resume_dir`` (a last/), carry its
    best/ over (this run's best/ is the best of both) and mark it as resumed by ``run_dir``
    (rank 0 of several processes; each rank takes its own RNGs). The global batch (processes x
    ``trainer.accumulate``) must be the run's; with another number of processes the ranks'
    dropout gets new seeds."""
    world = world or SINGLE
    saved = checkpoint.load_training_state(resume_dir)
    _load_weights(resume_dir, saved, model, ema, optimizer, scaler, device, world)
    state = TrainState(
        step=saved["step"],
        epoch=saved["epoch"],
        batch_in_epoch=saved["batch_in_epoch"],
        best_score=saved["best_score"],
        best_step=saved["best_step"],
        bad_evals=saved["bad_evals"],
        select=saved.get("select", "accuracy"),
        elapsed_before=saved["elapsed"],
        micro_batches=saved.get("micro_batches", 1),
        world_size=saved.get("world_size", 1),
    )
    _check_global_batch(resume_dir, state, world, accumulate)
    _restore_rank_rngs(saved, state, world, device, seed)
    if world.main:
        _carry_over(resume_dir, run_dir)
    return state


def _load_weights(resume_dir: Path, saved: dict, model, ema, optimizer, scaler, device: torch.device, world) -> None:
    """The weights, the optimizer's and the scaler's state and the random numbers of a last/."""
    weights = load_file(resume_dir / "model.safetensors", device=str(device))
    try:
        # with trainer.ema the checkpoint holds the average; the trained weights are in the state
        model.load_state_dict(saved.get("model") or weights)
        if ema is not None:  # from a run without the average: it starts at the saved weights
            ema.module.load_state_dict(weights)
            ema.n_averaged.fill_(int(saved.get("ema_updates", 1)))
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise UserError(
            f"{resume_dir / 'training_state.pt'}: does not fit this model and optimizer ({str(e).splitlines()[0]})"
        ) from None
    if device.type == "cuda" and saved["cuda_rng"] and not world.distributed:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    scaler.load_state_dict(saved["scaler"])


def _check_global_batch(resume_dir: Path, state: TrainState, world, accumulate: int) -> None:
    """Another global batch is another schedule, other steps: not a continuation."""
    now, saved_world = world.size * accumulate, state.world_size
    if state.micro_batches != now:
        raise UserError(
            f"trainer.resume: {resume_dir} took {state.micro_batches} batches per step (processes x trainer.accumulate: "
            f"{saved_world} x {state.micro_batches // saved_world}), this run {now} ({world.size} x {accumulate}); keep "
            f"the global batch (e.g. trainer.accumulate={max(state.micro_batches // world.size, 1)} with {world.size} "
            f"process{'es' * (world.size > 1)}), or start from its weights with a new schedule: "
            f"trainer.init={resume_dir.parent}"
        )


def _restore_rank_rngs(saved: dict, state: TrainState, world, device: torch.device, seed: int) -> None:
    """Each rank takes its own random numbers back; with another number of processes, new seeds."""
    rank_rngs = saved.get("rank_rngs") or []
    if world.distributed and len(rank_rngs) == world.size:
        mine = rank_rngs[world.rank]
        torch.set_rng_state(mine["torch"])
        random.setstate(mine["python"])
        if device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], device)
    elif state.world_size != world.size:  # each process's random numbers cannot be mapped to the others'
        seed_rank(seed, world.rank, state.step)
        if world.main:
            log.warning(
                "trainer.resume: the run it continues had %d process(es), this one %d: the same global batch "
                "and schedule, new random numbers for dropout",
                state.world_size,
                world.size,
            )


def _carry_over(resume_dir: Path, run_dir: Path) -> None:
    """Rank 0: the resumed run's best/ into this run, stale writes removed, and the resumed run
    marked as continued by this one."""
    try:
        previous_best = checkpoint.existing(resume_dir.parent / "best")
    except UserError:
        previous_best = None  # it had no validation data, or stopped before its first evaluation
    if previous_best is not None:
        checkpoint.copy(previous_best, run_dir / "best")
    checkpoint.remove_stale_writes(resume_dir.parent)
    marker = resume_dir.parent / "resumed_by"  # resume=true goes on from this run once it has a last/
    try:
        with open(marker, "a") as f:
            f.write(f"{run_dir.resolve()}\n")
    except OSError as e:
        raise UserError(f"cannot write {marker} ({e.strerror})") from None
