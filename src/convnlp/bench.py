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

Every thread count is measured alone and, for each ``bench.neighbours`` count n > 0, again beside n
busy neighbour processes (one thread each, computing without pause, as a single-thread training
does), which is how a shared machine slows a run.

With ``task=tagging`` and spaCy installed (``pip install -e ".[peers]"``), spaCy's CPU tagger is
timed beside the encoders on the same sentences at the same thread count (``convnlp.peers``).

Each figure is the median of the repetitions, with min and max. Also per encoder: parameters,
forward FLOPs per symbol of the encoder (as `inspect` counts them), the GFLOP/s that achieves,
and its share of the machine's peak, measured here as an fp32 matrix multiply at the same thread
count. Everything goes to ``bench.json`` (with every raw repetition), ``bench.md`` and PNG plots
in the run directory.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
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
from convnlp import peers
from convnlp.tasks import TASKS, task_config

log = logging.getLogger(__name__)

LOWER_IS_BETTER = ("latency_p50_ms", "latency_p95_ms")
RUNTIMES = ("torch", "onnx", "onnx-int8")  # what bench.checkpoints run under (convnlp export for ONNX)


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


def matmul_gflops(device: torch.device, n: int = 1024, seconds: float = 0.2, trials: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate at the current thread count (the 'peak'): the
    best of ``trials`` timings of ``seconds`` each (a single timing was seen 40% low)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    rates = []
    for _ in range(trials):
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < seconds:
            a @ b
            calls += 1
        _sync(device)
        rates.append(2 * n**3 * calls / (time.perf_counter() - start) / 1e9)
    return max(rates)


NEIGHBOUR = """
import os, torch
torch.set_num_threads(1)
a, parent = torch.randn(256, 256), os.getppid()
print("ready", flush=True)
while os.getppid() == parent:  # stops with bench, even when bench is killed
    for _ in range(50):
        a @ a
"""


@contextmanager
def neighbours(count: int):
    """``count`` busy processes beside the measurement, one thread each, computing without pause
    (as a single-thread training does); stopped when the block ends."""
    procs = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdout=subprocess.PIPE, text=True,
                                          env={**os.environ, "OMP_NUM_THREADS": "1"}))
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                try:
                    code = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = "none: it hung"
                raise UserError(f"bench.neighbours: a busy neighbour process did not start (exit status {code})")
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def defaults(name: str) -> dict:
    """The encoder ``name`` at its schema's defaults (the shipped encoder)."""
    return OmegaConf.to_container(OmegaConf.structured(SCHEMAS["encoder"][name]))


def encoder_flops(encoder: torch.nn.Module, input_dim: int) -> int:
    """Forward FLOPs per symbol of an encoder, as `inspect` counts them."""
    return sum(r["flops_per_position"] for r in layer_table(encoder, input_dim))


SIZE_KEY = {"dense": "growth", "lstm": "hidden", "bilstm": "hidden"}  # what sizes a family; the rest: width


def matched(name: str, target: int, by: str, task_cfg: dict, vocab_size: int, num_labels: int) -> dict:
    """The encoder ``name`` resized (``SIZE_KEY``, else its width) so that its own parameters
    (``by="parameters"``) or forward FLOPs per symbol (``by="flops"``) come nearest ``target``."""
    base, key = defaults(name), SIZE_KEY.get(name, "width")

    @functools.cache
    def cost(size: int) -> int:
        encoder = build_model(task_cfg, {**base, key: size}, vocab_size, num_labels).encoder
        return count_parameters(encoder) if by == "parameters" else encoder_flops(encoder, task_cfg["embedding_dim"])

    low, high = 1, max(2, base[key])
    while cost(high) < target and high < 1 << 14:
        low, high = high, high * 2
    while high - low > 1:  # both costs grow with the size
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) < target else (low, middle)
    return {**base, key: min((low, high), key=lambda size: abs(cost(size) - target))}


