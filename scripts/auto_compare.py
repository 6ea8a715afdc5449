"""`auto=true` against (a) the default recipe and (b) the race's winner trained alone, each for the
same wall-time budget B, one after another on an otherwise idle machine (issue 35's table).

    CONVNLP_DATA_DIR=../shared/datasets python scripts/own_data.py own --ud ../shared/datasets/ud_en_ewt
    CONVNLP_DATA_DIR=../shared/datasets python scripts/auto_compare.py sst2 ud_ewt mr0 --minutes 5 \\
        --own own --work outputs/auto_compare --out docs/results/auto_compare.json

(a) is the documented command for the task (classification: ``tokenizer=word``, as docs/data.md's
own-data command; tagging and generation: the task's defaults); the race varies what that command
leaves open (no ``tokenizer=word``: characters are a candidate). (b) is skipped where the winner
is the default recipe (then (a) is (b)). Each set's rows are added to the JSON file as they finish
(a set already there is run again only with --again), and the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name -> (task, the data's overrides with {own} for the own-data folder, the default recipe's extra overrides)
SETS = {
    "sst2": ("classification", ["task=classification", "data=sst2"], ["tokenizer=word"]),
    "mr0": ("classification", ["task=classification", "data=mr", "data.fold=0"], ["tokenizer=word"]),
    "mr1": ("classification", ["task=classification", "data=mr", "data.fold=1"], ["tokenizer=word"]),
    "mr2": ("classification", ["task=classification", "data=mr", "data.fold=2"], ["tokenizer=word"]),
    "ud_ewt": ("tagging", ["data=ud_ewt"], []),
    "genre": (
        "classification",
        [
            "task=classification",
            "data=csv",
            "data.train={own}/genre/train.csv",
            "data.validation={own}/genre/dev.csv",
            "data.test={own}/genre/test.csv",
        ],
        ["tokenizer=word"],
    ),
    "names": (
        "tagging",
        [
            "data=conll",
            "data.train={own}/names/train.conll",
            "data.validation={own}/names/dev.conll",
            "data.test={own}/names/test.conll",
        ],
        [],
    ),
    "inflection": (
        "generation",
        [
            "task=generation",
            "data=parallel",
            "data.train={own}/inflection/train.tsv",
            "data.validation={own}/inflection/dev.tsv",
            "data.test={own}/inflection/test.tsv",
            "task.target_tokens=char",
        ],
        [],
    ),
}
DEFAULT_RECIPE = {"classification": "words_dilated", "tagging": "chars_dilated", "generation": "deconv"}


def train(args: list[str], run_dir: Path) -> dict:
    """One `convnlp train`, alone; its metrics.json and wall minutes."""
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        return {**metrics, "wall_minutes": metrics.get("wall_minutes")}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(run_dir.parent / f"{run_dir.name}.console.log", "w") as log:
        command = [
            sys.executable,
            "-m",
            "convnlp",
            "train",
            *args,
            f"hydra.run.dir={run_dir}",
            "trainer.progress=false",
        ]
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(command)}; see {log.name}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_minutes"] = (time.perf_counter() - started) / 60
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def score(metrics: dict, split: str) -> float | None:
    return (metrics.get(split) or {}).get(metrics.get("selected_by"))


def compare(name: str, minutes: float, own: Path, work: Path) -> dict:
    task, data, default_extra = SETS[name]
    data = [d.format(own=own) for d in data]
    budget = [f"trainer.max_minutes={minutes:g}"]
    default = train([*data, *default_extra, *budget], work / name / "default")
    race = train([*data, "auto=true", *budget], work / name / "race")
    winner = race["auto"]["winner"]
    row = {
        "set": name,
        "task": task,
        "budget_minutes": minutes,
        "metric": race["selected_by"],
        "default": {"recipe": DEFAULT_RECIPE[task], **_figures(default)},
        "race": {"winner": winner, **_figures(race), "rounds": race["auto"]},
    }
    if winner != DEFAULT_RECIPE[task]:
        alone = train([*data, f"+recipes/{task}={winner}", *budget], work / name / "winner_alone")
        row["winner_alone"] = {"recipe": winner, **_figures(alone)}
    return row


def _figures(metrics: dict) -> dict:
    return {
        "validation": score(metrics, "validation"),
        "test": score(metrics, "test"),
        "train_minutes": metrics.get("train_seconds", 0) / 60,
        "wall_minutes": metrics.get("wall_minutes"),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| set | metric | B (min) | (a) default: recipe, test | auto=true: winner, test | (b) winner alone: test "
        "| auto - (a) | auto - (b) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, race = r["default"], r["race"]
        b = r.get("winner_alone", a)
        lines.append(
            f"| {r['set']} | {r['metric']} | {r['budget_minutes']:g} | {a['recipe']}: {a['test']:.2%} "
            f"| {race['winner']}: {race['test']:.2%} | {b['test']:.2%}{'' if 'winner_alone' in r else ' (= a)'} "
            f"| {100 * (race['test'] - a['test']):+.2f} | {100 * (race['test'] - b['test']):+.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", choices=sorted(SETS))
    parser.add_argument("--minutes", type=float, default=5.0, help="the budget B of every run")
    parser.add_argument("--own", type=Path, default=Path("own"), help="scripts/own_data.py's folder")
    parser.add_argument("--work", type=Path, default=Path("outputs/auto_compare"))
    parser.add_argument("--out", type=Path, default=Path("auto_compare.json"))
    parser.add_argument("--again", action="store_true", help="run a set again though the JSON file has it")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    for name in args.sets:
        if not args.again and any(r["set"] == name for r in rows):
            continue
        row = compare(name, args.minutes, args.own.resolve(), args.work.resolve())
        rows = [r for r in rows if r["set"] != name] + [row]
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
        print(table([row]).splitlines()[-1], flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
