"""`convnlp bench`: the speed of every encoder family, measured side by side by the tool itself.

The same model (embedding, task head, tokenizer, data) is built around each encoder of
``bench.encoders``, each at its schema's defaults. For every thread count of ``bench.threads``
and every repetition, each measurement runs for every encoder in turn (the encoders are
interleaved, starting at a rotating one), and the ratio to ``bench.baseline`` is computed within
the repetition, so a busy neighbour slows both sides of a ratio alike. Measurements:

    infer        batched inference on real sentences (as `predict` runs it): symbols/s, words/s
    latency      batch size 1, one sentence at a time: ms per sentence, p50 and p95
    train        forward + backward + optimizer step on real batches: symbols/s
    infer@T      batched inference on inputs of about T symbols (real sentences joined)
    train@T      training steps on the same

Each figure is the median of the repetitions, with min and max. Also per encoder: parameters,
forward FLOPs per symbol of the encoder (as `inspect` counts them), the GFLOP/s that achieves,
and its share of the machine's peak, measured here as an fp32 matrix multiply at the same thread
count. Everything goes to ``bench.json`` (with every raw repetition), ``bench.md`` and PNG plots
in the run directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from convnlp.config import SCHEMAS
from convnlp.data import load_splits
from convnlp.data import tokenizer as tok
from convnlp.data.batching import token_batches
from convnlp.device import pick_device
from convnlp.errors import UserError
from convnlp.inspect import layer_table, plot_curves
from convnlp.model import build_model, count_parameters
from convnlp.tasks import TASKS, task_config

log = logging.getLogger(__name__)

LOWER_IS_BETTER = ("latency_p50_ms", "latency_p95_ms")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _words(task_name: str, split, i: int) -> int:
    if task_name == "tagging":
        return len(split["tokens"][i])
    return max(1, len(str(split["text" if task_name == "classification" else "source"][i]).split()))


def joined(split: dict, task_name: str, symbols: int, count: int) -> dict:
    """``count`` examples of about ``symbols`` characters each, made by joining real examples
    (tagging: sentences, their tags kept; classification: texts, the first label)."""
    columns = {"tagging": ("tokens", "tags"), "classification": ("text", "label")}[task_name]
    out = {c: [] for c in columns}
    i, n = 0, len(split[columns[0]])
    for _ in range(count):
        if task_name == "tagging":
            tokens, tags = [], []
            while sum(len(t) + 1 for t in tokens) < symbols:
                tokens += split["tokens"][i % n]
                tags += split["tags"][i % n]
                i += 1
            while len(tokens) > 1 and sum(len(t) + 1 for t in tokens) - 1 > symbols:
                tokens, tags = tokens[:-1], tags[:-1]
            out["tokens"].append(tokens)
            out["tags"].append(tags)
        else:
            text, label = "", split["label"][i % n]
            while len(text) < symbols:
                text = (text + " " + split["text"][i % n]).strip()
                i += 1
            out["text"].append(text[:symbols])
            out["label"].append(label)
    return out


def matmul_gflops(device: torch.device, n: int = 1024, seconds: float = 0.5) -> float:
    """The machine's fp32 matrix-multiply rate at the current thread count (the 'peak')."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    _sync(device)
    return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9


class Subject:
    """One encoder in the common model, with its batches ready."""

    def __init__(self, name: str, task, task_cfg: dict, vocab_size: int, num_labels: int, device: torch.device,
                 lr: float, amp: bool):
        encoder = OmegaConf.to_container(OmegaConf.structured(SCHEMAS["encoder"][name]))
        self.name = name
        self.model = build_model(task_cfg, encoder, vocab_size, num_labels).to(device)
        self.parameters = count_parameters(self.model)
        rows = layer_table(self.model.encoder, task_cfg["embedding_dim"])
        self.flops_per_symbol = sum(r["flops_per_position"] for r in rows)  # the encoder's forward pass
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.task, self.task_cfg, self.device = task, task_cfg, device
        self.amp = amp and device.type == "cuda"  # bf16 autocast, as training runs on CUDA

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def infer(self, batches: list[dict]) -> float:
        self.model.eval()
        with torch.inference_mode(), self._autocast():
            for batch in batches:
                self.model(batch)
        _sync(self.device)

    def train(self, batches: list[dict]) -> float:
        self.model.train()
        for batch in batches:
            with self._autocast():
                logits = self.model(batch)
            loss, _ = self.task.loss(logits, batch, self.task_cfg)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        _sync(self.device)


def _timed(run, batches: list[dict], seconds: float) -> tuple[float, int, int]:
    """Run ``run`` over ``batches`` (once at least, cycling until ``seconds`` have passed):
    elapsed seconds, symbols and batches processed."""
    done, symbols, start = 0, 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        batch = batches[done % len(batches)]
        run([batch])
        symbols += int(batch["mask"].sum())
        done += 1
    return time.perf_counter() - start, symbols, done


