"""The speed of generation decoders side by side: trained checkpoints (deconv, convs2s, lstm,
...) on the same sources, each timed as `convnlp predict` runs it, and its network in training.

    python scripts/bench_generation.py CKPT [CKPT ...] [--threads 1 2] [--beams 1 5]
        [--repetitions 5] [--sources 2000] [--seconds 2] [--out bench.json]

For every thread count, ``--repetitions`` rounds; in each round every subject is measured once,
the first subject rotating from round to round (interleaved), so a slow moment of the machine
falls on all of them. Measurements:

- ``infer``: sources/s of ``predict`` over ``--sources`` test sources of the first checkpoint's
  data (tokenization, batching by ``--batch-tokens`` source symbols, the network, the search, the
  output tokens), at each beam of ``--beams`` for the autoregressive decoders (deconv: one pass,
  one row);
- ``latency``: ms per source, one source at a time, greedy (p50 over ``--latency-sources``);
- ``train``: target symbols/s of a training step (forward, loss, backward, AdamW) of the
  checkpoint's network on batches of its training data (``trainer.batch_tokens`` of the
  checkpoint), the trained weights left untouched (a copy is trained).

Subjects are named by decoder and width (``convs2s-256/beam5``). Ratios are taken per round
against ``--baseline`` (a checkpoint's name, ``lstm-256``; default the last checkpoint): at the
same beam for sources/s, its own row for latency and training; their median is shown. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from convnlp import checkpoint
from convnlp.bench.harness import matmul_gflops
from convnlp.config import validate_group
from convnlp.data import load_splits
from convnlp.data.batching import token_batches
from convnlp.decoders import is_autoregressive
from convnlp.tasks import generation as gen


class Decoder:
    """One trained checkpoint at one beam: what is timed."""

    def __init__(self, path: str, beam: int, sources: list[str], train_split, batch_tokens: int):
        loaded = checkpoint.load(path, "cpu")
        self.model, self.tokenizer, self.labels = loaded.model.eval(), loaded.tokenizer, loaded.labels
        self.task = {**loaded.task_cfg, "beam": beam}
        self.decoder = loaded.config["decoder"]["name"]
        self.autoregressive = is_autoregressive(loaded.config["decoder"])
        self.checkpoint_name = f"{self.decoder}-{loaded.config['decoder']['width']}"  # e.g. convs2s-256
        self.name = f"{self.checkpoint_name}/beam{beam}" if self.autoregressive else self.checkpoint_name
        self.path, self.beam, self.sources, self.batch_tokens = path, beam, sources, batch_tokens
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.trainee = None  # the copy that trains, made on first use
        encoded = gen.encode(train_split, self.tokenizer, self.labels, "train", self.task)
        lengths = [len(ids) for ids in encoded["ids"]]
        chunks = token_batches(lengths, loaded.config["trainer"]["batch_tokens"], shuffle=False)
        self.train_batches = [gen.make_batch(encoded, c) for c in chunks]

    def infer(self) -> dict:
        start = time.perf_counter()
        with torch.inference_mode():
            gen.generate(
                self.model, self.tokenizer, self.labels, self.sources, torch.device("cpu"), self.task, self.batch_tokens
            )
        return {"sources_per_s": len(self.sources) / (time.perf_counter() - start)}

    def latency(self, count: int) -> dict:
        greedy, times = {**self.task, "beam": 1}, []
        with torch.inference_mode():
            for source in self.sources[:count]:
                start = time.perf_counter()
                gen.generate(self.model, self.tokenizer, self.labels, [source], torch.device("cpu"), greedy)
                times.append(1000 * (time.perf_counter() - start))
        return {"latency_p50_ms": statistics.median(times)}

    def train(self, seconds: float) -> dict:
        if self.trainee is None:
            self.trainee = copy.deepcopy(self.model).train()
            self.optimizer = torch.optim.AdamW(self.trainee.parameters(), lr=1e-4)
        symbols, done, start = 0, 0, time.perf_counter()
        while done == 0 or time.perf_counter() - start < seconds:
            batch = self.train_batches[done % len(self.train_batches)]
            loss, _ = gen.loss(self.trainee(batch), batch, self.task)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            symbols += int(batch["target_lengths"].sum())
            done += 1
        return {"target_symbols_per_s": symbols / (time.perf_counter() - start)}


def measure(subjects: list[Decoder], threads: int, args) -> list[dict]:
    torch.set_num_threads(threads)
    raw = []
    for rep in range(args.repetitions):
        for k in range(len(subjects)):
            subject = subjects[(k + rep) % len(subjects)]
            row = {"threads": threads, "repetition": rep, "subject": subject.name, **subject.infer()}
            if subject.beam == min(args.beams) or not subject.autoregressive:  # once per checkpoint
                row.update(subject.latency(args.latency_sources), **subject.train(args.seconds))
            raw.append(row)
            print(f"threads {threads} round {rep + 1}: {subject.name} {row}", file=sys.stderr, flush=True)
    return raw


def _baseline_row(raw: list[dict], r: dict, metric: str, baseline: str) -> dict | None:
    """The baseline checkpoint's measurement of ``metric`` in the same round and thread count:
    at the same beam where it has one (sources/s), else the one that has it (latency, training)."""
    same = [b for b in raw if (b["threads"], b["repetition"]) == (r["threads"], r["repetition"]) and metric in b]
    beam = r["subject"].partition("/")[2]
    exact = [b for b in same if b["subject"] == f"{baseline}/{beam}" or b["subject"] == baseline]
    others = [b for b in same if b["subject"].partition("/")[0] == baseline]
    return (exact or others or [None])[0]


def summarize(raw: list[dict], baseline: str) -> list[dict]:
    rows = []
    for threads in dict.fromkeys(r["threads"] for r in raw):
        for name in dict.fromkeys(r["subject"] for r in raw):
            mine = [r for r in raw if r["threads"] == threads and r["subject"] == name]
            row = {"threads": threads, "subject": name}
            for metric in [k for k in mine[0] if k.endswith(("_per_s", "_ms"))]:
                row[metric] = statistics.median(r[metric] for r in mine)
                ratios = []
                for r in mine:
                    base = _baseline_row(raw, r, metric, baseline)
                    if base is not None:
                        ratio = r[metric] / base[metric]
                        ratios.append(1 / ratio if metric.endswith("_ms") else ratio)
                row[f"{metric}_ratio"] = statistics.median(ratios) if ratios else None
            rows.append(row)
    return rows


def table(rows: list[dict], baseline: str) -> str:
    def cell(value, ratio, fmt):
        return "-" if value is None else f"{value:{fmt}}" + (f" ({ratio:.2f}x)" if ratio is not None else "")

    lines = [
        "| threads | subject | sources/s | latency p50 ms (batch 1, greedy) | training target symbols/s |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['subject']} | {cell(r.get('sources_per_s'), r.get('sources_per_s_ratio'), ',.0f')} "
            f"| {cell(r.get('latency_p50_ms'), r.get('latency_p50_ms_ratio'), '.2f')} "
            f"| {cell(r.get('target_symbols_per_s'), r.get('target_symbols_per_s_ratio'), ',.0f')} |"
        )
    return "\n".join(lines) + (
        f"\n\nratios: medians of per-round ratios to {baseline} at the same beam (sources/s), or to its own row "
        "(latency: its ms over ours; training)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--latency-sources", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0, help="each training measurement runs this long")
    parser.add_argument("--batch-tokens", type=int, default=8000)
    parser.add_argument("--split", default="test")
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--out", type=Path, default=Path("bench_generation.json"))
    args = parser.parse_args()
    first = checkpoint.load(args.checkpoints[0], "cpu")
    data_cfg = first.config["data"]
    splits = load_splits(
        validate_group("data", OmegaConf.create(data_cfg)), splits=("train", args.split), task="generation"
    )
    sources, _ = gen.group_references(splits[args.split], first.task_cfg)
    sources = sources[: args.sources]
    train_split = splits["train"].select(range(min(4000, len(splits["train"]))))
    subjects = []
    for path in args.checkpoints:
        for beam in args.beams:
            subject = Decoder(path, beam, sources, train_split, args.batch_tokens)
            subjects.append(subject)
            if not subject.autoregressive:
                break
    baseline = args.baseline or subjects[-1].checkpoint_name
    raw = []
    peaks = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        peaks[threads] = matmul_gflops(torch.device("cpu"))
        raw += measure(subjects, threads, args)
    rows = summarize(raw, baseline)
    text = table(rows, baseline)
    print(text)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "command": " ".join(sys.argv),
                "data": data_cfg["name"],
                "split": args.split,
                "sources": len(sources),
                "peak_gflops": peaks,
                "subjects": {s.name: {"checkpoint": s.path, "parameters": s.parameters} for s in subjects},
                "baseline": baseline,
                "summary": rows,
                "table": text,
                "raw": raw,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
