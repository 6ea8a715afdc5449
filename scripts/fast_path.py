"""Words/s of a tagger at each entry point's defaults against spaCy's CPU tagger, one thread,
interleaved rounds in one run: how fast is what a user gets without tuning anything.

    python scripts/fast_path.py --checkpoint outputs/ud_tagger \\
        --data ../shared/datasets/ud_en_ewt --json docs/results/fast_path.json

Subjects, each timed on the test sentences (words in, tags out) in every round, in turn:
``spacy`` (the bench's peer: spaCy's efficiency tagger, ``nlp.pipe`` on ``Doc(words=...)``),
``api`` (``convnlp.load(run).predict(lines)``, its default batch), ``api@N`` for each
``--batch-sizes`` N (the same call with ``batch_size=N``: the measurement the default is chosen
from), ``cli`` (``convnlp predict`` on a file of the sentences ``--copies`` times, its start-up,
timed on one line, taken off) and ``eval`` (``convnlp eval``'s own words/s). Medians over
``--rounds`` and the ratio to spaCy's words/s of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conllu
import torch
from threadpoolctl import threadpool_limits

import convnlp
from convnlp.peers import SpacyTagger


def read(path: Path, limit: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
    words, tags = [], []
    with open(path, encoding="utf-8") as f:
        for sentence in conllu.parse_incr(f):
            tokens = [t for t in sentence if isinstance(t["id"], int)]
            if tokens:
                words.append([t["form"] for t in tokens])
                tags.append([t["upos"] for t in tokens])
            if limit and len(words) >= limit:
                break
    return words, tags


def cli_seconds(checkpoint: str, lines: Path, one: Path, threads: int) -> float:
    """`convnlp predict` on ``lines`` less its start-up (the same command on ``one`` line)."""
    took = {}
    for path in (one, lines):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "convnlp", "predict", f"checkpoint={checkpoint}", f"threads={threads}",
             "device=cpu", f"input={path}", f"output={os.devnull}"],
            check=True, capture_output=True,
        )  # fmt: skip
        took[path] = time.perf_counter() - start
    return took[lines] - took[one]


def eval_words_per_s(checkpoint: str, data: Path, threads: int, tmp: Path) -> float:
    subprocess.run(
        [sys.executable, "-m", "convnlp", "eval", f"checkpoint={checkpoint}", "data.split=test", f"threads={threads}",
         "device=cpu", f"hydra.run.dir={tmp / 'eval'}"],
        check=True, capture_output=True, text=True, env={**os.environ, "CONVNLP_DATA_DIR": str(data.parent)},
    )  # fmt: skip
    return json.loads((tmp / "eval" / "metrics.json").read_text())["words_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", type=Path, required=True, help="the UD English-EWT directory (train/test.conllu)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 256, 1024, 4096])
    parser.add_argument("--copies", type=int, default=4, help="the CLI's input: the test sentences this many times")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    words, _ = read(args.data / "test.conllu")
    train_words, train_tags = read(args.data / "train.conllu", limit=2000)
    count = sum(map(len, words))
    lines = [" ".join(w) for w in words]
    model = convnlp.load(args.checkpoint, device="cpu")
    spacy = SpacyTagger(train_words, train_tags)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "one.txt").write_text(lines[0] + "\n")
    (tmp / "lines.txt").write_text("".join(line + "\n" for line in lines) * args.copies)

    def timed(run) -> float:
        start = time.perf_counter()
        run()
        return count / (time.perf_counter() - start)

    subjects = {
        "spacy": lambda: timed(lambda: spacy.infer(words)),
        "api": lambda: timed(lambda: model.predict(lines)),
        **{f"api@{n}": (lambda n=n: timed(lambda: model.predict(lines, batch_size=n))) for n in args.batch_sizes},
        "cli": lambda: (
            count * args.copies / cli_seconds(args.checkpoint, tmp / "lines.txt", tmp / "one.txt", args.threads)
        ),
        "eval": lambda: eval_words_per_s(args.checkpoint, args.data, args.threads, tmp),
    }
    with threadpool_limits(limits=args.threads):
        spacy.infer(words[:200]), model.predict(lines[:200])  # warm-up
        rounds = [{name: run() for name, run in subjects.items()} for _ in range(args.rounds)]
    rows = {}
    for name in subjects:
        values = [r[name] for r in rounds]
        ratios = [r[name] / r["spacy"] for r in rounds]
        rows[name] = {"words_per_s": values, "median": statistics.median(values), "ratio_to_spacy": ratios,
                      "median_ratio": statistics.median(ratios)}  # fmt: skip
    print(f"{count:,} words, {len(words):,} sentences, {args.threads} thread(s), {args.rounds} interleaved rounds")
    print("| subject | words/s (median) | range | x spaCy (median of rounds) |\n|---|---:|---:|---:|")
    for name, row in rows.items():
        low, high = min(row["words_per_s"]), max(row["words_per_s"])
        print(f"| {name} | {row['median']:,.0f} | {low:,.0f} - {high:,.0f} | {row['median_ratio']:.2f}x |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "command": "python " + " ".join(sys.argv),
                    "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}",
                    "threads": args.threads,
                    "words": count,
                    "spacy": spacy.description,
                    "subjects": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