def _batches(task, encoded: dict, batch_tokens: int, device: torch.device) -> list[dict]:
    lengths = [len(ids) for ids in encoded["ids"]]
    out = []
    for indices in token_batches(lengths, batch_tokens, shuffle=False):
        batch = task.make_batch(encoded, indices)
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def summarize(raw: list[dict], baseline: str) -> list[dict]:
    """Median, min and max of every (threads, measurement, encoder) over the repetitions, and
    the median of the per-repetition ratios to the baseline encoder (how many times faster)."""
    rows = []
    measures = list(dict.fromkeys(r["measure"] for r in raw))  # in the order they were run
    first = [r for r in raw if (r["threads"], r["repetition"], r["measure"]) == (raw[0]["threads"], 0, measures[0])]
    encoders = [r["encoder"] for r in sorted(first, key=lambda r: r["order"])]  # bench.encoders' order
    keys = sorted({(r["threads"], r["measure"], r["encoder"]) for r in raw},
                  key=lambda k: (k[0], measures.index(k[1]), encoders.index(k[2])))
    for threads, measure, encoder in keys:
        mine = [r for r in raw if (r["threads"], r["measure"], r["encoder"]) == (threads, measure, encoder)]
        for metric in [k for k in mine[0] if k.endswith(("_per_s", "_ms"))]:
            values = [r[metric] for r in mine]
            ratios = []
            for r in mine:
                base = [b for b in raw if (b["threads"], b["measure"], b["encoder"], b["repetition"]) ==
                        (threads, measure, baseline, r["repetition"])]
                if base and base[0][metric] > 0 and r[metric] > 0:
                    ratio = r[metric] / base[0][metric]
                    ratios.append(1 / ratio if metric in LOWER_IS_BETTER else ratio)
            rows.append({"threads": threads, "measure": measure, "encoder": encoder, "metric": metric,
                         "median": statistics.median(values), "min": min(values), "max": max(values),
                         "ratio_to_baseline": statistics.median(ratios) if ratios else None,
                         "ratios": ratios, "repetitions": len(values)})
    return rows


def gflops(symbols_per_s: float, measure: str, flops_per_symbol: int) -> float:
    """The encoder's achieved rate: forward FLOPs per symbol, x3 for training (backward ~ 2x forward)."""
    return symbols_per_s * (3 if measure.startswith("train") else 1) * flops_per_symbol / 1e9


def table(rows: list[dict], subjects: dict, peaks: dict, baseline: str) -> str:
    lines = [f"| threads | measurement | encoder | median | min - max | × {baseline} | GFLOP/s (share of peak) |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        unit = {"symbols_per_s": "symbols/s", "words_per_s": "words/s", "latency_p50_ms": "ms p50",
                "latency_p95_ms": "ms p95"}[r["metric"]]
        flops = ""
        if r["metric"] == "symbols_per_s":
            rate = gflops(r["median"], r["measure"], subjects[r["encoder"]]["flops_per_symbol"])
            flops = f"{rate:.2f} ({rate / peaks[r['threads']]:.1%})"
        ratio = f"{r['ratio_to_baseline']:.2f}" if r["ratio_to_baseline"] is not None else ""
        lines.append(f"| {r['threads']} | {r['measure']} | {r['encoder']} | {r['median']:,.1f} {unit} | "
                     f"{r['min']:,.1f} - {r['max']:,.1f} | {ratio} | {flops} |")
    return "\n".join(lines) + "\n"


def _check(b) -> None:
    for key in ("repetitions", "sentences", "latency_sentences", "batch_tokens", "length_tokens"):
        if not isinstance(b[key], int) or isinstance(b[key], bool) or b[key] < 1:
            raise UserError(f"bench.{key}={b[key]!r} must be a whole number, at least 1")
    if not isinstance(b.seconds, (int, float)) or b.seconds <= 0:
        raise UserError(f"bench.seconds={b.seconds!r} must be a positive number")
    for key in ("threads", "lengths"):
        if any(not isinstance(v, int) or v < (0 if key == "threads" else 2) for v in b[key]):
            raise UserError(f"bench.{key}={list(b[key])} must be a list of whole numbers"
                            + (" (0: all cores)" if key == "threads" else ", at least 2"))
    if not b.encoders:
        raise UserError("bench.encoders is empty: name at least one encoder")


