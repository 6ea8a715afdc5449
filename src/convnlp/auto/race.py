"""The race: the candidates' `convnlp train` processes, round by round, and the state that lets a
killed race go on (``race.json`` in the race's run directory).

Each candidate round is a run of its own, ``candidates/<recipe>/round<k>/``: round 1 starts the
candidate, every later round resumes it from its previous round's last/ (``trainer.resume=DIR``)
with a larger ``trainer.max_minutes`` (the candidate's training time so far plus the round's), so
its weights, optimizer and step count go on and best/ is carried over. The learning rate decays
over the candidate's budget so far, so every round ends annealed and the rounds compare trained
models, not models caught mid-schedule. ``race.json`` is rewritten at every event, so a race killed
at any point goes on with ``trainer.resume=true``: a candidate's round that did not finish resumes
from its own last/ (or its previous round's).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from convnlp import checkpoint
from convnlp.auto import plan
from convnlp.config import LOWER_IS_BETTER, override_key
from convnlp.errors import UserError
from convnlp.resume import resumable

log = logging.getLogger("convnlp.auto")

STATE = "race.json"
INTERRUPTED = (-signal.SIGKILL, -signal.SIGTERM, 128 + signal.SIGKILL, 128 + signal.SIGTERM)  # killed from outside
POLL_SECONDS = 0.5
SAVE_SECONDS = 10.0


@dataclass
class Entrant:
    """A candidate in the race: its recipe, its runs round by round, its validation score after
    each round (None: the run failed), the round it was eliminated (or failed) in, 1-based, and
    why it failed."""

    name: str
    about: str
    overrides: list[str]
    default: bool = False
    runs: list[str] = field(default_factory=list)
    scores: list = field(default_factory=list)
    out_in: int | None = None
    error: str | None = None
    train_seconds: float = 0.0  # its training time so far (its last run's metrics.json)


@dataclass
class State:
    """Everything a killed race needs to go on, saved as race.json."""

    task: str
    key: list[str]  # the command line the candidates share: a resumed race must have the same
    budget_seconds: float
    threads: int  # each candidate's threads in the rounds of several (the last round: final_threads)
    final_threads: int
    slots: int
    extra: list[str]  # the race's own settings for every candidate (trainer.holdout, ...)
    entrants: list[Entrant]
    used_seconds: float = 0.0
    targets: list[float] = field(default_factory=list)  # each round's training seconds per candidate, in all
    overhead: float = plan.FIRST_GUESS_OVERHEAD
    metric: str | None = None  # trainer.select's metric, once a candidate has told it
    lower_is_better: bool = False
    winner: str | None = None
    finished: bool = False
    config_dirs: list[str] = field(default_factory=list)

    def survivors(self, k: int) -> list[Entrant]:
        """The candidates that run in round ``k`` (0-based): those not eliminated (or failed) before it."""
        return [e for e in self.entrants if e.out_in is None or e.out_in > k]

    def unscored(self, k: int) -> list[Entrant]:
        return [e for e in self.survivors(k) if len(e.scores) <= k]

    def save(self, run_dir: Path) -> None:
        checkpoint.write_json(run_dir / STATE, asdict(self))

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            raw = json.loads((path / STATE).read_text())
            raw["entrants"] = [Entrant(**e) for e in raw["entrants"]]
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise UserError(f"{path / STATE}: not a race's state ({type(e).__name__}: {e})") from None

    def retry_failures(self) -> None:
        """A resumed race runs again the failed candidates of the round it stopped in (the
        last round's among them), from their own last/."""
        k = len(self.targets) - 1
        for e in self.entrants:
            if k >= 0 and len(e.scores) == k + 1 and e.scores[k] is None and e.out_in == k + 1:
                e.scores.pop()
                e.out_in, e.error = None, None


# ------------------------------------------------------------------ one candidate's process


def _die_with_parent() -> None:
    """In the child: SIGTERM when the race's process dies, even by SIGKILL (Linux), so no
    candidate trains on unwatched."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Running:
    entrant: Entrant
    process: subprocess.Popen
    run_dir: Path
    started: float
    trained_before: float


def launch(state: State, entrant: Entrant, k: int, run_dir: Path) -> Running:
    """Start ``entrant``'s round ``k`` (0-based): a new run, resumed from its latest last/."""
    threads = state.final_threads if len(state.survivors(k)) == 1 else state.threads
    sub = run_dir / "candidates" / entrant.name / f"round{k + 1}"
    n = 2
    while sub.exists():  # a resumed race writes into a new directory; this is only a guard
        sub, n = sub.with_name(f"round{k + 1}_{n}"), n + 1
    sub.mkdir(parents=True)
    previous = next((Path(r) for r in reversed(entrant.runs) if resumable(Path(r))), None)
    args = [
        *(f"--config-dir={d}" for d in state.config_dirs),
        *entrant.overrides,
        *state.extra,
        f"trainer.max_minutes={state.targets[k] / 60:.4f}",
        "trainer.progress=false",
        f"hydra.run.dir={quoted(sub)}",
        *([f"trainer.threads={threads}"] if "trainer.threads" not in map(override_key, entrant.overrides) else []),
        *([f"trainer.resume={quoted(previous)}"] if previous is not None else []),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    entrant.runs.append(str(sub))
    console = open(sub / "console.log", "w")  # noqa: SIM115 (the child writes it; closed when the child is done)
    process = subprocess.Popen(
        [sys.executable, "-m", "convnlp", "train", *args],
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=_die_with_parent,
    )
    console.close()
    log.info(
        "auto: round %d: %s starts%s (%.2f min of training in all, %s)",
        k + 1,
        entrant.name,
        f", resumed from {previous.parent.name if previous.name == 'last' else previous.name}" if previous else "",
        state.targets[k] / 60,
        f"{threads} thread{'s' * (threads != 1)}" if threads else "on the free cores",
    )
    return Running(entrant, process, sub, time.monotonic(), entrant.train_seconds)


def quoted(path: Path) -> str:
    """A path as a Hydra override's value, quoted (a comma, a bracket or ``=`` in it stays text)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error_line(run_dir: Path) -> str:
    """Why a candidate's process failed: its `convnlp: error:` line, else its last line."""
    try:
        lines = (run_dir / "console.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    errors = [line.removeprefix("convnlp: error: ") for line in lines if line.startswith("convnlp: error:")]
    return (errors or lines or ["no output"])[-1][:300]


def finished(state: State, running: Running, k: int) -> float | None:
    """Record a candidate's finished round: its score, its training time; the process's
    overhead (wall time not spent training), 0 when it failed, None when it was killed from
    outside (the out-of-memory killer, a stray SIGTERM): not scored, to be run again."""
    entrant, code = running.entrant, running.process.returncode
    wall = time.monotonic() - running.started
    metrics_path = running.run_dir / "metrics.json"
    if code in INTERRUPTED:
        log.warning("auto: round %d: %s was killed (exit %s); it goes on from its last/", k + 1, entrant.name, code)
        return None
    if code != 0 or not metrics_path.is_file():
        entrant.error = _error_line(running.run_dir) if code != 0 else "no metrics.json"
        entrant.scores.append(None)
        entrant.out_in = k + 1
        log.warning("auto: round %d: %s failed (exit %s): %s", k + 1, entrant.name, code, entrant.error)
        return 0.0
    metrics = json.loads(metrics_path.read_text())
    metric = metrics.get("selected_by")
    score = (metrics.get("validation") or {}).get(metric)
    if state.metric is None:
        state.metric, state.lower_is_better = metric, metric in LOWER_IS_BETTER
    entrant.scores.append(score)
    if not isinstance(score, (int, float)) or math.isnan(score):
        entrant.error, entrant.out_in = f"no validation {metric} in {metrics_path}", k + 1
        log.warning("auto: round %d: %s: %s", k + 1, entrant.name, entrant.error)
        return 0.0
    trained = metrics.get("train_seconds", 0.0) - running.trained_before
    entrant.train_seconds = metrics.get("train_seconds", 0.0)
    log.info(
        "auto: round %d: %s: validation %s %s (%.1f min of training in all; %s)",
        k + 1,
        entrant.name,
        metric,
        f"{score:.4f}",
        entrant.train_seconds / 60,
        metrics.get("stop_reason", ""),
    )
    return max(0.0, wall - trained)


# ------------------------------------------------------------------ a round


def plan_round(state: State, k: int, min_seconds: float) -> None:
    """Round ``k``'s training time per candidate (in all), from the wall time left; the first
    round's must be at least ``min_seconds``."""
    alive = len(state.survivors(k))
    left = plan.sizes(alive)
    slots = 1 if alive == 1 else state.slots
    remaining = state.budget_seconds - state.used_seconds
    seconds = plan.round_seconds(remaining, left, slots, state.overhead)
    if k == 0 and seconds < min_seconds:
        raise UserError(
            f"auto=true: {state.budget_seconds / 60:g} minutes are too few for {alive} candidates "
            f"({len(left)} rounds, {state.slots} at a time): the first round would train each for "
            f"{max(seconds, 0) / 60:.2f} min (auto.min_minutes={min_seconds / 60:g}); give a larger "
            "trainer.max_minutes or fewer recipes (auto.recipes=[...])"
        )
    if seconds < 6:
        log.warning("auto: round %d: the budget is spent; each candidate gets 0.1 min more", k + 1)
        seconds = 6.0
    state.targets.append((state.targets[-1] if state.targets else 0.0) + seconds)
    log.info(
        "auto: round %d: %d candidate%s, %d at a time, %.2f min of training each (%.1f of %g min of wall time left)",
        k + 1,
        alive,
        "" if alive == 1 else "s",
        min(slots, alive),
        seconds / 60,
        remaining / 60,
        state.budget_seconds / 60,
    )


def run_round(state: State, k: int, run_dir: Path, clock) -> None:
    """Train round ``k``'s unscored candidates, ``state.slots`` at a time (one, alone, in the last
    round); race.json is saved at every event. Stopped (SIGTERM, Ctrl-C, an error), the
    candidates' processes are stopped too: each keeps its last/."""
    waiting = state.unscored(k)
    slots = 1 if len(state.survivors(k)) == 1 else state.slots
    running: list[Running] = []
    overheads: list[float] = []
    again: set[str] = set()  # killed from outside, and started again (once each)
    saved = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < slots:
                running.append(launch(state, waiting.pop(0), k, run_dir))
                state.save(run_dir)
            time.sleep(POLL_SECONDS)
            for r in [r for r in running if r.process.poll() is not None]:
                running.remove(r)
                overhead = finished(state, r, k)
                if overhead is None and r.entrant.name not in again:
                    again.add(r.entrant.name)
                    waiting.append(r.entrant)
                elif overhead is None:
                    raise UserError(
                        f"auto=true: {r.entrant.name} was killed twice in round {k + 1} (out of memory?); "
                        f"see {r.run_dir / 'console.log'}, then continue with trainer.resume=true"
                    )
                else:
                    overheads.append(overhead)
                clock(state)
                state.save(run_dir)
            if time.monotonic() - saved > SAVE_SECONDS:
                clock(state)
                state.save(run_dir)
                saved = time.monotonic()
    finally:
        stop(running)
        clock(state)
        state.save(run_dir)
    measured = [o for o in overheads if o > 0]
    if measured:
        state.overhead = max(measured)


def stop(running: list[Running]) -> None:
    """Stop candidates' processes (SIGTERM: each exits as a killed training does, its last/ whole)."""
    for r in running:
        with contextlib.suppress(ProcessLookupError):
            r.process.terminate()
    deadline = time.monotonic() + 60
    for r in running:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.process.kill()


def eliminate(state: State, k: int) -> None:
    """After round ``k``: the better half of its candidates (by their validation score) goes on."""
    alive = state.survivors(k)
    scored = [e for e in alive if e.out_in is None]
    if not scored:
        first = next(e for e in alive if e.error)
        raise UserError(f"auto=true: every candidate of round {k + 1} failed; {first.name}: {first.error}")
    scored.sort(key=lambda e: e.scores[k], reverse=not state.lower_is_better)
    keep = min(math.ceil(len(alive) / 2), len(scored))
    if all(e.out_in == k + 1 for e in scored[keep:]) and scored[keep:]:
        return  # a resumed race going over a round it had decided
    for e in scored[keep:]:
        e.out_in = k + 1
    log.info(
        "auto: after round %d: %s go%s on; out: %s",
        k + 1,
        ", ".join(e.name for e in scored[:keep]),
        "es" if keep == 1 else "",
        ", ".join(f"{e.name} ({e.scores[k]:.4f})" for e in scored[keep:]) or "none",
    )
