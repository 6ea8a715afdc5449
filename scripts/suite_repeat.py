"""Run the test suite again and again, as a new user runs it, to find tests that fail only sometimes.

    python scripts/suite_repeat.py --runs 5 --busy 3 --serial 1 --out docs/results/suite_repeat.json

Clones the repository (at --rev, default HEAD) into --clone (default: beside this checkout, so
that ../shared/datasets is found as in CI), installs it into a virtual
environment of its own with the README's command 2 (`pip install -c constraints.txt -e ".[test]"`),
then runs `python -m pytest -q` there:
  --runs N    N times with nothing else running;
  --busy N    N times beside a busy neighbour (one single-thread process computing without pause,
              as `convnlp bench`'s neighbours: bench.neighbours);
  --serial N  N times in one process, in file order (`-n0 -p no:randomly`).
Before each run the clone is cleaned (`git clean -xdf`, the virtual environment kept), so every
run starts from the checkout. Prints a table (run, kind, passed, failed, seconds, the failing tests)
and writes it as JSON; each run's whole output is kept in <clone>-logs/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from convnlp.bench.harness import neighbours

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected)"
    r"(?:, )?)+) in [\d.]+s"
)
FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


def sh(args: list[str], cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    return result


def prepare(clone: Path, rev: str) -> Path:
    """A fresh clone at ``rev`` with its own virtual environment; returns its Python."""
    if clone.exists():
        sys.exit(f"suite_repeat: {clone} exists; give a new --clone directory")
    sh(["git", "clone", "-q", str(ROOT), str(clone)], cwd=ROOT).check_returncode()
    sh(["git", "checkout", "-q", rev], cwd=clone).check_returncode()
    sh([sys.executable, "-m", "venv", ".venv"], cwd=clone).check_returncode()
    python = clone / ".venv" / "bin" / "python"
    install = sh([str(python), "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", ".[test]"], cwd=clone)
    if install.returncode != 0:
        sys.exit(f"suite_repeat: the install failed:\n{install.stdout[-2000:]}{install.stderr[-2000:]}")
    return python


def counts(output: str) -> dict[str, int]:
    """The summary lines' counts, the workers' and the `alone` tests' run together."""
    total: dict[str, int] = {}
    for line in output.splitlines():
        match = SUMMARY.match(line.strip())
        if match:
            for part in match.group(1).split(", "):
                n, word = part.split(" ", 1)
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                total[word] = total.get(word, 0) + int(n)
    return total


def run_once(python: Path, clone: Path, kind: str, log: Path) -> dict:
    sh(["git", "clean", "-xdfq", "-e", ".venv"], cwd=clone).check_returncode()
    args = [str(python), "-m", "pytest", "-q", "-rfE"] + (["-n0", "-p", "no:randomly"] if kind == "serial" else [])
    start = time.time()
    with neighbours(1 if kind == "busy" else 0):
        result = sh(args, cwd=clone, log=log)
    seconds = time.time() - start
    output = result.stdout + result.stderr
    found = counts(output)
    failing = sorted({m.group(2) for m in map(FAILED.match, output.splitlines()) if m})
    return {
        "kind": kind,
        "exit": result.returncode,
        "passed": found.get("passed", 0),
        "failed": found.get("failed", 0) + found.get("errors", 0),
        "skipped": found.get("skipped", 0),
        "seconds": round(seconds),
        "failing": failing,
        "log": str(log),
    }


def table(rows: list[dict], first: int = 1) -> str:
    lines = [
        "| run | kind | exit | passed | failed | skipped | seconds | failing tests |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for i, r in enumerate(rows, first):
        lines.append(
            f"| {i} | {r['kind']} | {r['exit']} | {r['passed']} | {r['failed']} | {r['skipped']} | "
            f"{r['seconds']} | {', '.join(r['failing']) or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs with nothing else running")
    parser.add_argument("--busy", type=int, default=3, help="runs beside one busy single-thread neighbour")
    parser.add_argument("--serial", type=int, default=1, help="runs in one process, in order (-n0 -p no:randomly)")
    parser.add_argument("--rev", default="HEAD", help="the commit to test")
    parser.add_argument("--clone", type=Path, default=ROOT.parent / f"suite-repeat-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--out", type=Path, help="the table as JSON")
    a = parser.parse_args()
    rev = sh(["git", "rev-parse", a.rev], cwd=ROOT).stdout.strip()
    python = prepare(a.clone.resolve(), rev)
    logs = a.clone.resolve().parent / f"{a.clone.name}-logs"
    logs.mkdir(exist_ok=True)
    rows = []
    for kind, n in (("alone", a.runs), ("busy", a.busy), ("serial", a.serial)):
        for _ in range(n):
            rows.append(run_once(python, a.clone.resolve(), kind, logs / f"run-{len(rows) + 1}-{kind}.log"))
            print(table(rows[-1:], first=len(rows)).splitlines()[-1], flush=True)
    print(f"\ncommit {rev[:10]}, {time.strftime('%Y-%m-%d')}\n{table(rows)}")
    if a.out:
        a.out.write_text(json.dumps({"commit": rev, "date": time.strftime("%Y-%m-%d"), "runs": rows}, indent=1) + "\n")
    sys.exit(1 if any(r["exit"] != 0 for r in rows) else 0)


if __name__ == "__main__":
    main()
