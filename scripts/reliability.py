"""Nothing lost, measured: kill training at random moments, make checkpoint writes fail, stream
a large input through predict, and fuzz the readers; print a table and write JSON.

    python scripts/reliability.py kill --kills 30              # SIGKILL + resume, compare weights
    python scripts/reliability.py write-fails                  # file size limit, read-only, disk full
    python scripts/reliability.py predict-large --lines 1000000
    python scripts/reliability.py fuzz --examples 2000         # tests/test_fuzz.py, more examples
    python scripts/reliability.py all --json docs/results/reliability.json
    python scripts/reliability.py kill --json docs/results/reliability.json --update   # redo one part

Each kill lands before the run's first checkpoint, the moment a checkpoint write is seen in
progress, or at a random moment after the first checkpoint; after each kill every checkpoint on disk
must load, and the next run resumes with `trainer.resume=true`. The final weights must equal
those of an uninterrupted run, bit for bit. Runs use one thread and tiny tagging data made
here, so the whole harness needs no data set and no network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
MODEL = [
    "encoder.width=16",
    "encoder.dilations=[1,2]",
    "encoder.blocks=1",
    "task.embedding_dim=8",
    "task.word_layers=1",
    "trainer.threads=1",
    "trainer.progress=false",
    "trainer.patience=0",
]
WORDS = {
    "B-PER": ["Alice", "Bob", "Carol", "Dave"],
    "B-LOC": ["Paris", "Oslo", "Lima"],
    "O": ["met", "saw", "in", "the", "and", "."],
}


def write_data(root: Path, seed: int = 0) -> list[str]:
    """Tiny CoNLL files (token and tag per line) and the overrides that read them."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 300), ("validation", 40), ("test", 40)):
        lines = []
        for _ in range(n):
            for _ in range(rng.randint(3, 9)):
                tag = rng.choice(list(WORDS))
                lines.append(f"{rng.choice(WORDS[tag])} {tag}")
            lines.append("")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return ["data=conll", *(f"data.{s}={root / s}.txt" for s in ("train", "validation", "test"))]


def convnlp(*args: str) -> list[str]:
    return [sys.executable, "-m", "convnlp", *args]


def run_dirs(cwd: Path) -> list[Path]:
    """Run directories in the order they were made (``<stamp>``, ``<stamp>_2``, ..., ``_10``)."""

    def order(p: Path):
        parts = p.name.split("_")  # date, time and, from the second run of a second on, a count
        return "_".join(parts[:2]), int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1

    return sorted((p for p in (cwd / "outputs" / "train").glob("*/") if p.is_dir()), key=order)


def checkpoints_load(cwd: Path) -> tuple[int, list[str]]:
    """Load every checkpoint (best/, last/ and its training state) under ``cwd``; the count
    loaded and the problems found."""
    from convnlp import checkpoint
    from convnlp.errors import UserError

    loaded, problems = 0, []
    for run in run_dirs(cwd):
        for name in ("last", "best"):
            if not any((run / n).exists() for n in (name, f".{name}.old")):
                continue  # not written yet
            try:
                directory = checkpoint.existing(run / name)
                checkpoint.load(directory)
                if name == "last":
                    checkpoint.load_training_state(directory)
                loaded += 1
            except UserError as e:
                problems.append(f"{run.name}/{name}: {e}")
    return loaded, problems


def mid_write(run: Path) -> bool:
    """Whether a killed run left the traces of a checkpoint write in progress."""
    return any(p.name.startswith(".") and (".tmp-" in p.name or p.name.endswith(".old")) for p in run.iterdir())


def same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x)


def _finished(run: Path) -> bool:
    try:
        return json.loads((run / "last" / "metrics.json").read_text()).get("finished", False)
    except (OSError, ValueError):
        return False


def _scores(run: Path) -> dict:
    """A run's test metrics, less its speed."""
    test = json.loads((run / "metrics.json").read_text())["test"]
    return {k: v for k, v in test.items() if not k.endswith("_per_s")}