class Subject:
    """One encoder in the common model; it runs every measurement."""

    measures = None  # all

    def __init__(self, name: str, encoder: dict, task, task_cfg: dict, vocab_size: int, num_labels: int,
                 device: torch.device, lr: float, amp: bool):
        self.name, self.encoder = name, encoder
        self.model = build_model(task_cfg, encoder, vocab_size, num_labels).to(device)
        self.parameters = count_parameters(self.model)
        self.encoder_parameters = count_parameters(self.model.encoder)
        self.flops_per_symbol = encoder_flops(self.model.encoder, task_cfg["embedding_dim"])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.task, self.task_cfg, self.device = task, task_cfg, device
        self.amp = amp and device.type == "cuda"  # bf16 autocast, as training runs on CUDA
        self.work: dict[str, list] = {}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def infer(self, batch: dict) -> None:
        self.model.eval()
        with torch.inference_mode(), self._autocast():
            self.model(batch)
        _sync(self.device)

    def train(self, batch: dict) -> None:
        self.model.train()
        with self._autocast():
            logits = self.model(batch)
        loss, _ = self.task.loss(logits, batch, self.task_cfg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        _sync(self.device)


class Trained:
    """A trained checkpoint as a bench subject: inputs in, predictions out, as `convnlp predict`
    runs it (tokenization, word features, batching, the network, the labels), so its speed and
    its accuracy on the evaluated split come from the same model in the same run."""

    measures = ("infer", "latency")

    def __init__(self, path: str, task_name: str, device: torch.device, batch_tokens: int, runtime: str = "torch",
                 exported: Path | None = None, calibration: list | None = None):
        from convnlp import checkpoint

        self.model, config, self.tokenizer, self.labels = checkpoint.load(path, device)
        if config["task"]["name"] != task_name:
            raise UserError(f"bench.checkpoints: {path} is a task={config['task']['name']} checkpoint; "
                            f"this bench is task={task_name}")
        self.model.eval()
        self.task, self.task_cfg, self.device = TASKS[task_name], task_config(config), device
        self.batch_tokens = batch_tokens
        where = Path(path).resolve()
        self.name = where.parent.name if where.name in ("best", "last") else where.name
        self.parameters = count_parameters(self.model)
        self.flops_per_symbol = None  # the whole prediction is timed, not the encoder alone
        features = self.task_cfg.get("features") or []
        self.description = (f"checkpoint {path}: encoder={config['encoder']['name']}, "
                            f"tokenizer={tok.kind_of(self.tokenizer)}"
                            + (f", word features [{','.join(features)}]" if features else ""))
        self.runtime = runtime
        if runtime != "torch":  # exported here, then run by ONNX Runtime
            from convnlp import export

            if device.type != "cpu":
                raise UserError(f"bench.runtimes: {runtime} runs on the CPU; set bench.device=cpu")
            int8 = runtime == "onnx-int8"
            info = export.export(path, exported, quantized="int8" if int8 else None,
                                 calibration=calibration if int8 else None)
            self.model = export.OnnxModel(exported / "model.onnx")
            self.name += f"/{runtime}"
            self.description += (f"; ONNX Runtime {info['onnxruntime']}, opset {info['opset']}" + (
                f", static int8 calibrated on {len(calibration or [])} examples of the bench's training split, "
                f"agreeing with float32 on {info['int8_agreement_with_float32']:.2%} of their predictions"
                if int8 else ", float32"))

    def set_threads(self, threads: int) -> None:
        """ONNX Runtime: a session with ``threads`` intra-op threads (fixed when it is made)."""
        if self.runtime != "torch":
            self.model.set_threads(threads)

    def infer(self, inputs: list) -> list:
        with torch.inference_mode():
            return self.task.predict_records(self.model, self.tokenizer, self.labels, inputs, self.device,
                                             self.task_cfg, self.batch_tokens)

    def batches(self, inputs: list) -> list[tuple[dict, int]]:
        """The batches `predict` makes of ``inputs`` (tagging), with their symbol counts."""
        from convnlp.data import features
        from convnlp.tasks.tagging import prediction_batches

        encoded, indices = prediction_batches(self.tokenizer, inputs, features.from_task(self.task_cfg),
                                              self.batch_tokens)
        return [(self.task.make_batch(encoded, i), sum(len(encoded["ids"][k]) for k in i)) for i in indices]

    def network(self, batch: dict) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(batch)

    def stages(self, chunks: list[tuple]) -> dict[str, float]:
        """Tagging: the shares of a prediction's time spent preparing the input (tokenization,
        word features, padding), in the network, and reading out the tags (argmax, labels); each
        stage timed on its own over ``chunks`` (``predict``'s sentence windows aside)."""
        start = time.perf_counter()
        prepared = [self.batches(inputs) for inputs, _ in chunks]
        prepare = time.perf_counter() - start
        start = time.perf_counter()
        scores = [self.network(batch) for batches in prepared for batch, _ in batches]
        network = time.perf_counter() - start
        start = time.perf_counter()
        for s in scores:
            [[self.labels[k] for k in row] for row in s.argmax(-1).tolist()]
        output = time.perf_counter() - start
        total = prepare + network + output
        return {"input": prepare / total, "network": network / total, "output": output / total}

    def accuracy(self, split) -> float:
        with torch.inference_mode():
            return self.task.evaluate(self.model, self.tokenizer, self.labels, split, self.task_cfg, self.device,
                                      self.batch_tokens)["accuracy"]


def _runs(subject, measure: str) -> bool:
    return subject.measures is None or measure in subject.measures


def _work(measure: str) -> str:
    """The inputs a measurement runs on: infer, latency, train, or @T for infer@T and train@T."""
    kind, _, length = measure.partition("@")
    return f"@{length}" if length else kind


def _timed(run, work: list[tuple], seconds: float) -> tuple[float, int, int]:
    """Run ``run`` over the (input, symbols) pairs of ``work`` (once at least, cycling until
    ``seconds`` have passed): elapsed seconds, symbols and batches processed."""
    done, symbols, start = 0, 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        batch, size = work[done % len(work)]
        run(batch)
        symbols += size
        done += 1
    return time.perf_counter() - start, symbols, done


def measure_once(subject, measure: str, seconds: float) -> dict:
    work = subject.work[_work(measure)]
    if measure == "latency":
        times = []
        for sentence, _ in work:
            start = time.perf_counter()
            subject.infer(sentence)
            times.append(1000 * (time.perf_counter() - start))
        times.sort()
        return {"latency_p50_ms": statistics.median(times),
                "latency_p95_ms": times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]}
    run = subject.train if measure.startswith("train") else subject.infer
    elapsed, symbols, batches = _timed(run, work, seconds)
    return {"symbols_per_s": symbols / elapsed, "batches": batches, "seconds": elapsed}


