"""What a finished race leaves in its run directory: ``best/`` (the winner's best checkpoint, so
eval, predict, export and ``convnlp.load`` take the race directory as any run), ``metrics.json``
(the winner's, with the race under ``auto``), ``report.md`` / ``report.csv`` (the candidates side
by side: their score after each round, the round each went out in) and the log's verdict."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from convnlp import checkpoint, report
from convnlp.auto.race import Entrant, State

log = logging.getLogger("convnlp.auto")


def _score(value) -> str:
    """A validation score as the log and the table show it: a fraction in percent."""
    if value is None:
        return "failed"
    return f"{value:.2%}" if 0 <= value <= 1 else f"{value:.4f}"


def _points(a: float, b: float) -> str:
    """How far apart two scores are, in points where they are fractions."""
    if 0 <= a <= 1 and 0 <= b <= 1:
        return f"{abs(a - b) * 100:.2f} points"
    return f"{abs(a - b):.4f}"


def _final(e: Entrant) -> float | None:
    scored = [s for s in e.scores if s is not None]
    return scored[-1] if scored else None


def verdict(state: State) -> list[str]:
    """The log's lines on the outcome: the winner, by how much, and the default recipe's place."""
    metric, rounds = state.metric, len(state.targets)
    winner = next(e for e in state.entrants if e.name == state.winner)
    lines = [
        f"auto: {winner.name} won: validation {metric} {_score(_final(winner))} "
        f"after {winner.train_seconds / 60:.1f} min of training ({winner.about})"
    ]
    others = [e for e in state.entrants if e is not winner and e.out_in is not None]
    if others:
        last = max(others, key=lambda e: (e.out_in, e.scores[e.out_in - 1] is not None))
        k = last.out_in - 1
        if last.scores[k] is not None and len(winner.scores) > k:
            lines.append(
                f"auto: in round {k + 1}, {winner.name} {_score(winner.scores[k])} against "
                f"{last.name} {_score(last.scores[k])} (runner-up, "
                f"{_points(winner.scores[k], last.scores[k])})"
            )
    default = next((e for e in state.entrants if e.default), None)
    if default is not None and default is not winner:
        k = default.out_in - 1
        lines.append(
            f"auto: the default recipe ({default.name}, what the command trains without auto=true) went out in "
            f"round {k + 1} of {rounds}: {_score(default.scores[k])} against {_score(winner.scores[k])}"
        )
    elif default is None:
        lines.append("auto: none of the recipes is what the command trains without auto=true")
    return lines


def table(state: State) -> tuple[str, list[dict]]:
    """The race as `convnlp report` shows runs, a row per candidate (its latest run), with its
    score after each round and the round it went out in."""
    runs = [Path(e.runs[-1]) for e in state.entrants if e.runs]
    sort = f"validation.{state.metric}"
    rows = report.collect(runs, sort)
    place = {e.runs[-1]: i for i, e in enumerate(standing(state)) if e.runs}
    rows.sort(key=lambda r: place[r["run"]])
    by_run = {e.runs[-1]: e for e in state.entrants if e.runs}
    extra = [(f"round {k + 1}", f"round{k + 1}") for k in range(len(state.targets))] + [("out in", "out_in")]
    for row in rows:
        e = by_run[row["run"]]
        row["run"], row["overrides"] = e.name + (" (default)" if e.default else ""), e.about
        for k in range(len(state.targets)):
            row[f"round{k + 1}"] = _score(e.scores[k]) if len(e.scores) > k else ""
        if e.name == state.winner:
            row["out_in"] = "won"
        else:
            row["out_in"] = f"round {e.out_in}" + (" (failed)" if e.error else "") if e.out_in else ""
        row["best"] = e.name == state.winner
    return report.markdown(rows, sort, "", extra=extra, names=("recipe", "what it is")), rows


def standing(state: State) -> list[Entrant]:
    """The candidates, the winner first, then by the round they went out in (later first) and
    their score in it."""

    def key(e: Entrant):
        k = (e.out_in or len(state.targets) + 1) - 1
        score = e.scores[k] if len(e.scores) > k and e.scores[k] is not None else None
        shown = 0.0 if score is None else (-score if state.lower_is_better else score)
        return (e.name != state.winner, -k, score is None, -shown)

    return sorted(state.entrants, key=key)


def finished_runs(entrant: Entrant) -> list[Path]:
    """An entrant's runs that finished (metrics.json and best/), the latest last."""
    return [Path(r) for r in entrant.runs if (Path(r) / "metrics.json").is_file() and (Path(r) / "best").is_dir()]


def finish(state: State, run_dir: Path) -> dict:
    """best/, metrics.json, report.md/csv and the verdict, from the finished race."""
    winner = next(e for e in state.entrants if e.name == state.winner)
    last = finished_runs(winner)[-1]
    checkpoint.copy(checkpoint.existing(last / "best"), run_dir / "best")
    metrics = json.loads((last / "metrics.json").read_text())
    metrics["auto"] = {
        "winner": winner.name,
        "budget_minutes": state.budget_seconds / 60,
        "wall_minutes": state.used_seconds / 60,
        "rounds": len(state.targets),
        "round_minutes": [t / 60 for t in state.targets],
        "selected_by": state.metric,
        "candidates": {
            e.name: {"scores": e.scores, "out_in": e.out_in, "error": e.error, "default": e.default, "runs": e.runs}
            for e in state.entrants
        },
    }
    metrics["total_seconds"] = state.used_seconds  # the race's wall time, resumed parts included
    checkpoint.write_json(run_dir / "metrics.json", metrics)
    text, rows = table(state)
    report.write(run_dir, text, rows, extra=[f"round{k + 1}" for k in range(len(state.targets))] + ["out_in"])
    for line in verdict(state):
        log.info("%s", line)
    log.info("auto: the race's table: %s; best/: the winner's best checkpoint", run_dir / "report.md")
    return metrics