def kill(kills: int, steps: int, seed: int) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="convnlp-kill-"))
    args = [
        "train",
        *write_data(work / "data"),
        *MODEL,
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=1000",
        "trainer.eval_every=40",
        "trainer.patience=4",
        "trainer.checkpoint_every=1",
    ]
    # every other attempt writes last/ on the default time schedule (a short period) instead of every step
    timed = ["trainer.checkpoint_every=0", "trainer.checkpoint_minutes=0.005"]
    (work / "full").mkdir()
    start = time.perf_counter()
    reference = subprocess.Popen(
        convnlp(*args), cwd=work / "full", env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    first_checkpoint = None
    while reference.poll() is None:
        if first_checkpoint is None and list((work / "full").glob("outputs/train/*/last")):
            first_checkpoint = time.perf_counter() - start
        time.sleep(0.01)
    if reference.returncode:
        raise SystemExit(f"the uninterrupted run failed: {reference.stderr.read()[-2000:]}")
    full_seconds = time.perf_counter() - start
    (full,) = run_dirs(work / "full")

    cwd = work / "killed"
    cwd.mkdir()
    record = {
        "kills": 0,
        "before_first_checkpoint": 0,
        "during_checkpoint_write": 0,
        "checkpoints_loaded": 0,
        "problems": [],
        "attempts": 0,
    }
    finished_early = False
    while record["kills"] < kills:
        if any(_finished(run) for run in run_dirs(cwd)):  # killed while exiting after its last write
            finished_early = True
            break
        resumable = bool(checkpoints_load(cwd)[0])
        before = set(run_dirs(cwd))
        schedule = timed if record["attempts"] % 2 else []
        process = subprocess.Popen(
            convnlp(*args, *schedule, *(["trainer.resume=true"] if resumable else [])),
            cwd=cwd,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        record["attempts"] += 1
        # when: before the first checkpoint; the moment a checkpoint write is seen in progress;
        # or a random moment up to 0.6 s after the first checkpoint
        when = rng.choices(["early", "writing", "random"], weights=[0.2, 0.4, 0.4])[0]
        deadline = time.perf_counter() + (rng.uniform(0, first_checkpoint) if when == "early" else 600)
        while process.poll() is None and time.perf_counter() < deadline:
            new = [r for r in run_dirs(cwd) if r not in before]
            started = new and any((new[0] / n).exists() for n in ("last", ".last.old"))
            if started and when == "random":
                time.sleep(rng.uniform(0, 0.6))
                break
            if started and when == "writing" and mid_write(new[0]):
                break
            time.sleep(0.005 if when != "writing" else 0.0005)
        if process.poll() is not None:  # it finished (or failed) before the kill
            if process.returncode:
                record["problems"].append(f"run failed: {process.stderr.read()[-500:]}")
            finished_early = True
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        record["kills"] += 1
        new = [r for r in run_dirs(cwd) if r not in before]
        record["before_first_checkpoint"] += not (new and any((new[0] / n).exists() for n in ("last", ".last.old")))
        record["during_checkpoint_write"] += bool(new and mid_write(new[0]))
        loaded, problems = checkpoints_load(cwd)
        record["checkpoints_loaded"] += loaded
        record["problems"] += problems
    finish = subprocess.run(
        convnlp(*args, "trainer.resume=true") if not finished_early else ["true"],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
    )
    if finish.returncode:
        record["problems"].append(f"the last resume failed: {finish.stderr[-500:]}")
        final = None
    else:
        final = [r for r in run_dirs(cwd) if (r / "metrics.json").is_file()][-1]
    record.update(
        steps=steps,
        seed=seed,
        full_run_seconds=round(full_seconds, 1),
        first_checkpoint_seconds=round(first_checkpoint or 0, 1),
        same_last_weights=bool(
            final and same_weights(full / "last" / "model.safetensors", final / "last" / "model.safetensors")
        ),
        same_best_weights=bool(
            final and same_weights(full / "best" / "model.safetensors", final / "best" / "model.safetensors")
        ),
        same_test_metrics=bool(final and _scores(full) == _scores(final)),
    )
    record["stop_reason"] = json.loads((full / "metrics.json").read_text())["stop_reason"]
    record["passed"] = (
        not record["problems"]
        and record["same_last_weights"]
        and record["same_best_weights"]
        and record["same_test_metrics"]
        and (kills < 10 or record["during_checkpoint_write"] > 0)
    )
    shutil.rmtree(work, ignore_errors=True)
    return record


def _can_mount() -> bool:
    target = Path(tempfile.mkdtemp(prefix="convnlp-mount-"))
    ok = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], capture_output=True).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(target)], capture_output=True)
    target.rmdir()
    return ok