def _batches(task, encoded: dict, batch_tokens: int, device: torch.device) -> list[tuple[dict, int]]:
    lengths = [len(ids) for ids in encoded["ids"]]
    out = []
    for indices in token_batches(lengths, batch_tokens, shuffle=False):
        batch = {k: v.to(device) for k, v in task.make_batch(encoded, indices).items()}
        out.append((batch, int(batch["mask"].sum())))
    return out


def _key(r: dict) -> tuple:
    return r["threads"], r.get("neighbours", 0), r["measure"], r["encoder"]


def summarize(raw: list[dict], baseline: str) -> list[dict]:
    """Median, min and max of every (threads, neighbours, measurement, encoder) over the
    repetitions, and the median of the per-repetition ratios to the baseline encoder (how many
    times faster)."""
    rows = []
    measures = list(dict.fromkeys(r["measure"] for r in raw))  # in the order they were run
    first = [r for r in raw if r["repetition"] == 0 and _key(r)[:3] == _key(raw[0])[:3]]
    encoders = [r["encoder"] for r in sorted(first, key=lambda r: r["order"])]  # bench.encoders' order
    encoders += [e for e in dict.fromkeys(r["encoder"] for r in raw) if e not in encoders]
    keys = sorted({_key(r) for r in raw}, key=lambda k: (k[0], k[1], measures.index(k[2]), encoders.index(k[3])))
    by_rep = {(*_key(r), r["repetition"]): r for r in raw}
    for key in keys:
        mine = [r for r in raw if _key(r) == key]
        for metric in [k for k in mine[0] if k.endswith(("_per_s", "_ms"))]:
            values = [r[metric] for r in mine]
            ratios = []
            for r in mine:
                base = by_rep.get((*key[:3], baseline, r["repetition"]))
                if base is not None and base.get(metric, 0) > 0 and r[metric] > 0:
                    ratio = r[metric] / base[metric]
                    ratios.append(1 / ratio if metric in LOWER_IS_BETTER else ratio)
            rows.append({"threads": key[0], "neighbours": key[1], "measure": key[2], "encoder": key[3],
                         "metric": metric, "median": statistics.median(values), "min": min(values),
                         "max": max(values), "ratio_to_baseline": statistics.median(ratios) if ratios else None,
                         "ratios": ratios, "repetitions": len(values)})
    return rows


def gflops(symbols_per_s: float, measure: str, flops_per_symbol: int | None) -> float | None:
    """The encoder's achieved rate: forward FLOPs per symbol, x3 for training (backward ~ 2x forward)."""
    if flops_per_symbol is None:
        return None
    return symbols_per_s * (3 if measure.startswith("train") else 1) * flops_per_symbol / 1e9


def _setting(threads: int, neighbours: int) -> str:
    busy = f", beside {neighbours} busy neighbour process{'es' if neighbours > 1 else ''}" if neighbours else ""
    return f"{threads} thread(s){busy}"


def table(rows: list[dict], subjects: dict, peaks: dict, baseline: str) -> str:
    lines = [f"| threads | neighbours | measurement | encoder | median | min - max | × {baseline} | "
             "GFLOP/s (share of peak) |", "|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        unit = {"symbols_per_s": "symbols/s", "words_per_s": "words/s", "latency_p50_ms": "ms p50",
                "latency_p95_ms": "ms p95"}[r["metric"]]
        flops = ""
        rate = gflops(r["median"], r["measure"], subjects[r["encoder"]]["flops_per_symbol"])
        if r["metric"] == "symbols_per_s" and rate is not None:  # the peak was measured alone
            flops = f"{rate:.2f}" + (f" ({rate / peaks[r['threads']]:.1%})" if not r.get("neighbours") else "")
        ratio = f"{r['ratio_to_baseline']:.2f}" if r["ratio_to_baseline"] is not None else ""
        lines.append(f"| {r['threads']} | {r.get('neighbours', 0)} | {r['measure']} | {r['encoder']} | "
                     f"{r['median']:,.1f} {unit} | {r['min']:,.1f} - {r['max']:,.1f} | {ratio} | {flops} |")
    return "\n".join(lines) + "\n"


