"""The inputs every subject is measured on: the same data, tokenizer and labels for all."""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig

from convnlp.data import load_splits
from convnlp.data import tokenizer as tok
from convnlp.data.batching import token_batches

log = logging.getLogger("convnlp.bench")


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


def _batches(task, encoded: dict, batch_tokens: int, device: torch.device) -> list[tuple[dict, int]]:
    lengths = [len(ids) for ids in encoded["ids"]]
    out = []
    for indices in token_batches(lengths, batch_tokens, shuffle=False):
        batch = {k: v.to(device) for k, v in task.make_batch(encoded, indices).items()}
        out.append((batch, int(batch["mask"].sum())))
    return out


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
        self.labels = task.label_vocabulary(data["train"], task_cfg, self.tokenizer)
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
        self.work = {
            "infer": _batches(task, eval_encoded, b.batch_tokens, device),
            "train": _batches(task, train_encoded, b.batch_tokens, device),
            "latency": [({k: v.to(device) for k, v in batch.items()}, 0) for batch in single],
        }
        self.lengths = list(b.lengths) if task_name in ("tagging", "classification") else []
        if b.lengths and not self.lengths:
            log.warning("bench: inputs of a fixed length are for tagging and classification, not %s", task_name)
        for length in self.lengths:
            count = max(2, b.length_tokens // length)
            encoded = task.encode(
                joined(self.train, task_name, length, count), self.tokenizer, self.labels, f"T={length}", task_cfg
            )
            self.work[f"@{length}"] = _batches(task, encoded, max(b.length_tokens, length + 2), device)

    def sentence_work(self, batch_size: int) -> dict[str, list]:
        """The same evaluation inputs (word lists, or texts) for a peer or a trained checkpoint:
        batches of ``batch_size`` with their symbol counts (as the bench's tokenizer counts them),
        and single ones."""
        tokens, sizes = self.eval[self.input_column], self.symbols_per_sentence
        chunks = [
            (tokens[i : i + batch_size], sum(sizes[i : i + batch_size])) for i in range(0, len(tokens), batch_size)
        ]
        return {"infer": chunks, "latency": [([tokens[i]], sizes[i]) for i in range(self.latency_count)]}


# what each profiled operator is, by its name (first match; self time, so nothing counts twice)