def _fail_a_write(cwd: Path, args: list[str], break_it) -> dict:
    """Start a run, wait for its first checkpoint, ``break_it(process, run_dir)``, and check that
    it stops with one line and leaves a loadable last/."""
    process = subprocess.Popen(
        convnlp(*args), cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.perf_counter() + 300
    while process.poll() is None and time.perf_counter() < deadline:
        runs = run_dirs(cwd)
        if runs and (runs[0] / "last" / "training_state.pt").is_file():
            break
        time.sleep(0.01)
    (run,) = run_dirs(cwd)
    break_it(process, run)
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        return {"passed": False, "problem": "the run did not stop"}
    lines = stderr.strip().splitlines()
    loaded, problems = checkpoints_load(cwd)
    result = {
        "returncode": process.returncode,
        "stderr": lines[-3:],
        "checkpoints_loaded": loaded,
        "problems": problems,
    }
    result["passed"] = (
        process.returncode == 2
        and len(lines) == 1
        and "cannot write the checkpoint" in lines[0]
        and loaded >= 1
        and not problems
    )
    return result


def write_fails() -> dict:
    work = Path(tempfile.mkdtemp(prefix="convnlp-writes-"))
    args = [
        "train",
        *write_data(work / "data"),
        *MODEL,
        "encoder.width=64",
        "trainer.max_steps=100000",
        "trainer.max_epochs=10000",
        "trainer.checkpoint_every=1",
    ]
    results = {}

    def limit_file_size(process, run):  # RLIMIT_FSIZE (ulimit -f) of the running process
        size = 0
        while not size:  # last/ may be mid-swap
            try:
                size = (run / "last" / "model.safetensors").stat().st_size // 2
            except OSError:
                time.sleep(0.001)
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (size, size))

    (work / "fsize").mkdir()
    results["file_size_limit"] = _fail_a_write(work / "fsize", args, limit_file_size)

    def read_only(process, run):  # an immutable directory: no new entries, even for root (ext4 and others)
        subprocess.run(["chattr", "+i", str(run)], check=True, capture_output=True)

    (work / "read_only").mkdir()
    if subprocess.run(["chattr", "+i", str(work / "read_only")], capture_output=True).returncode == 0:
        subprocess.run(["chattr", "-i", str(work / "read_only")], check=True)
        results["read_only_directory"] = _fail_a_write(work / "read_only", args, read_only)
        for run in run_dirs(work / "read_only"):
            subprocess.run(["chattr", "-i", str(run)], capture_output=True)
    else:
        results["read_only_directory"] = {"passed": None, "problem": "chattr +i is not supported here"}
    if _can_mount():
        mount = work / "disk_full"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)

        def fill(process, run):  # take every free byte of the file system
            with open(mount / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * (1 << 20))
                        filler.flush()
                except OSError:
                    pass

        try:
            results["disk_full"] = _fail_a_write(mount, args, fill)
        finally:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    else:
        results["disk_full"] = {"passed": None, "problem": "cannot mount a small tmpfs here"}
    shutil.rmtree(work, ignore_errors=True)
    return results


