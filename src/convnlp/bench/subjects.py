"""What `convnlp bench` measures: an encoder in the common model (``Subject``, at its defaults or
resized to match the baseline), a trained checkpoint as `predict` runs it (``Trained``), peers."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from convnlp import checkpoint, export, peers
from convnlp.bench.harness import synchronize
from convnlp.bench.workload import Workload
from convnlp.data import features
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.inspect import layer_table
from convnlp.model import build_model, count_parameters
from convnlp.onnx_runtime import OnnxModel
from convnlp.registry import ENCODERS
from convnlp.registry import defaults as registry_defaults
from convnlp.tasks import get_task, task_config
from convnlp.tasks.tagging import prediction_batches

log = logging.getLogger("convnlp.bench")


def defaults(name: str) -> dict:
    """The encoder ``name`` at its schema's defaults (the shipped encoder)."""
    return registry_defaults(ENCODERS[name].config)


def size_key(name: str) -> str:
    """The setting that sizes an encoder family (``size`` where it registers; else its width)."""
    return ENCODERS[name].info.get("size", "width")


def encoder_flops(encoder: torch.nn.Module, input_dim: int) -> int:
    """Forward FLOPs per symbol of an encoder, as `inspect` counts them."""
    return sum(r["flops_per_position"] for r in layer_table(encoder, input_dim))


def matched(name: str, target: int, by: str, task_cfg: dict, vocab_size: int, num_labels: int) -> dict:
    """The encoder ``name`` resized (the setting it registered as its ``size``, else its width) so that its own parameters
    (``by="parameters"``) or forward FLOPs per symbol (``by="flops"``) come nearest ``target``."""
    base, key = defaults(name), size_key(name)

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

    def __init__(
        self,
        name: str,
        encoder: dict,
        task,
        task_cfg: dict,
        vocab_size: int,
        num_labels: int,
        device: torch.device,
        lr: float,
        amp: bool,
    ):
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
        synchronize(self.device)

    def train(self, batch: dict) -> None:
        self.model.train()
        with self._autocast():
            logits = self.model(batch)
        loss, _ = self.task.loss(logits, batch, self.task_cfg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        synchronize(self.device)


class Trained:
    """A trained checkpoint as a bench subject: inputs in, predictions out, as `convnlp predict`
    runs it (tokenization, word features, batching, the network, the labels), so its speed and
    its accuracy on the evaluated split come from the same model in the same run."""

    measures = ("infer", "latency")

    def __init__(
        self,
        path: str,
        task_name: str,
        device: torch.device,
        batch_tokens: int,
        runtime: str = "torch",
        exported: Path | None = None,
        calibration: list | None = None,
    ):

        loaded = checkpoint.load(path, device)
        self.model, config, self.tokenizer, self.labels = loaded.model, loaded.config, loaded.tokenizer, loaded.labels
        if config["task"]["name"] != task_name:
            raise UserError(
                f"bench.checkpoints: {path} is a task={config['task']['name']} checkpoint; "
                f"this bench is task={task_name}"
            )
        self.model.eval()
        self.task, self.task_cfg, self.device = get_task(task_name), task_config(config), device
        self.batch_tokens = batch_tokens
        where = Path(path).resolve()
        self.name = where.parent.name if where.name in ("best", "last") else where.name
        self.parameters = count_parameters(self.model)
        self.flops_per_symbol = None  # the whole prediction is timed, not the encoder alone
        features = self.task_cfg.get("features") or []
        self.description = (
            f"checkpoint {path}: encoder={config['encoder']['name']}, "
            f"tokenizer={tok.kind_of(self.tokenizer)}" + (f", word features [{','.join(features)}]" if features else "")
        )
        self.runtime = runtime
        if runtime != "torch":  # exported here, then run by ONNX Runtime
            if device.type != "cpu":
                raise UserError(f"bench.runtimes: {runtime} runs on the CPU; set bench.device=cpu")
            int8 = runtime == "onnx-int8"
            info = export.export(
                path, exported, quantized="int8" if int8 else None, calibration=calibration if int8 else None
            )
            self.model = OnnxModel(exported / "model.onnx")
            self.name += f"/{runtime}"
            self.description += f"; ONNX Runtime {info['onnxruntime']}, opset {info['opset']}" + (
                f", static int8 calibrated on {len(calibration or [])} examples of the bench's training split, "
                f"agreeing with float32 on {info['int8_agreement_with_float32']:.2%} of their predictions"
                if int8
                else ", float32"
            )

    def set_threads(self, threads: int) -> None:
        """ONNX Runtime: a session with ``threads`` intra-op threads (fixed when it is made)."""
        if self.runtime != "torch":
            self.model.set_threads(threads)

    def infer(self, inputs: list) -> list:
        with torch.inference_mode():
            return self.task.predict_records(
                self.model, self.tokenizer, self.labels, inputs, self.device, self.task_cfg, self.batch_tokens
            )

    def batches(self, inputs: list) -> list[tuple[dict, int]]:
        """The batches `predict` makes of ``inputs`` (tagging), with their symbol counts."""

        encoded, indices = prediction_batches(
            self.tokenizer, inputs, features.from_task(self.task_cfg), self.batch_tokens
        )
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
            return self.task.evaluate(
                self.model, self.tokenizer, self.labels, split, self.task_cfg, self.device, self.batch_tokens
            )["accuracy"]


def _peers(cfg: DictConfig, work: Workload, device: torch.device) -> tuple[list, dict]:
    """The peers that can run (built on the workload's sentences), and a line for each one
    requested: its description, or why it is absent."""
    subjects, lines = [], {}
    for name in cfg.bench.peers:
        reason = (
            f"{name} is a CPU peer, not run on {device.type}"
            if device.type != "cpu"
            else f"{name} is a tagging peer, not run for task={cfg.task.name}"
            if cfg.task.name != "tagging"
            else peers.missing(name)
        )
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
            lines[name] += (
                f"; tagging accuracy {peer.accuracy_on_eval:.2%} on the {len(work.eval_full)} "
                f"{work.eval_name} sentences (gold tokens)"
            )
        subjects.append(peer)
    return subjects, lines


def _trained(cfg: DictConfig, work: Workload, device: torch.device, run_dir: Path) -> tuple[list, dict]:
    """``bench.checkpoints`` under each of ``bench.runtimes`` as subjects, each with its accuracy
    on the evaluated split (ONNX: exported to the run directory's onnx/)."""
    subjects, lines = [], {}
    for k, (path, runtime) in enumerate((p, r) for p in cfg.bench.checkpoints for r in cfg.bench.runtimes):
        subject = Trained(
            str(path),
            cfg.task.name,
            device,
            cfg.bench.batch_tokens,
            runtime,
            run_dir / "onnx" / f"{k + 1}-{runtime}",
            list(work.train[work.input_column][:1000]),
        )
        if subject.name in lines or subject.name in cfg.bench.encoders:
            subject.name = f"{subject.name}#{len(subjects) + 1}"
        subject.work = work.sentence_work(cfg.bench.batch_sentences)
        subject.accuracy_on_eval = subject.accuracy(work.eval_full)
        lines[subject.name] = (
            f"{subject.description}; accuracy {subject.accuracy_on_eval:.2%} on the "
            f"{len(work.eval_full)} {work.eval_name} examples"
        )
        log.info("bench: %s: %s", subject.name, lines[subject.name])
        subjects.append(subject)
    return subjects, lines