def thread_counts(b) -> list[int]:
    """``bench.threads`` as numbers of threads (0: all cores)."""
    return [t or os.cpu_count() or 1 for t in b.threads]


def _check(b) -> None:
    for key in ("repetitions", "sentences", "latency_sentences", "batch_tokens", "length_tokens", "batch_sentences"):
        if not isinstance(b[key], int) or isinstance(b[key], bool) or b[key] < 1:
            raise UserError(f"bench.{key}={b[key]!r} must be a whole number, at least 1")
    if not isinstance(b.seconds, (int, float)) or b.seconds <= 0:
        raise UserError(f"bench.seconds={b.seconds!r} must be a positive number")
    for key, least, note in (("threads", 0, " (0: all cores)"), ("lengths", 2, ", at least 2"),
                             ("neighbours", 0, " (0: alone)")):
        if any(not isinstance(v, int) or isinstance(v, bool) or v < least for v in b[key]):
            raise UserError(f"bench.{key}={list(b[key])} must be a list of whole numbers{note}")
    if not b.neighbours:
        raise UserError("bench.neighbours is empty: [0] measures alone")
    for key, values in (("threads", thread_counts(b)), ("neighbours", list(b.neighbours)), ("encoders", list(b.encoders))):
        if len(set(values)) < len(values):
            raise UserError(f"bench.{key}={list(b[key])} names a setting twice" +
                            (f" (0 is all {os.cpu_count()} cores)" if key == "threads" else ""))
    unknown = [p for p in b.peers if p not in peers.KNOWN]
    if unknown:
        raise UserError(f"bench.peers: unknown peer(s) {', '.join(map(str, unknown))}; known: {', '.join(peers.KNOWN)}")
    if not b.encoders:
        raise UserError("bench.encoders is empty: name at least one encoder")
    unknown = [e for e in b.encoders if e not in SCHEMAS["encoder"]]
    if unknown:
        raise UserError(f"bench.encoders: unknown encoder(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(SCHEMAS['encoder'])}")
    if b.baseline and b.baseline not in b.encoders:
        raise UserError(f"bench.baseline={b.baseline} is not among bench.encoders ({', '.join(b.encoders)})")
    if b.match not in (None, "parameters", "flops"):
        raise UserError(f"bench.match={b.match!r} must be parameters, flops or null (each encoder at its defaults)")
    if b.match and not b.baseline:
        raise UserError("bench.match needs bench.baseline: the encoder whose size the others are matched to")
    unknown = [r for r in b.runtimes if r not in RUNTIMES]
    if unknown or not b.runtimes or len(set(b.runtimes)) < len(b.runtimes):
        raise UserError(f"bench.runtimes={list(b.runtimes)} must name each of {', '.join(RUNTIMES)} at most once, "
                        "at least one")
    if list(b.runtimes) != ["torch"] and not b.checkpoints:
        raise UserError(f"bench.runtimes={list(b.runtimes)} runs trained checkpoints: give bench.checkpoints=[DIR,...]")
    if list(b.runtimes) != ["torch"] and b.device == "cuda":
        raise UserError(f"bench.runtimes={list(b.runtimes)}: ONNX Runtime runs on the CPU here; set bench.device=cpu")