def predict_large(lines: int, seed: int) -> dict:
    """Stream ``lines`` sentences through `convnlp predict` (a tiny trained tagger); peak RSS of
    the process, and whether every line came back once, in order."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="convnlp-predict-"))
    subprocess.run(
        convnlp("train", *write_data(work / "data"), *MODEL, "trainer.max_steps=30"),
        cwd=work,
        env=ENV,
        check=True,
        capture_output=True,
    )
    (run,) = run_dirs(work)
    vocabulary = [w for words in WORDS.values() for w in words]
    result = {}
    for n in sorted({min(10_000, lines), lines}):
        source = work / f"in-{n}.txt"
        with open(source, "w") as f:
            for i in range(n):
                f.write(" ".join([str(i), *rng.choices(vocabulary, k=rng.randint(1, 12))]) + "\n")
        wrapper = (
            "import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode)"
        )
        out = work / f"out-{n}.jsonl"
        measured = subprocess.run(
            [
                sys.executable,
                "-c",
                wrapper,
                *convnlp("predict", f"checkpoint={run / 'best'}", f"input={source}", f"output={out}"),
            ],
            cwd=work,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        rss_kib, seconds, code = measured.stdout.split()
        in_order = code == "0"
        count = 0
        with open(source) as inputs, open(out) as outputs:
            for count, (line, record) in enumerate(zip(inputs, outputs), start=1):  # noqa: B007 (read after the loop)
                if json.loads(record)["tokens"] != line.split():
                    in_order = False
                    break
            in_order = in_order and next(outputs, None) is None and next(inputs, None) is None
        result[str(n)] = {
            "lines": n,
            "peak_rss_mib": round(int(rss_kib) / 1024, 1),
            "seconds": round(float(seconds), 1),
            "lines_per_s": round(n / float(seconds)),
            "every_line_once_in_order": in_order and count == n,
        }
    sizes = sorted(result.values(), key=lambda r: r["lines"])
    shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": sizes,
        "rss_growth": round(sizes[-1]["peak_rss_mib"] / sizes[0]["peak_rss_mib"], 3),
        "passed": all(r["every_line_once_in_order"] for r in sizes)
        and sizes[-1]["peak_rss_mib"] < 1.25 * sizes[0]["peak_rss_mib"],
    }


def pytest_cases(paths: list[str], extra_env: dict | None = None) -> dict:
    """Run tests and count them: (passed, failed)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=ROOT,
        env={**ENV, **(extra_env or {})},
        capture_output=True,
        text=True,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-300:]
    counts = {
        word: int(n)
        for n, word in (part.split()[:2] for part in summary.split(" in ")[0].split(", ") if part.split()[0].isdigit())
    }
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0), "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="+", choices=["kill", "write-fails", "predict-large", "fuzz", "all"])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--steps", type=int, default=0, help="training steps (default: 60 + 25 per kill)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--examples", type=int, default=2000, help="fuzz examples per property")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--update", action="store_true", help="keep the other parts of an existing --json file")
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    if {"kill", "all"} & set(args.what):
        results["kill"] = kill(args.kills, args.steps or 60 + 25 * args.kills, args.seed)
    if {"write-fails", "all"} & set(args.what):
        results["write_fails"] = write_fails()
    if {"predict-large", "all"} & set(args.what):
        results["predict_large"] = predict_large(args.lines, args.seed)
    if {"fuzz", "all"} & set(args.what):
        results["fuzz"] = pytest_cases(["tests/test_fuzz.py"], {"CONVNLP_FUZZ_EXAMPLES": str(args.examples)})
        results["fuzz"]["examples_per_property"] = args.examples
    if "all" in args.what:
        results["checkpoints"] = pytest_cases(["tests/test_checkpoint.py"])
        results["bad_configs"] = pytest_cases(["tests/test_config.py", "-k", "every_option_rejects"])
        results["bad_configs"]["cases"] = int(
            subprocess.run(
                [sys.executable, "-c", "from tests.test_config import BAD_VALUES; print(len(BAD_VALUES))"],
                cwd=ROOT,
                env=ENV,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        if args.update and args.json.is_file():
            old = json.loads(args.json.read_text())
            results = {**old, **results, "command": f"{old['command']}; {results['command']}"}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    failed = [
        k
        for k, v in results.items()
        if isinstance(v, dict)
        and v.get("passed") is False
        or isinstance(v, dict)
        and any(isinstance(x, dict) and x.get("passed") is False for x in v.values())
    ]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