def overview(rows: list[dict], info: dict, peaks: dict, baseline: str) -> str:
    """One compact table per thread count: an encoder per row; medians, and in brackets the
    median per-repetition ratio to the baseline."""
    def cell(threads, measure, encoder, metric, fmt="{:,.0f}"):
        r = next((r for r in rows if (r["threads"], r["measure"], r["encoder"], r["metric"]) ==
                  (threads, measure, encoder, metric)), None)
        if r is None:
            return ""
        ratio = f" ({r['ratio_to_baseline']:.2f}×)" if r["ratio_to_baseline"] is not None else ""
        return fmt.format(r["median"]) + ratio

    measures = list(dict.fromkeys(r["measure"] for r in rows))
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    lengths = [m.partition("@")[2] for m in measures if m.startswith("infer@")]
    out = []
    for threads in dict.fromkeys(r["threads"] for r in rows):
        head = ["encoder", "parameters", "FLOPs/symbol", "infer words/s", "latency p50 ms", "train symbols/s",
                *[f"infer T={t}" for t in lengths], *[f"train T={t}" for t in lengths], "infer GFLOP/s (peak share)"]
        out += [f"{threads} thread(s); symbols/s unless said, ({baseline} = 1.00×); fp32 matmul peak "
                f"{peaks[threads]:.0f} GFLOP/s", "", "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        for e in encoders:
            speed = next((r["median"] for r in rows if (r["threads"], r["measure"], r["encoder"], r["metric"]) ==
                          (threads, "infer", e, "symbols_per_s")), 0.0)
            rate = gflops(speed, "infer", info[e]["flops_per_symbol"])
            cells = [f"`{e}`", f"{info[e]['parameters']:,}", f"{info[e]['flops_per_symbol']:,}",
                     cell(threads, "infer", e, "words_per_s"), cell(threads, "latency", e, "latency_p50_ms", "{:.1f}"),
                     cell(threads, "train", e, "symbols_per_s"),
                     *[cell(threads, f"infer@{t}", e, "symbols_per_s") for t in lengths],
                     *[cell(threads, f"train@{t}", e, "symbols_per_s") for t in lengths],
                     f"{rate:.1f} ({rate / peaks[threads]:.1%})"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def bench_command(cfg: DictConfig, run_dir: Path) -> dict:
    b = cfg.bench
    _check(b)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    task_name = cfg.task.name
    task, task_cfg = TASKS[task_name], task_config(config)
    encoders = list(b.encoders)
    unknown = [e for e in encoders if e not in SCHEMAS["encoder"]]
    if unknown:
        raise UserError(f"bench.encoders: unknown encoder(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(SCHEMAS['encoder'])}")
    baseline = b.baseline if b.baseline in encoders else None
    if b.baseline and baseline is None:
        raise UserError(f"bench.baseline={b.baseline} is not among bench.encoders ({', '.join(encoders)})")
    threads_list = [t if t > 0 else (os.cpu_count() or 1) for t in b.threads]
    device = pick_device(b.device)
    if device.type == "cuda" and b.amp and not torch.cuda.is_bf16_supported():
        raise UserError("bench.amp: this GPU has no bf16; set bench.amp=false")
    torch.manual_seed(cfg.seed)

    # ---- the same data, tokenizer and labels for every encoder
    data = load_splits(cfg.data, task=task_name)
    train_split = data["train"].select(range(min(b.sentences, len(data["train"]))))
    eval_name = "test" if "test" in data else "validation" if "validation" in data else "train"
    eval_split = data[eval_name].select(range(min(b.sentences, len(data[eval_name]))))
    tokenizer = tok.build(cfg.tokenizer.name, task.tokenizer_examples(data["train"]), cfg.tokenizer.min_frequency,
                          cfg.tokenizer.lowercase, cfg.tokenizer.max_vocab)
    labels = task.label_vocabulary(data["train"], task_cfg)
    train_split = {c: train_split[c] for c in task.COLUMNS}
    eval_split = {c: eval_split[c] for c in task.COLUMNS}
    eval_encoded = task.encode(eval_split, tokenizer, labels, eval_name, task_cfg)
    train_encoded = task.encode(train_split, tokenizer, labels, "train", task_cfg)
    words = sum(_words(task_name, eval_split, i) for i in range(len(eval_encoded["ids"])))
    symbols = sum(len(ids) for ids in eval_encoded["ids"])
    batches = {"infer": _batches(task, eval_encoded, b.batch_tokens, device),
               "train": _batches(task, train_encoded, b.batch_tokens, device)}
    single = [task.make_batch(eval_encoded, [i]) for i in range(min(b.latency_sentences, len(eval_encoded["ids"])))]
    single = [{k: v.to(device) for k, v in batch.items()} for batch in single]
    lengths = list(b.lengths) if task_name in ("tagging", "classification") else []
    if b.lengths and not lengths:
        log.warning("bench: inputs of a fixed length are for tagging and classification, not %s", task_name)
    for length in lengths:
        count = max(2, b.length_tokens // length)
        encoded = task.encode(joined(train_split, task_name, length, count), tokenizer, labels, f"T={length}", task_cfg)
        batches[f"@{length}"] = _batches(task, encoded, max(b.length_tokens, length + 2), device)

    subjects = {name: Subject(name, task, task_cfg, tokenizer.get_vocab_size(), len(labels), device, b.lr, b.amp)
                for name in encoders}
    measures = ["infer", "latency", "train"] + [f"{kind}@{length}" for length in lengths for kind in ("infer", "train")]
    log.info("bench: %s on %s, encoders %s, threads %s, %d repetitions of %s", task_name, cfg.data.name,
             ", ".join(encoders), threads_list, b.repetitions, ", ".join(measures))

    raw, peaks = [], {}
    for threads in threads_list:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        peaks[threads] = matmul_gflops(device)
        for subject in subjects.values():  # warm-up: first calls allocate and pick kernels
            subject.infer(batches["infer"][:1])
            subject.train(batches["train"][:1])
        bar = tqdm(total=b.repetitions * len(measures) * len(encoders), desc=f"bench, {threads} thread(s)",
                   disable=None if b.progress else True, leave=False, dynamic_ncols=True)
        for rep in range(b.repetitions):
            for measure in measures:
                for k in range(len(encoders)):
                    subject = subjects[encoders[(k + rep) % len(encoders)]]  # a rotating first encoder
                    bar.set_postfix_str(f"{measure} {subject.name}")
                    bar.update(1)
                    row = {"threads": threads, "repetition": rep, "measure": measure, "encoder": subject.name,
                           "order": k}
                    if measure == "latency":
                        times = []
                        for batch in single:
                            start = time.perf_counter()
                            subject.infer([batch])
                            times.append(1000 * (time.perf_counter() - start))
                        times.sort()
                        row["latency_p50_ms"] = statistics.median(times)
                        row["latency_p95_ms"] = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
                    else:
                        kind, _, length = measure.partition("@")
                        run = subject.infer if kind == "infer" else subject.train
                        seconds, n_symbols, n_batches = _timed(run, batches[f"@{length}" if length else kind],
                                                               b.seconds)
                        row.update(symbols_per_s=n_symbols / seconds, batches=n_batches, seconds=seconds)
                        if measure == "infer":
                            row["words_per_s"] = row["symbols_per_s"] * words / max(symbols, 1)
                    raw.append(row)
            log.info("bench: threads %d, repetition %d of %d done", threads, rep + 1, b.repetitions)
            # every repetition so far, in case the run is stopped: nothing measured is lost
            (run_dir / "bench.partial.json").write_text(json.dumps({"peak_gflops": peaks, "raw": raw}))
        bar.close()

    rows = summarize(raw, baseline) if baseline else summarize(raw, encoders[0])
    info = {name: {"parameters": s.parameters, "flops_per_symbol": s.flops_per_symbol} for name, s in subjects.items()}
    text = overview(rows, info, peaks, baseline or encoders[0]) + "\n" + table(rows, info, peaks, baseline or encoders[0])
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "task": task_name, "data": cfg.data.name,
              "device": str(device), "threads": threads_list, "repetitions": b.repetitions,
              "baseline": baseline or encoders[0], "peak_gflops": peaks, "encoders": info,
              "eval_split": eval_name, "words_per_symbol": words / max(symbols, 1), "summary": rows, "raw": raw,
              "config": config}
    (run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    (run_dir / "bench.partial.json").unlink(missing_ok=True)
    (run_dir / "bench.md").write_text(text)
    for threads in threads_list:
        if lengths:
            curves = {}
            for name in encoders:
                ys = [next(r["median"] for r in rows if (r["threads"], r["measure"], r["encoder"], r["metric"]) ==
                           (threads, f"infer@{length}", name, "symbols_per_s")) for length in lengths]
                curves[name] = (lengths, ys)
            plot_curves(run_dir / f"length_{threads}threads.png", f"inference, {threads} thread(s)",
                        "input length T (symbols)", "symbols/s", curves, log_y=True, log_x=True)
            base = baseline or encoders[0]
            ratios = {}
            for name in encoders:
                if name != base:
                    ys = [next(r["ratio_to_baseline"] or 0.0 for r in rows if (r["threads"], r["measure"], r["encoder"],
                          r["metric"]) == (threads, f"{kind}@{length}", name, "symbols_per_s")) for length in lengths
                          for kind in ("infer",)]
                    ratios[name] = (lengths, ys)
            if ratios:
                plot_curves(run_dir / f"ratio_{threads}threads.png", f"inference speed / {base}, {threads} thread(s)",
                            "input length T (symbols)", f"times {base}'s symbols/s", ratios, log_y=True, log_x=True)
    print(overview(rows, info, peaks, baseline or encoders[0]), end="")  # bench.md adds every measurement
    log.info("bench: wrote %s", run_dir / "bench.json")
    return result