def overview(rows: list[dict], info: dict, peaks: dict, baseline: str) -> str:
    """One compact table per setting (thread count, busy neighbours): a subject per row;
    medians, and in brackets the median per-repetition ratio to the baseline. Then, where
    neighbours were measured, each speed beside them as a share of the speed alone."""
    find = {(*_key(r), r["metric"]): r for r in rows}

    def cell(setting, measure, encoder, metric, fmt="{:,.0f}"):
        r = find.get((*setting, measure, encoder, metric))
        if r is None:
            return ""
        ratio = f" ({r['ratio_to_baseline']:.2f}×)" if r["ratio_to_baseline"] is not None else ""
        return fmt.format(r["median"]) + ratio

    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    out = []
    for setting in dict.fromkeys(_key(r)[:2] for r in rows):
        threads = setting[0]
        measures = list(dict.fromkeys(r["measure"] for r in rows if _key(r)[:2] == setting))
        lengths = [m.partition("@")[2] for m in measures if m.startswith("infer@")]
        scored = any(info[e].get("accuracy") is not None for e in encoders)
        head = ["encoder", "parameters", *(["accuracy"] if scored else []), "FLOPs/symbol", "infer words/s", "latency p50 ms", "train symbols/s",
                *[f"infer T={t}" for t in lengths], *[f"train T={t}" for t in lengths], "infer GFLOP/s (peak share)"]
        out += [f"{_setting(*setting)}; symbols/s unless said, ({baseline} = 1.00×); fp32 matmul peak "
                f"{peaks[threads]:.0f} GFLOP/s" + (" (alone)" if setting[1] else ""), "", "| " + " | ".join(head) + " |",
                "|---" + "|---:" * (len(head) - 1) + "|"]
        for e in encoders:
            speed = find.get((*setting, "infer", e, "symbols_per_s"))
            if speed is None:
                continue
            rate = gflops(speed["median"], "infer", info[e]["flops_per_symbol"])
            flops = info[e]["flops_per_symbol"]
            size = f" ({info[e]['size']})" if "@" in e else ""
            accuracy = info[e].get("accuracy")
            cells = [f"`{e}`{size}", f"{info[e]['parameters']:,}",
                     *([f"{accuracy:.2%}" if accuracy is not None else ""] if scored else []),
                     "" if flops is None else f"{flops:,}",
                     cell(setting, "infer", e, "words_per_s"), cell(setting, "latency", e, "latency_p50_ms", "{:.1f}"),
                     cell(setting, "train", e, "symbols_per_s"),
                     *[cell(setting, f"infer@{t}", e, "symbols_per_s") for t in lengths],
                     *[cell(setting, f"train@{t}", e, "symbols_per_s") for t in lengths],
                     "" if rate is None else f"{rate:.1f}" + ("" if setting[1] else f" ({rate / peaks[threads]:.1%})")]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    busy = [s for s in dict.fromkeys(_key(r)[:2] for r in rows) if s[1] > 0]
    if busy:
        head = ["encoder", *[f"{m} {t} thr. + {n}" for t, n in busy for m in ("infer", "train")]]
        out += ["Beside busy neighbours: symbols/s (share of the same thread count alone)", "",
                "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        for e in encoders:
            cells = []
            for threads, n in busy:
                for m in ("infer", "train"):
                    here = find.get((threads, n, m, e, "symbols_per_s"))
                    alone = find.get((threads, 0, m, e, "symbols_per_s"))
                    share = f" ({here['median'] / alone['median']:.0%})" if here and alone else ""
                    cells.append(f"{here['median']:,.0f}{share}" if here else "")
            out.append(f"| `{e}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


class Workload:
    """The same data, tokenizer and labels for every encoder: batches of real sentences for
    inference and training, single sentences for latency, inputs of about T symbols."""

    def __init__(self, cfg: DictConfig, task, task_cfg: dict, device: torch.device):
        b, task_name = cfg.bench, cfg.task.name
        data = load_splits(cfg.data, task=task_name)
        self.eval_name = "test" if "test" in data else "validation" if "validation" in data else "train"
        train = data["train"].select(range(min(b.sentences, len(data["train"]))))
        evaluated = data[self.eval_name].select(range(min(b.sentences, len(data[self.eval_name]))))
        self.tokenizer = tok.build_from(cfg.tokenizer, task.tokenizer_examples(data["train"]))
        self.labels = task.label_vocabulary(data["train"], task_cfg)
        self.train = {c: train[c] for c in task.COLUMNS}
        self.eval = {c: evaluated[c] for c in task.COLUMNS}
        self.input_column = task.COLUMNS[0]
        self.eval_full = data[self.eval_name]
        eval_encoded = task.encode(self.eval, self.tokenizer, self.labels, self.eval_name, task_cfg)
        train_encoded = task.encode(self.train, self.tokenizer, self.labels, "train", task_cfg)
        self.symbols_per_sentence = [len(ids) for ids in eval_encoded["ids"]]
        self.words = sum(_words(task_name, self.eval, i) for i in range(len(self.symbols_per_sentence)))
        self.symbols = sum(self.symbols_per_sentence)
        self.latency_count = min(b.latency_sentences, len(self.symbols_per_sentence))
        single = [task.make_batch(eval_encoded, [i]) for i in range(self.latency_count)]
        self.work = {"infer": _batches(task, eval_encoded, b.batch_tokens, device),
                     "train": _batches(task, train_encoded, b.batch_tokens, device),
                     "latency": [({k: v.to(device) for k, v in batch.items()}, 0) for batch in single]}
        self.lengths = list(b.lengths) if task_name in ("tagging", "classification") else []
        if b.lengths and not self.lengths:
            log.warning("bench: inputs of a fixed length are for tagging and classification, not %s", task_name)
        for length in self.lengths:
            count = max(2, b.length_tokens // length)
            encoded = task.encode(joined(self.train, task_name, length, count), self.tokenizer, self.labels,
                                  f"T={length}", task_cfg)
            self.work[f"@{length}"] = _batches(task, encoded, max(b.length_tokens, length + 2), device)

    def sentence_work(self, batch_size: int) -> dict[str, list]:
        """The same evaluation inputs (word lists, or texts) for a peer or a trained checkpoint:
        batches of ``batch_size`` with their symbol counts (as the bench's tokenizer counts them),
        and single ones."""
        tokens, sizes = self.eval[self.input_column], self.symbols_per_sentence
        chunks = [(tokens[i:i + batch_size], sum(sizes[i:i + batch_size])) for i in range(0, len(tokens), batch_size)]
        return {"infer": chunks, "latency": [([tokens[i]], sizes[i]) for i in range(self.latency_count)]}


# what each profiled operator is, by its name (first match; self time, so nothing counts twice)
PROFILE_GROUPS = (("convolution", ("conv",)), ("matmul", ("addmm", "matmul", "aten::mm", "bmm", "linear")),
                  ("layout copies", ("copy_", "clone", "contiguous", "cat", "transpose", "permute")),
                  ("normalization", ("norm",)),
                  ("elementwise", ("add", "mul", "clamp", "relu", "gelu", "tanh", "sigmoid", "where", "fill", "div")))


def _scopes(model: torch.nn.Module) -> list:
    """Mark each part of the model (embedding, encoder, head) in the profiler's trace."""
    open_scopes, handles = {}, []
    for name, module in model.named_children():
        def enter(_module, _inputs, name=name):
            open_scopes[name] = torch.profiler.record_function(f"part::{name}")
            open_scopes[name].__enter__()

        def leave(_module, _inputs, _output, name=name):
            open_scopes.pop(name).__exit__(None, None, None)
        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def profile_shares(subject, work: list[tuple], top: int = 15, run=None) -> tuple[dict, str]:
    """Where one pass of batched inference over ``work`` spends its time (torch profiler, CPU):
    the share of each part of the model (its total time; "rest": the model's own glue) and of
    each kind of operator (``PROFILE_GROUPS``, by self time; "other": embedding lookups,
    gathers, allocation, the LSTM's own bookkeeping; "python": the time inside a part between
    its operators), and the table of the ``top`` operators."""
    from torch.profiler import ProfilerActivity, profile

    handles, run = _scopes(subject.model), run or subject.infer
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch, _ in work:
                run(batch)
    finally:
        for handle in handles:
            handle.remove()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    parts = {e.key.removeprefix("part::"): e.cpu_time_total / total for e in events if e.key.startswith("part::")}
    parts["rest"] = max(0.0, 1.0 - sum(parts.values()))
    kinds = {group: 0.0 for group, _ in PROFILE_GROUPS} | {"other": 0.0, "python": 0.0}
    for event in events:  # a part's own time is the Python that runs between its operators
        name = event.key.lower()
        group = "python" if name.startswith("part::") else \
            next((g for g, keys in PROFILE_GROUPS if any(k in name for k in keys)), "other")
        kinds[group] += event.self_cpu_time_total / total
    return {"parts": parts, "operators": kinds}, events.table(sort_by="self_cpu_time_total", row_limit=top)


def profile_table(profiles: dict[str, dict], threads: int) -> str:
    columns = list(dict.fromkeys((kind, g) for kind in ("parts", "operators") for p in profiles.values()
                                 for g in p[kind]))
    stages = any("stages" in p for p in profiles.values())
    columns = [("stages", g) for g in ("input", "network", "output") if stages] + columns
    lines = [f"Where batched inference spends its time ({threads} thread(s); torch profiler, CPU): the model's "
             "parts, then the kinds of operator" + ("; for a trained checkpoint first the stages of a whole "
                                                      "prediction (input: tokenization, word features, padding; "
                                                      "output: argmax and labels; each timed on its own)"
                                                      if stages else ""), "",
             "| encoder | " + " | ".join(g for _, g in columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    lines += [f"| `{name}` | " + " | ".join(f"{shares[k][g]:.0%}" if g in shares.get(k, {}) else ""
                                            for k, g in columns) + " |"
              for name, shares in profiles.items()]
    return "\n".join(lines) + "\n"


def _peers(cfg: DictConfig, work: Workload, device: torch.device) -> tuple[list, dict]:
    """The peers that can run (built on the workload's sentences), and a line for each one
    requested: its description, or why it is absent."""
    subjects, lines = [], {}
    for name in cfg.bench.peers:
        reason = (f"{name} is a CPU peer, not run on {device.type}" if device.type != "cpu" else
                  f"{name} is a tagging peer, not run for task={cfg.task.name}" if cfg.task.name != "tagging" else
                  peers.missing(name))
        if reason:
            lines[name] = reason
            log.warning("bench: %s", reason)
            continue
        peer = peers.SpacyTagger(work.train["tokens"], work.train["tags"], cfg.bench.spacy_model, cfg.bench.spacy_lang)
        peer.batch_size = cfg.bench.batch_sentences  # as a checkpoint's: equal batches
        peer.work = work.sentence_work(peer.batch_size)
        lines[name] = peer.description
        if peer.trained:
            peer.accuracy_on_eval = peer.accuracy(work.eval_full["tokens"], work.eval_full["tags"])
            lines[name] += (f"; tagging accuracy {peer.accuracy_on_eval:.2%} on the {len(work.eval_full)} "
                            f"{work.eval_name} sentences (gold tokens)")
        subjects.append(peer)
    return subjects, lines


def _trained(cfg: DictConfig, work: Workload, device: torch.device, run_dir: Path) -> tuple[list, dict]:
    """``bench.checkpoints`` under each of ``bench.runtimes`` as subjects, each with its accuracy
    on the evaluated split (ONNX: exported to the run directory's onnx/)."""
    subjects, lines = [], {}
    for k, (path, runtime) in enumerate((p, r) for p in cfg.bench.checkpoints for r in cfg.bench.runtimes):
        subject = Trained(str(path), cfg.task.name, device, cfg.bench.batch_tokens, runtime,
                          run_dir / "onnx" / f"{k + 1}-{runtime}", list(work.train[work.input_column][:1000]))
        if subject.name in lines or subject.name in cfg.bench.encoders:
            subject.name = f"{subject.name}#{len(subjects) + 1}"
        subject.work = work.sentence_work(cfg.bench.batch_sentences)
        subject.accuracy_on_eval = subject.accuracy(work.eval_full)
        lines[subject.name] = (f"{subject.description}; accuracy {subject.accuracy_on_eval:.2%} on the "
                               f"{len(work.eval_full)} {work.eval_name} examples")
        log.info("bench: %s: %s", subject.name, lines[subject.name])
        subjects.append(subject)
    return subjects, lines


def run_setting(subjects: list, measures: list[str], threads: int, n_neighbours: int, b, words_per_symbol: float,
                raw: list[dict], bar) -> None:
    """Every repetition of every measurement at one setting, the subjects interleaved from a
    rotating first one; rows appended to ``raw``."""
    for rep in range(b.repetitions):
        for measure in measures:
            order = 0
            for k in range(len(subjects)):
                subject = subjects[(k + rep) % len(subjects)]
                if not _runs(subject, measure):
                    continue
                bar.set_postfix_str(f"{measure} {subject.name}")
                bar.update(1)
                row = {"threads": threads, "neighbours": n_neighbours, "repetition": rep, "measure": measure,
                       "encoder": subject.name, "order": order, **measure_once(subject, measure, b.seconds)}
                if measure == "infer":
                    row["words_per_s"] = row["symbols_per_s"] * words_per_symbol
                raw.append(row)
                order += 1
        log.info("bench: %s, repetition %d of %d done", _setting(threads, n_neighbours), rep + 1, b.repetitions)


def _plots(run_dir: Path, rows: list[dict], threads_list: list[int], encoders: list[str], lengths: list[int],
           base: str) -> None:
    find = {(*_key(r), r["metric"]): r for r in rows}
    if not any(r["neighbours"] == 0 for r in rows):
        return  # inputs of length T are measured alone only
    for threads in threads_list if lengths else []:
        curves = {name: (lengths, [find[(threads, 0, f"infer@{t}", name, "symbols_per_s")]["median"] for t in lengths])
                  for name in encoders}
        plot_curves(run_dir / f"length_{threads}threads.png", f"inference, {threads} thread(s)",
                    "input length T (symbols)", "symbols/s", curves, log_y=True, log_x=True)
        ratios = {name: (lengths, [find[(threads, 0, f"infer@{t}", name, "symbols_per_s")]["ratio_to_baseline"] or 0.0
                                   for t in lengths]) for name in encoders if name != base}
        if ratios:
            plot_curves(run_dir / f"ratio_{threads}threads.png", f"inference speed / {base}, {threads} thread(s)",
                        "input length T (symbols)", f"times {base}'s symbols/s", ratios, log_y=True, log_x=True)


def bench_command(cfg: DictConfig, run_dir: Path) -> dict:
    b = cfg.bench
    _check(b)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    task = TASKS[cfg.task.name]
    task_cfg = task_config(config)
    encoders = list(b.encoders)
    base = b.baseline or encoders[0]
    threads_list = thread_counts(b)
    device = pick_device(b.device)
    if device.type == "cuda" and b.amp and not torch.cuda.is_bf16_supported():
        raise UserError("bench.amp: this GPU has no bf16; set bench.amp=false")
    torch.manual_seed(cfg.seed)

    work = Workload(cfg, task, task_cfg, device)
    sizes = (task_cfg, work.tokenizer.get_vocab_size(), len(work.labels))
    subjects = [Subject(name, defaults(name), task, *sizes, device, b.lr, b.amp) for name in encoders]
    if b.match:  # each encoder again, resized to the baseline's parameters or FLOPs
        target = next(s for s in subjects if s.name == base)
        target = target.encoder_parameters if b.match == "parameters" else target.flops_per_symbol
        subjects += [Subject(f"{name}@{b.match}", matched(name, target, b.match, *sizes), task, *sizes, device, b.lr,
                             b.amp) for name in encoders if name != base]
    for subject in subjects:
        subject.work = work.work
    trained, trained_lines = _trained(cfg, work, device, run_dir)
    extra_subjects, extra_lines = _peers(cfg, work, device)
    extra_subjects, extra_lines = trained + extra_subjects, {**trained_lines, **extra_lines}
    subjects += extra_subjects
    measures = ["infer", "latency", "train"] + [f"{kind}@{t}" for t in work.lengths for kind in ("infer", "train")]
    log.info("bench: %s on %s, %s, threads %s, busy neighbours %s, %d repetitions of %s", cfg.task.name,
             cfg.data.name, ", ".join(s.name for s in subjects), threads_list, list(b.neighbours), b.repetitions,
             ", ".join(measures))

    raw, peaks = [], {}
    words_per_symbol = work.words / max(work.symbols, 1)
    for threads in threads_list:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        with peers.thread_limit(threads) if extra_subjects else nullcontext():
            peaks[threads] = matmul_gflops(device)
            for subject in subjects:
                if hasattr(subject, "set_threads"):
                    subject.set_threads(threads)
            for subject in subjects:  # warm-up: first calls allocate and pick kernels
                subject.infer(subject.work["infer"][0][0])
                if _runs(subject, "train"):
                    subject.train(subject.work["train"][0][0])
            for n in b.neighbours:
                here = measures if n == 0 else [m for m in measures if "@" not in m]  # lengths: alone only
                total = b.repetitions * sum(_runs(s, m) for m in here for s in subjects)
                with neighbours(n), tqdm(total=total, desc=f"bench, {_setting(threads, n)}", leave=False,
                                         disable=None if b.progress else True, dynamic_ncols=True) as bar:
                    run_setting(subjects, here, threads, n, b, words_per_symbol, raw, bar)
                # every setting so far, in case the run is stopped: nothing measured is lost
                (run_dir / "bench.partial.json").write_text(json.dumps({"peak_gflops": peaks, "raw": raw}))

    profiles = {}
    if b.profile and device.type == "cpu":  # after the timings, so the profiler cannot slow them
        torch.set_num_threads(threads_list[0])
        for subject in subjects[:len(subjects) - len(extra_subjects)]:
            profiles[subject.name], ops = profile_shares(subject, subject.work["infer"])
            (run_dir / f"profile_{subject.name}.txt").write_text(ops)
        for subject in [t for t in trained if t.runtime == "torch"] if cfg.task.name == "tagging" else []:
            batches = [b for inputs, _ in subject.work["infer"] for b in subject.batches(inputs)]
            profiles[subject.name], ops = profile_shares(subject, batches, run=subject.network)
            profiles[subject.name]["stages"] = subject.stages(subject.work["infer"])
            (run_dir / f"profile_{subject.name}.txt").write_text(ops)
    rows = summarize(raw, base)
    info = {s.name: {"parameters": s.parameters, "flops_per_symbol": s.flops_per_symbol} for s in subjects}
    for s in subjects[:len(subjects) - len(extra_subjects)]:
        key = SIZE_KEY.get(s.name.partition("@")[0], "width")
        info[s.name].update(encoder_parameters=s.encoder_parameters, size=f"{key}={s.encoder[key]}")
    for peer in extra_subjects:
        info[peer.name].update(description=peer.description, accuracy=getattr(peer, "accuracy_on_eval", None))
    notes = "".join(f"{name}: {line}\n" for name, line in extra_lines.items())
    if profiles:
        notes += "\n" + profile_table(profiles, threads_list[0])
    summary = overview(rows, info, peaks, base) + notes
    text = summary + "\n" + table(rows, info, peaks, base)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "task": cfg.task.name, "data": cfg.data.name,
              "device": str(device), "threads": threads_list, "neighbours": list(b.neighbours),
              "repetitions": b.repetitions, "baseline": base, "peak_gflops": peaks, "encoders": info,
              "peers": extra_lines, "profile": profiles, "eval_split": work.eval_name, "words_per_symbol": words_per_symbol,
              "summary": rows, "raw": raw, "config": config}
    (run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    (run_dir / "bench.partial.json").unlink(missing_ok=True)
    (run_dir / "bench.md").write_text(text)
    _plots(run_dir, rows, threads_list, [s.name for s in subjects if s not in extra_subjects], work.lengths, base)
    print(summary, end="")  # bench.md adds every measurement
    log.info("bench: wrote %s", run_dir / "bench.json")
    return result
