"""``convnlp train <task and data> auto=true [trainer.max_minutes=M]``: the best recipe for the
user's data, found within M minutes of wall time (``auto.minutes``, 30, when not given).

The task's recipes (``recipes.py``) race by successive halving (``plan.py``): every candidate
trains a short equal budget as a `convnlp train` process of its own, one thread each, side by side
on the free cores; the better half by ``trainer.select`` on validation goes on from its own last/,
and so on until one remains, which gets the rest of the budget (``race.py``). The race directory
ends like any run's (``outcome.py``): best/ (the winner's), metrics.json, report.md/csv.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from convnlp import distributed
from convnlp.auto import outcome, plan, recipes
from convnlp.auto.race import STATE, Entrant, State, eliminate, plan_round, run_round
from convnlp.config import override_key
from convnlp.errors import UserError

log = logging.getLogger("convnlp.auto")

# the command line's keys the race sets for its candidates itself
RACE_KEYS = ("auto.", "trainer.max_minutes", "trainer.resume", "trainer.progress", "hydra.")


def _base(overrides: list[str]) -> list[str]:
    """The command line the candidates share: the user's overrides less the race's own keys."""
    return [o for o in overrides if not override_key(o).startswith(RACE_KEYS)]


def _no_validation(cfg: DictConfig) -> bool:
    """Whether the data has no validation split (a file-based set without data.validation)."""
    data = cfg.data
    return ("validation" in data and data.validation is None) or (
        "validation_split" in data and data.validation_split is None
    )


def _check(cfg: DictConfig, given: set[str]) -> None:
    if distributed.launched():
        raise UserError("auto=true starts its candidates' processes itself: run it without torchrun")
    if "experiment" in given:
        raise UserError(
            "auto=true races the recipes of conf/recipes/<task>/; experiment=... is one recipe already: give one of the two"
        )
    if cfg.auto.recipes is not None and len(cfg.auto.recipes) == 0:
        raise UserError("auto.recipes=[] races nothing: name the recipes, or leave it null for all of the task's")
    if cfg.trainer.max_minutes == 0 and "trainer.max_minutes" in given:
        raise UserError("auto=true needs a time budget: trainer.max_minutes=M (M > 0; without it, auto.minutes)")


def new_state(cfg: DictConfig, given: set[str], base: list[str], config_dirs: list[str]) -> State:
    """A new race: its candidates, checked, and how it will run."""
    chosen = recipes.candidates(cfg.task.name, list(cfg.auto.recipes) if cfg.auto.recipes else None, base)
    extra = []
    if _no_validation(cfg):
        if "trainer.holdout" in given and not cfg.trainer.holdout:
            raise UserError(
                "auto=true compares the recipes on validation data: give data.validation, or a trainer.holdout > 0"
            )
        if "trainer.holdout" not in given:
            extra.append(f"trainer.holdout={cfg.auto.holdout}")
        log.info(
            "auto: the data has no validation split: each candidate holds out the same seeded %g%% of the "
            "training data to be compared on (trainer.holdout)",
            100 * (cfg.trainer.holdout if "trainer.holdout" in given else cfg.auto.holdout),
        )
    if "trainer.patience" not in given:  # a round must not end a candidate's later rounds before they start
        extra.append("trainer.patience=0")
        log.info("auto: no early stopping (trainer.patience=0): each round trains its time, best/ keeps the best")
    threads = cfg.trainer.threads if "trainer.threads" in given else 1
    free = plan.free_cores()
    slots = cfg.auto.parallel or plan.slots(threads, free)
    budget = 60 * (cfg.trainer.max_minutes if "trainer.max_minutes" in given else cfg.auto.minutes)
    log.info(
        "auto: %d candidates for task=%s, %g min of wall time, %d at a time (%.1f free cores, %s each): %s",
        len(chosen),
        cfg.task.name,
        budget / 60,
        min(slots, len(chosen)),
        free,
        f"{threads} thread{'s' * (threads != 1)}" if threads else "the free cores",
        "; ".join(f"{c.name}{' (the default)' if c.default else ''}: {c.about}" for c in chosen),
    )
    entrants = [Entrant(c.name, c.about, c.overrides, c.default) for c in chosen]
    return State(
        task=cfg.task.name,
        key=race_key(cfg, base),
        budget_seconds=budget,
        threads=threads,
        final_threads=threads if "trainer.threads" in given else 0,
        slots=slots,
        extra=extra,
        entrants=entrants,
        config_dirs=config_dirs,
    )


def race_key(cfg: DictConfig, base: list[str]) -> list[str]:
    """What a resumed race must share with the one it goes on: the command line and the recipes."""
    return sorted(base) + ([f"auto.recipes={','.join(cfg.auto.recipes)}"] if cfg.auto.recipes else [])


def previous_race(resume, run_dir: Path, key: list[str]) -> Path | None:
    """``trainer.resume``: false; a race directory; or true: the newest unfinished race of this
    command line beside this one that no later race has taken on."""
    if resume in (False, None, "false", "False"):
        return None
    if resume not in (True, "true", "True"):
        path = Path(str(resume))
        if not (path / STATE).is_file():
            raise UserError(f"trainer.resume={resume}: not a race of auto=true (no {STATE} there)")
        return path
    found = []
    for other in run_dir.parent.iterdir():
        if other == run_dir or not (other / STATE).is_file() or (other / "resumed_by").is_file():
            continue
        try:
            state = State.load(other)
        except UserError:
            continue
        if not state.finished and state.key == key:
            found.append(other)
    if not found:
        raise UserError(
            f"trainer.resume=true: no unfinished race of this command line in {run_dir.parent}; "
            "give its directory instead: trainer.resume=DIR"
        )
    return max(found, key=lambda p: (p / STATE).stat().st_mtime)


def resumed_state(path: Path, cfg: DictConfig, given: set[str], key: list[str], run_dir: Path) -> State:
    state = State.load(path)
    if state.finished:
        raise UserError(f"trainer.resume={path}: that race has finished (its winner: {state.winner})")
    if state.key != key:
        raise UserError(f"trainer.resume={path}: that race had another command line ({' '.join(state.key)})")
    if "trainer.max_minutes" in given:
        state.budget_seconds = 60 * cfg.trainer.max_minutes
    state.retry_failures()
    log.info(
        "auto: resuming the race of %s: %.1f of %g min used, round %d",
        path,
        state.used_seconds / 60,
        state.budget_seconds / 60,
        len(state.targets),
    )
    return state


def race(cfg: DictConfig, run_dir: Path, given: set[str]) -> dict:
    """Race the task's recipes on the data; the winner's metrics (with the race's, under ``auto``)."""
    start = time.monotonic()
    _check(cfg, given)
    hydra_cfg = HydraConfig.get()
    base = _base(list(hydra_cfg.overrides.task))
    config_dirs = [s["path"] for s in hydra_cfg.runtime.config_sources if s["provider"] == "command-line"]
    key = race_key(cfg, base)
    previous = previous_race(cfg.trainer.resume, run_dir, key)
    if previous is not None:
        state = resumed_state(previous, cfg, given, key, run_dir)
        state.save(run_dir)  # first, then the mark: a resume killed in between leaves the old race resumable
        (previous / "resumed_by").write_text(f"{run_dir.resolve()}\n")
    else:
        state = new_state(cfg, given, base, config_dirs)
    used_before = state.used_seconds  # the race's start counts: composing the recipes, measuring the cores

    def clock(s: State) -> None:
        s.used_seconds = used_before + time.monotonic() - start

    if len(state.entrants) == 1:
        log.info("auto: one candidate (%s): it trains alone, for the whole budget", state.entrants[0].name)
    k = 0
    while True:
        alive = state.survivors(k)
        if len(state.targets) <= k:
            plan_round(state, k, 60 * cfg.auto.min_minutes)
        state.save(run_dir)
        run_round(state, k, run_dir, clock)
        if len(alive) == 1:
            if alive[0].error and not outcome.finished_runs(alive[0]):
                raise UserError(f"auto=true: {alive[0].name}, the last candidate, failed: {alive[0].error}")
            if alive[0].error:  # its earlier rounds' best/ is the race's (trainer.resume=true tries the round again)
                log.warning(
                    "auto: %s's last round failed; the race ends with its best/ of the rounds before", alive[0].name
                )
            break
        eliminate(state, k)
        k += 1
    state.winner = alive[0].name
    clock(state)
    state.save(run_dir)
    metrics = outcome.finish(state, run_dir)
    state.finished = True  # only now: a race killed while writing best/ finishes it when resumed
    state.save(run_dir)
    return metrics
