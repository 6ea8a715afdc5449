"""`convnlp report DIR [DIR ...]`: training runs side by side, one row each.

A directory is a run (it holds ``metrics.json`` or ``.hydra/``), or holds runs below it (a
``-m`` sweep: ``outputs/train-multirun/<date>_<time>/``). Each row gives the run's overrides
(what the sweep varied), its validation and test metrics, training time, parameters and
speed; rows are sorted by ``sort`` (a key of metrics.json, dotted: ``validation.accuracy``),
the best is marked ``*``. A run without metrics.json is listed with the last line of its log
(failed, killed or still running), never left out. With two or more finished runs a last row
gives the mean ± sample standard deviation of each metric (the minutes: their sum), which is
the cross-validation figure of a sweep over folds (``data.fold=range(10)``). The table is
printed as Markdown and written to ``report.md`` and ``report.csv`` in the report's run
directory.

An Optuna search's storage file (``convnlp report outputs/optuna.db``, see
``conf/hparams_search/``) gives one table per study: its trials, best first, with their
parameters; its sweep directories are reported as any sweep's.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from convnlp.config import LOWER_IS_BETTER
from convnlp.errors import UserError

# (column, key in metrics.json, format)
COLUMNS = [
    ("validation", "validation.accuracy", "{:.2%}"),
    ("test", "test.accuracy", "{:.2%}"),
    ("validation F1", "validation.f1", "{:.4f}"),
    ("test F1", "test.f1", "{:.4f}"),
    ("validation WER", "validation.wer", "{:.2%}"),
    ("test WER", "test.wer", "{:.2%}"),
    ("test PER", "test.per", "{:.2%}"),
    ("test CER", "test.cer", "{:.2%}"),
    ("epochs", "epochs", "{:g}"),
    ("minutes", "train_seconds", "{:.1f}"),  # shown as minutes (see _cell)
    ("parameters", "parameters", "{:,}"),
    ("receptive field", "receptive_field", "{}"),
    ("train symbols/s", "train_symbols_per_s", "{:,.0f}"),
    ("test words/s", "test.words_per_s", "{:,.0f}"),
    ("test sources/s", "test.sources_per_s", "{:,.0f}"),
    ("stopped", "stop_reason", "{}"),
]


def find_runs(directory: Path) -> list[Path]:
    """The run directories at or below ``directory`` (a run holds metrics.json or .hydra/; a race
    of ``auto=true``, race.json: its candidates' latest runs)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    if (directory / "race.json").is_file():  # an auto=true race: its candidates' latest runs
        try:
            race = json.loads((directory / "race.json").read_text())
            return [Path(e["runs"][-1]) for e in race["entrants"] if e.get("runs")]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{directory / 'race.json'}: not a race's state ({e})") from None
    if (directory / "metrics.json").is_file() or (directory / ".hydra").is_dir():
        return [directory]
    runs = sorted(
        {p.parent for p in directory.rglob(".hydra") if p.is_dir()}
        | {p.parent for p in directory.rglob("metrics.json") if p.parent.name not in ("best", "last")}
    )
    # a race's candidates are its own rows (convnlp report <race>); below a folder of runs, the race is one

    def in_race(run: Path) -> bool:  # a folder between directory and the run holds race.json
        return any((directory / p / "race.json").is_file() for p in run.relative_to(directory).parents if p.parts)

    return [run for run in runs if not in_race(run)]


def _get(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _overrides(run: Path) -> str:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    ignored = ("data.train=", "data.validation=", "data.test=", "trainer.progress=", "hydra.")
    return " ".join(o for o in OmegaConf.to_container(OmegaConf.load(path)) if not o.startswith(ignored))


def _status(run: Path) -> str:
    """Why a run has no metrics.json: the last line of its log."""
    logs = sorted(run.glob("*.log"))
    lines = logs[0].read_text(errors="replace").strip().splitlines() if logs else []
    return lines[-1].split(" - ", 1)[-1][:120] if lines else "no metrics.json and no log"


def selection_key(runs: list[Path]) -> str:
    """``sort=auto``: the validation metric the runs selected their best checkpoint by
    (``trainer.select``, saved as ``selected_by``) when they all used one, else accuracy."""
    chosen = set()
    for run in runs:
        try:
            chosen.add(json.loads((run / "metrics.json").read_text()).get("selected_by", "accuracy"))
        except (OSError, json.JSONDecodeError, AttributeError):
            continue  # unfinished or unreadable: collect() reports it
    return f"validation.{chosen.pop()}" if len(chosen) == 1 else "validation.accuracy"


def collect(runs: list[Path], sort: str) -> list[dict]:
    """One row per run: its name, overrides, the chosen metric and the COLUMNS."""
    rows = []
    for run in runs:
        row = {"run": str(run), "overrides": _overrides(run)}
        path = run / "metrics.json"
        try:
            metrics = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
        if metrics is None:
            row["status"] = _status(run)
        for _, key, _ in COLUMNS:
            row[key] = _get(metrics or {}, key)
        row["score"] = _get(metrics or {}, sort)
        rows.append(row)
    scored = [r for r in rows if isinstance(r["score"], (int, float)) and not math.isnan(r["score"])]
    if not scored and rows:
        raise UserError(
            f"report: no run has {sort!r} in its metrics.json (sort=... names a key such as "
            "validation.accuracy or test.wer)"
        )
    lower_is_better = sort.rsplit(".", 1)[-1] in (*LOWER_IS_BETTER, "train_seconds")
    scored.sort(key=lambda r: r["score"], reverse=not lower_is_better)
    for r in rows:
        r["best"] = bool(scored) and r["score"] == scored[0]["score"]
    return scored + [r for r in rows if r not in scored]


def _cell(value, key: str, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return fmt.format(value / 60 if key == "train_seconds" else value)


def summary(rows: list[dict], keys: list[tuple[str, str, str]], sort: str) -> list[str] | None:
    """The cells of the mean ± std row over the finished runs (minutes: their sum), or None
    when fewer than two runs finished."""
    done = [r for r in rows if "status" not in r]
    if len(done) < 2:
        return None
    cells = ["", "mean ± std", f"{len(done)} runs"]
    for _, key, fmt in keys:
        values = [r["score"] if key == sort else r.get(key) for r in done]
        values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not values or key in ("parameters", "receptive_field"):  # the model's, not a measurement
            cells.append("")
        elif key == "epochs":
            cells.append(
                f"{statistics.mean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")
            )
        elif key == "train_seconds":
            cells.append(f"{sum(values) / 60:.1f} in all")
        elif len(values) > 1:
            mean, std = statistics.mean(values), statistics.stdev(values)
            cells.append(f"{_cell(mean, key, fmt)} ± {_cell(std, key, fmt)}".replace("% ±", " ±"))
        else:
            cells.append(_cell(values[0], key, fmt))
    return cells


def markdown(
    rows: list[dict],
    sort: str,
    prefix: str,
    extra: list[tuple[str, str]] = (),
    names: tuple[str, str] = ("run", "overrides"),
) -> str:
    """The table; ``extra``: (column, key) of cells the rows hold as text, after the first two
    columns (``names``)."""
    keys = [(name, key, fmt) for name, key, fmt in COLUMNS if any(r.get(key) is not None for r in rows)]
    if sort not in [key for _, key, _ in keys]:
        keys.insert(0, (sort, sort, "{}"))
    header = ["", *names, *(name for name, _ in extra)] + [name for name, _, _ in keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = ["*" if r["best"] else "", r["run"].removeprefix(prefix).strip("/") or ".", r["overrides"]]
        cells += [str(r.get(key, "")) for _, key in extra]
        for _, key, fmt in keys:
            cells.append(_cell(r.get(key) if key != sort else r["score"], key, fmt))
        if "status" in r:
            cells[-1] = r["status"].replace("|", "/")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    last = summary(rows, keys, sort)
    if last is not None and not extra:
        lines.append("| " + " | ".join(last) + " |")
    return "\n".join(lines) + "\n"


def study_tables(path: Path) -> str:
    """The trials of each Optuna study in a storage file (``hparams_search``'s SQLite file), the
    best first: number, state, value and parameters."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its schema checks: standard output holds the table
    try:
        import optuna
    except ImportError:
        raise UserError(f"{path}: reading an Optuna study needs optuna: pip install 'convnlp[search]'") from None
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{path.resolve()}"
    try:
        summaries = optuna.get_all_study_summaries(storage=url)
    except Exception as e:  # not SQLite, not Optuna's schema
        raise UserError(f"{path}: not an Optuna study file ({str(e).strip().splitlines()[0][:200]})") from None
    if not summaries:
        raise UserError(f"{path}: holds no Optuna study")
    parts = []
    for summary_ in summaries:
        study = optuna.load_study(study_name=summary_.study_name, storage=url)
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.value is not None]
        done.sort(key=lambda t: t.value, reverse=maximize)
        names = sorted({name for t in trials for name in t.params})
        lines = [
            f"study {study.study_name!r} ({'maximize' if maximize else 'minimize'}): {len(trials)} trials, "
            f"{len(done)} complete" + (f"; best: trial {done[0].number}, value {done[0].value:.4f}" if done else ""),
            "",
            "| | trial | state | value | " + " | ".join(names) + " |",
            "|" + "---|" * (4 + len(names)),
        ]
        for t in done + [t for t in trials if t.value is None]:
            cells = [
                "*" if done and t is done[0] else "",
                str(t.number),
                t.state.name,
                "" if t.value is None else f"{t.value:.4f}",
            ]
            cells += [
                f"{t.params[n]:.4g}" if isinstance(t.params.get(n), float) else str(t.params.get(n, "")) for n in names
            ]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def report_command(cfg: DictConfig, run_dir: Path) -> list[dict]:
    dirs = [str(d) for d in cfg.runs] if isinstance(cfg.runs, ListConfig) else [str(cfg.runs)]
    if not dirs:
        raise UserError("report: give one or more run or sweep directories: convnlp report DIR [DIR ...]")
    studies = [d for d in dirs if Path(d).suffix in (".db", ".sqlite", ".sqlite3")]
    if studies:  # an Optuna search's storage: its trials
        if len(studies) != len(dirs):
            raise UserError("report: give either run or sweep directories, or Optuna study files (.db), not both")
        text = "\n".join(study_tables(Path(d)) for d in studies)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "report.md").write_text(text)
        print(text, end="")
        return []
    runs = [run for d in dirs for run in find_runs(Path(d))]
    if not runs:
        raise UserError(f"report: no training runs (directories with metrics.json or .hydra/) in {', '.join(dirs)}")
    sort = selection_key(runs) if cfg.sort == "auto" else cfg.sort
    rows = collect(runs, sort)
    prefix = str(Path(dirs[0])) if len(dirs) == 1 else ""
    table = markdown(rows, sort, prefix)
    write(run_dir, table, rows)
    print(table, end="")  # standard output holds the table alone, for pipes; the files are in run_dir
    return rows


def write(run_dir: Path, table: str, rows: list[dict], extra: list[str] = ()) -> None:
    """report.md (the table) and report.csv (the rows, ``extra`` keys after the run's name)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.md").write_text(table)
    with open(run_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=["best", "run", "overrides", *extra, "score", "status", *[key for _, key, _ in COLUMNS]],
            extrasaction="ignore",
        )
        writer.writeheader()
        writer.writerows(rows)
