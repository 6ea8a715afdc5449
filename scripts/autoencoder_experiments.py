"""Issue 37's figures for task=autoencoder, one after another on an otherwise idle machine:

    CONVNLP_DATA_DIR=../shared/datasets python scripts/autoencoder_experiments.py reconstruction --minutes 5
    CONVNLP_DATA_DIR=../shared/datasets python scripts/autoencoder_experiments.py semisupervised --epochs 30
    CONVNLP_DATA_DIR=../shared/datasets python scripts/autoencoder_experiments.py interpolation --run <ae run>
    python scripts/autoencoder_experiments.py spelling --minutes 5

- reconstruction: word autoencoders of UD English-EWT sentences (train split) with decoder=deconv
  and decoder=lstm, the same code size and wall-time budget; exact match, token accuracy and BLEU
  on the test sentences by length bucket (words).
- semisupervised: SST-2 with 500 and 2,000 labelled training sentences (a seeded shuffle; the
  500 are the first 500 of the 2,000); an autoencoder pretrained on the other training
  sentences' text (labels removed, neither labelled set in it); classifiers with and without
  ``trainer.init=<autoencoder>``, the same epochs, 3 seeds each, no validation (the last model);
  test accuracy.
- interpolation: decoded texts between pairs of test sentences, and the share of intermediate
  texts that are well-formed: they end (the end symbol before decoder.max_length), hold no
  <unk>, repeat no word twice in a row, and every word bigram of theirs (with the sentence's start
  and end) occurs in the training sentences.
- spelling: experiment=spelling, then CMUdict test words misspelled by the same noise: the share
  corrected exactly, and the share of correct words left as they are.

Results go to docs/results/autoencoder_<experiment>_<date>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import sacrebleu

BUCKETS = ((1, 10), (11, 20), (21, 30), (31, 40), (41, 60))
WORDS = ["tokenizer=word", "tokenizer.min_frequency=2"]


def train(args: list[str], where: Path) -> Path:
    """A `convnlp train` run in ``where`` (created); its run directory."""
    where.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "convnlp", "train", *args, "trainer.progress=false", f"hydra.run.dir={where}"]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=open(where / "stderr.log", "w"))
    return where


def ud_sentences(split: str) -> list[str]:
    from convnlp.data import load_splits
    from convnlp.data.ud_ewt import UdEwtConfig

    return load_splits(UdEwtConfig(), (split,), "autoencoder")[split]["text"]


def by_length(texts: list[str], references: list[list[str]], outputs: list[list[str] | None]) -> list[dict]:
    """Exact match, token accuracy and BLEU by the sentence's length in UD words, against the
    model's own symbols of each text (``<unk>`` where the vocabulary has no word, as the task's
    metrics count; a text the decoder cannot hold has no output and counts as wrong)."""
    rows = []
    for low, high in BUCKETS:
        pairs = [(r, o or []) for t, r, o in zip(texts, references, outputs) if low <= len(t.split()) <= high]
        if not pairs:
            continue
        exact = sum(r == o for r, o in pairs) / len(pairs)
        tokens = sum(sum(a == b for a, b in zip(r, o)) for r, o in pairs)
        positions = sum(max(len(r), len(o)) for r, o in pairs)
        bleu = sacrebleu.corpus_bleu(
            [" ".join(o) for _, o in pairs], [[" ".join(r) for r, _ in pairs]], tokenize="none"
        )
        rows.append(
            {
                "words": f"{low}-{high}",
                "sentences": len(pairs),
                "exact": exact,
                "token_accuracy": tokens / positions,
                "bleu": bleu.score,
            }
        )
    return rows


def reconstruction(opts) -> dict:
    import convnlp

    test = ud_sentences("test")
    results = {}
    for decoder in opts.decoders:
        run = Path(opts.work) / f"ud_{decoder}"
        args = [
            "task=autoencoder",
            "data=ud_ewt",
            f"decoder={decoder}",
            "decoder.max_length=64",
            "decoder.too_long=filter",
        ]
        args += WORDS + [f"trainer.max_minutes={opts.minutes}", f"trainer.threads={opts.threads}"]
        if not (run / "best").is_dir() or opts.again:
            train(args, run)
        model = convnlp.load(run)
        outputs = [r["tokens"] for r in model.predict(test)]
        references = [model.tokenizer.encode(t).tokens for t in test]
        metrics = json.loads((run / "best" / "metrics.json").read_text())
        results[decoder] = {
            "command": "convnlp train " + " ".join(args),
            "test": metrics.get("test"),
            "train_seconds": metrics.get("train_seconds"),
            "steps": metrics.get("steps"),
            "buckets": by_length(test, references, outputs),
        }
    return results


def semisupervised(opts) -> dict:
    rows = [line.split(" ", 1) for line in (Path(opts.data) / "sst2" / "train.txt").read_text().splitlines()]
    random.Random(0).shuffle(rows)
    work = Path(opts.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "unlabeled.txt").write_text("".join(text.strip() + "\n" for _, text in rows[2000:]))
    for n in (500, 2000):
        with open(work / f"labelled_{n}.csv", "w") as f:
            f.write(
                "text,label\n"
                + "".join(f'"{t.strip().replace(chr(34), chr(34) * 2)}",{label}\n' for label, t in rows[:n])
            )
    ae_args = [
        "task=autoencoder",
        "data=text",
        f"data.train={work / 'unlabeled.txt'}",
        "trainer.holdout=0.05",
        "decoder.max_length=64",
    ]
    ae_args += [
        "decoder.too_long=filter",
        *WORDS,
        f"trainer.max_minutes={opts.pretrain_minutes}",
        f"trainer.threads={opts.threads}",
    ]
    pretrained = work / "autoencoder"
    if not (pretrained / "best").is_dir() or opts.again:
        train(ae_args, pretrained)
    results = {"pretrain_command": "convnlp train " + " ".join(ae_args), "runs": []}
    for n in (500, 2000):
        for seed in range(3):
            for init in (None, pretrained):
                name = f"n{n}_seed{seed}_{'init' if init else 'none'}"
                args = ["task=classification", "data=csv", f"data.train={work / f'labelled_{n}.csv'}"]
                args += [
                    *WORDS,
                    f"seed={seed}",
                    f"trainer.max_epochs={opts.epochs}",
                    "trainer.min_steps=0",
                    f"trainer.threads={opts.threads}",
                    "trainer.patience=0",
                ]
                args += [f"trainer.init={init}"] if init else []
                run = train(args, work / name)
                test = _test_accuracy(run, opts.data)
                results["runs"].append({"labelled": n, "seed": seed, "pretrained": bool(init), "test_accuracy": test})
                print(name, f"{100 * test:.2f}", flush=True)
    results["summary"] = _summary(results["runs"])
    return results


def _test_accuracy(run: Path, data: str) -> float:
    import convnlp

    model = convnlp.load(run / "last")
    lines = [line.split(" ", 1) for line in (Path(data) / "sst2" / "test.txt").read_text().splitlines()]
    records = model.predict([t.strip() for _, t in lines])
    return sum(r["label"] == label for r, (label, _) in zip(records, lines)) / len(lines)


def _summary(runs: list[dict]) -> list[dict]:
    out = []
    for n in (500, 2000):
        means = {}
        for init in (False, True):
            scores = [r["test_accuracy"] for r in runs if r["labelled"] == n and r["pretrained"] == init]
            means[init] = (statistics.mean(scores), statistics.pstdev(scores)) if scores else (0.0, 0.0)
        out.append(
            {"labelled": n, "none": means[False], "pretrained": means[True], "gain": means[True][0] - means[False][0]}
        )
    return out


def well_formed(text: str | None, bigrams: set, ended: bool) -> bool:
    words = (text or "").split()
    if not ended or not words or "<unk>" in words or any(a == b for a, b in zip(words, words[1:])):
        return False
    padded = ["<s>", *words, "</s>"]
    return all((a, b) in bigrams for a, b in zip(padded, padded[1:]))


def interpolation(opts) -> dict:
    import convnlp

    model = convnlp.load(opts.run)
    train_texts = ud_sentences("train")
    bigrams = {pair for t in train_texts for pair in zip(["<s>", *t.split()], [*t.split(), "</s>"])}
    test = [t for t in ud_sentences("test") if 6 <= len(t.split()) <= 12]
    rng = random.Random(0)
    pairs = [tuple(rng.sample(test, 2)) for _ in range(opts.pairs)]
    limit = model.task_config["decoder"]["max_length"]
    examples, middle = [], []
    for a, b in pairs:
        path = model.interpolate(a, b, steps=opts.between, path=opts.path)
        examples.append({"a": a, "b": b, "path": [(r["t"], r["output"]) for r in path]})
        for r in path[1:-1]:
            middle.append(well_formed(r["output"], bigrams, len(r["tokens"]) < limit))
    return {
        "checkpoint": str(opts.run),
        "path": opts.path,
        "steps": opts.between,
        "pairs": len(pairs),
        "intermediate": len(middle),
        "well_formed": sum(middle) / max(len(middle), 1),
        "examples": examples[: opts.show],
    }


def spelling(opts) -> dict:
    """experiment=spelling for --minutes, then CMUdict test words misspelled by the same noise
    (seeded; only those the noise changed) given to predict: the share corrected exactly."""
    import convnlp
    from convnlp.data import load_splits
    from convnlp.data import noise as noise_
    from convnlp.data.cmudict_words import CmudictWordsConfig

    run = Path(opts.work) / "spelling"
    args = ["experiment=spelling", f"trainer.max_minutes={opts.minutes}", f"trainer.threads={opts.threads}"]
    if not (run / "best").is_dir() or opts.again:
        train(args, run)
    model = convnlp.load(run)
    words = load_splits(CmudictWordsConfig(), ("test",), "autoencoder")["test"]["text"]
    tokenizer, rng = model.tokenizer, random.Random(0)
    settings, drawn = noise_.active(model.task_config["noise"]), noise_.symbols(model.tokenizer)
    pairs = []
    for word in words:
        ids = noise_.corrupt(tokenizer.encode(word).ids, settings, drawn, rng)
        misspelled = "".join(tokenizer.id_to_token(i) for i in ids)
        if misspelled != word:
            pairs.append((misspelled, word))
    outputs = [r["output"] for r in model.predict([m for m, _ in pairs])]
    clean = [r["output"] for r in model.predict(words)]
    return {
        "command": "convnlp train " + " ".join(args),
        "noise": settings,
        "misspelled": len(pairs),
        "corrected": sum(o == w for o, (_, w) in zip(outputs, pairs)) / len(pairs),
        "clean_kept": sum(o == w for o, w in zip(clean, words)) / len(words),
        "examples": [{"input": m, "output": o, "word": w} for (m, w), o in list(zip(pairs, outputs))[:20]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("reconstruction", "semisupervised", "interpolation", "spelling"))
    parser.add_argument("--minutes", type=float, default=5.0, help="reconstruction: each autoencoder's budget")
    parser.add_argument("--decoders", nargs="+", default=["deconv", "lstm"])
    parser.add_argument("--pretrain-minutes", type=float, default=6.0)
    parser.add_argument("--epochs", type=int, default=30, help="semisupervised: each classifier's epochs")
    parser.add_argument("--run", help="interpolation: the autoencoder run")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--between", type=int, default=8, help="interpolation: steps between two texts")
    parser.add_argument("--path", default="line")
    parser.add_argument("--show", type=int, default=5)
    parser.add_argument("--data", default=os.environ.get("CONVNLP_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--work", default="outputs/autoencoder_experiments")
    parser.add_argument("--again", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="trainer.threads of every run")
    parser.add_argument("--out", default="docs/results")
    opts = parser.parse_args()
    experiments = {"reconstruction": reconstruction, "semisupervised": semisupervised, "interpolation": interpolation}
    result = {**experiments, "spelling": spelling}[opts.experiment](opts)
    result["date"] = datetime.date.today().isoformat()
    out = Path(opts.out) / f"autoencoder_{opts.experiment}_{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("examples", "runs")}, indent=1))
    print("written", out)


if __name__ == "__main__":
    main()
