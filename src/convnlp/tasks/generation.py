"""Generation: a new sequence from the input (grapheme to phoneme, transliteration, short
translation), of any length up to ``decoder.max_length``.

The encoder reads the source symbols; the decoder (``convnlp/decoders``) writes the output:

- **autoregressive** (``decoder=convs2s``, ``decoder=lstm``): one symbol after the other, each
  scored from the source and the symbols before it; trained with teacher forcing and
  cross-entropy (``decoder.label_smoothing``), decoded by greedy search (``task.beam=1``) or
  beam search (``task.beam=N``, ``task.length_penalty``), batched over sources, until the end
  symbol or the source's maximum output length (``convnlp.decoders.search``). An ensemble
  averages its members' next-symbol log-probabilities at every step.
- **deconvolutional** (``decoder=deconv``): compresses the source to a code and grows it back to
  ``decoder.max_length`` positions (with ``decoder.output_length=source``, a source's own share
  of them: ``length_ratio * n + length_extra`` for n symbols), each scored over the target
  vocabulary. Decoding is one parallel pass (argmax at every position), then:

- ``task.loss=ce``: the target is followed by the end symbol ``</s>`` and then ``<pad>`` to the
  source's last position; the model predicts all of it. The output is what comes before the first
  ``</s>`` (any ``<pad>`` or ``<blank>`` before it is left out).
- ``task.loss=ctc``: connectionist temporal classification over the positions with the
  ``<blank>`` symbol (the target is followed by ``</s>`` here too). Greedy decoding: merge
  repeated symbols, drop blanks, stop at ``</s>``.
- ``task.loss=auto`` (the default): ``ctc`` with ``deconv``, ``ce`` with the autoregressive
  decoders (the only loss they take).

Targets are split into tokens by ``task.target_tokens``: ``word`` (whitespace: phonemes,
words) or ``char``. The target vocabulary is the label list: three special symbols, then the
training tokens by frequency.

A source given several times (a word with two pronunciations) is one evaluation example whose
output is correct when it equals any of its references. Metrics: ``wer`` (sequences not equal
to any reference), ``per`` (token edit distance to the closest reference over its length),
``cer`` (the same over characters of the output text), ``bleu`` and ``chrf`` (sacrebleu, on the
output text; BLEU over characters with ``task.target_tokens=char``), and ``accuracy`` = 1 - wer
(what ``trainer.select=auto`` selects the best checkpoint by).

Data columns (``COLUMNS``): ``source`` (str) and ``target`` (str).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass

import torch
from rapidfuzz.distance import Levenshtein
from torch import nn
from torch.nn import functional as F

from convnlp.data import tokenizer as tok
from convnlp.data.batching import pad, token_batches
from convnlp.decoders import build_decoder, is_autoregressive, output_lengths, search
from convnlp.errors import UserError
from convnlp.registry import TASKS, at_least, option
from convnlp.tasks.shared import (
    count_unseen,
    dropout_option,
    embedding_dim_option,
    log_scalars,
    sequence_batch,
)

log = logging.getLogger(__name__)

COLUMNS = ("source", "target")
OUTPUT_FIELDS = ("source", "output", "tokens")  # the fields of a `convnlp predict` record (null with an error)
SPECIALS = ("<pad>", "</s>", "<blank>")
PAD, END, BLANK = 0, 1, 2
SELECT = ("auto", "accuracy", "wer", "per", "cer", "bleu", "chrf")  # trainer.select: auto is accuracy (1 - wer)


@dataclass
class GenerationConfig:
    name: str = "generation"
    embedding_dim: int = embedding_dim_option(64)
    embedding_dropout: float = dropout_option(0.0)
    token_dropout: float = dropout_option(0.0, "symbols replaced by <unk> in training")
    target_tokens: str = option("word", choices=("word", "char"), help="targets split at whitespace or per character")
    loss: str = option("auto", choices=("auto", "ce", "ctc"), help="auto: ctc with decoder=deconv, else ce")
    beam: int = option(5, at_least(1, "1 is greedy search"), help="autoregressive decoders: beam size")
    length_penalty: float = option(
        1.0, at_least(0), help="beam search ranks by log-probability / length ** length_penalty"
    )


def build_head(cfg: GenerationConfig, input_dim: int, num_labels: int, decoder: dict | None = None) -> nn.Module:
    if not decoder:
        raise UserError("task=generation needs a decoder: add decoder=convs2s (or deconv, lstm)")
    if cfg.loss == "ctc" and is_autoregressive(decoder):
        raise UserError(
            f"task.loss=ctc is for decoder=deconv; decoder={decoder['name']} trains with cross-entropy "
            "(task.loss=auto or ce)"
        )
    return build_decoder(decoder, input_dim, num_labels)


def loss_name(task: dict) -> str:
    """The loss a run trains with: ``task.loss``, with ``auto`` resolved by the decoder."""
    if task["loss"] != "auto":
        return task["loss"]
    return "ce" if is_autoregressive(task["decoder"]) else "ctc"


# ------------------------------------------------------------------------------ targets


def split_target(target: str, task: dict) -> list[str]:
    return list(target) if task["target_tokens"] == "char" else target.split()


def join_tokens(tokens: list[str], task: dict) -> str:
    return "".join(tokens) if task["target_tokens"] == "char" else " ".join(tokens)


def positions_needed(tokens: list, loss: str) -> int:
    """Output positions a target needs: its tokens and the end symbol, and with CTC one blank
    between every two equal neighbours."""
    ids = list(tokens) + [None]  # None stands for the end symbol
    if loss == "ctc":
        return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))
    return len(ids)


def label_vocabulary(split, task: dict, tokenizer=None) -> list[str]:
    """The special symbols, then the training targets' tokens, most frequent first."""
    counts = Counter(token for target in split["target"] for token in split_target(target, task))
    return list(SPECIALS) + sorted((t for t in counts if t not in SPECIALS), key=lambda t: (-counts[t], t))


def tokenizer_examples(split) -> list[str]:
    return split["source"]


def _available(source_ids: list[list[int]], task: dict) -> list[int]:
    """Output positions the decoder gives each source (``decoder.output_length``)."""
    lengths = torch.as_tensor([len(ids) for ids in source_ids], dtype=torch.long)
    return output_lengths(task["decoder"], lengths).tolist()


def _length_rule(task: dict) -> str:
    decoder = task["decoder"]
    if is_autoregressive(decoder) or decoder.get("output_length", "fixed") == "source":
        return (
            f"min({decoder['length_ratio']} x source symbols + {decoder['length_extra']}, "
            f"decoder.max_length={decoder['max_length']}) positions"
            + ("" if is_autoregressive(decoder) else " (decoder.output_length=source)")
        )
    return f"decoder.max_length={decoder['max_length']} positions"


def _too_long_targets(source_ids: list[list[int]], target_tokens: list[list[str]], task: dict) -> list[int]:
    """Pairs whose target needs more output positions than the decoder gives their source."""
    available = _available(source_ids, task)
    loss = loss_name(task)
    return [i for i, tokens in enumerate(target_tokens) if positions_needed(tokens, loss) > available[i]]


def report_unseen(split, labels: list[str], where: str, task: dict, tokenizer=None) -> dict[str, int]:
    """Counts of target tokens the model cannot produce (never in training), warned about once;
    and of targets longer than the decoder's output (given the ``tokenizer``), which can never be
    matched."""
    target_tokens = [split_target(target, task) for target in split["target"]]
    unseen = count_unseen(
        (t for tokens in target_tokens for t in tokens),
        labels[len(SPECIALS) :],
        where,
        "target token(s)",
        "outputs can't contain them",
        log,
    )
    if tokenizer is not None:
        too_long = _too_long_targets(tok.encode_texts(tokenizer, split["source"]), target_tokens, task)
        if too_long:
            log.warning(
                "%s: %d target(s) need more than %s; they count as errors", where, len(too_long), _length_rule(task)
            )
    return unseen


def _too_long_sources(ids: list[list[int]], task: dict) -> list[int]:
    """Sources longer than ``decoder.source_length`` (none with deconv's vector bottleneck)."""
    decoder = task["decoder"]
    if decoder.get("bottleneck") == "vector":
        return []
    return [i for i, row in enumerate(ids) if len(row) > decoder["source_length"]]


def _member_configs(model: nn.Module, task: dict) -> list[dict]:
    """The task config of each model of an ensemble (convnlp.ensemble), or just ``task``."""
    return getattr(model, "task_configs", None) or [task]


def _source_limit(configs: list[dict]) -> int:
    """The longest source every model can read (``decoder.source_length``)."""
    return min(c["decoder"]["source_length"] for c in configs if c["decoder"].get("bottleneck") != "vector")


def encode(split, tokenizer, labels: list[str], where: str, task: dict) -> dict[str, list]:
    """Source ids and target ids followed by the end symbol. Pairs the decoder cannot hold (a
    target needing more positions than the decoder gives its source, a source longer than
    ``decoder.source_length`` with the sequence bottleneck) are an error, or with
    ``decoder.too_long=filter`` left out with their count logged."""
    index = {label: i for i, label in enumerate(labels)}
    report_unseen(split, labels, where, task)
    decoder = task["decoder"]
    sources, targets = split["source"], split["target"]
    ids = tok.encode_texts(tokenizer, sources)
    target_tokens = [split_target(t, task) for t in targets]
    long_targets = _too_long_targets(ids, target_tokens, task)
    long_sources = _too_long_sources(ids, task)
    problems = []
    if long_targets:
        i = long_targets[0]
        longest = max(positions_needed(target_tokens[j], loss_name(task)) for j in long_targets)
        problems.append(
            f"{len(long_targets)} target(s) need more than {_length_rule(task)} "
            f"(up to {longest}; first: {sources[i]!r} -> {targets[i]!r})"
        )
    if long_sources:
        i = long_sources[0]
        problems.append(
            f"{len(long_sources)} source(s) are longer than decoder.source_length="
            f"{decoder['source_length']} symbols (up to {max(len(ids[j]) for j in long_sources)}; "
            f"first: {sources[i]!r})"
        )
    keep = range(len(ids))
    if problems:
        if decoder["too_long"] != "filter":
            raise UserError(
                f"{where}: {'; '.join(problems)}. Raise the limit, or set decoder.too_long=filter "
                "to leave these pairs out"
            )
        dropped = set(long_targets) | set(long_sources)
        log.warning("%s: left out %d pair(s) (decoder.too_long=filter): %s", where, len(dropped), "; ".join(problems))
        keep = [i for i in range(len(ids)) if i not in dropped]
        if not keep:
            raise UserError(f"{where}: no pairs left after leaving out those too long for the decoder")
    return {"ids": [ids[i] for i in keep], "target": [[index[t] for t in target_tokens[i]] + [END] for i in keep]}


def make_batch(encoded: dict[str, list], indices: list[int]) -> dict[str, torch.Tensor]:
    targets = [encoded["target"][i] for i in indices] if "target" in encoded else None
    return sequence_batch([encoded["ids"][i] for i in indices], targets)


def describe(encoded: dict[str, list]) -> str:
    return f"{len(encoded['ids'])} pairs, {sum(len(t) - 1 for t in encoded['target'])} target tokens"


def loss(logits: torch.Tensor, batch: dict, task: dict) -> tuple[torch.Tensor, int]:
    """Mean loss over the batch's pairs, and how many there are. ``logits``: (B, L, V); an
    autoregressive decoder's (B, S, V): one position per target symbol, the end symbol included."""
    target = batch["target"]
    count = target.shape[0]
    if is_autoregressive(task["decoder"]):  # cross-entropy per target symbol, padding left out
        beyond = (
            torch.arange(target.shape[1], device=target.device) >= batch["target_lengths"].to(target.device)[:, None]
        )
        value = F.cross_entropy(
            logits.float().transpose(1, 2),
            target.masked_fill(beyond, -100),
            ignore_index=-100,
            label_smoothing=task["decoder"]["label_smoothing"],
        )
        return value, count
    lengths = output_lengths(task["decoder"], batch["mask"].sum(dim=1))  # (B,) positions
    if loss_name(task) == "ctc":
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (L, B, V)
        value = F.ctc_loss(
            log_probs, target, lengths, batch["target_lengths"], blank=BLANK, reduction="mean", zero_infinity=True
        )
        return value, count
    assert target.shape[1] <= logits.shape[1], "encode() leaves out targets longer than the output"
    target = F.pad(target, (0, logits.shape[1] - target.shape[1]), value=PAD)  # (B, L)
    beyond = torch.arange(logits.shape[1], device=target.device) >= lengths[:, None]
    target = target.masked_fill(beyond, -100)  # past a source's own output: not predicted
    return F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-100), count


# ------------------------------------------------------------------------------ decoding


def decode_ids(row: list[int], loss_name: str) -> list[int]:
    """Target ids of one output row (argmax per position): CTC merges repeats and drops
    blanks; then the output ends at the first end symbol and special symbols are left out."""
    if loss_name == "ctc":
        row = [a for i, a in enumerate(row) if i == 0 or a != row[i - 1]]
    out = []
    for a in row:
        if a == END:
            break
        if a >= len(SPECIALS):
            out.append(a)
    return out


def _autoregressive(configs: list[dict]) -> bool:
    """Whether the models (an ensemble's members) decode autoregressively; a mix is an error."""
    kinds = {is_autoregressive(c["decoder"]) for c in configs}
    if len(kinds) > 1:
        names = ", ".join(sorted({c["decoder"]["name"] for c in configs}))
        raise UserError(
            f"an ensemble of decoders {names}: the autoregressive decoders (convs2s, lstm) and deconv "
            "decode differently; ensemble checkpoints of one kind"
        )
    return kinds.pop()


def _search(models: list[nn.Module], batch: dict, configs: list[dict], task: dict, nbest: int) -> list:
    """Autoregressive decoding of a batch: each row's output ids (greedy search with ``task.beam=1``,
    else the best of beam search), or with ``nbest`` its ``nbest`` best hypotheses."""
    source_lengths = batch["mask"].sum(dim=1)
    limits = torch.stack([output_lengths(c["decoder"], source_lengths) for c in configs]).amin(dim=0)
    members = search.Members(models, batch)
    beam = max(task.get("beam", 1), nbest)
    if beam == 1 and not nbest:
        return search.greedy(members, limits)
    hypotheses = search.beam_search(members, limits, beam, task.get("length_penalty", 1.0))
    return [h[:nbest] for h in hypotheses] if nbest else [h[0].tokens for h in hypotheses]


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer,
    labels: list[str],
    sources: list[str],
    device: torch.device,
    task: dict,
    batch_tokens: int = 8000,
    nbest: int = 0,
) -> list:
    """The output tokens of every source; ``None`` for a source the decoder cannot read (longer
    than ``decoder.source_length``). With ``nbest`` (autoregressive decoders): each source's
    ``nbest`` best outputs, ``(tokens, score)`` pairs best first (beam search, at least that wide)."""
    model.eval()
    members = getattr(model, "members", None)  # an ensemble (convnlp.ensemble)
    configs = _member_configs(model, task)
    autoregressive = _autoregressive(configs)
    if nbest and not autoregressive:
        raise UserError("nbest: n-best outputs come from beam search, which decoder=deconv (one pass) does not do")
    ids = tok.encode_texts(tokenizer, sources)
    unreadable = set().union(*(_too_long_sources(ids, c) for c in configs))
    readable = [i for i in range(len(ids)) if i not in unreadable]
    out: list = [None] * len(sources)
    for chunk in token_batches([len(ids[i]) for i in readable], batch_tokens, shuffle=False):
        indices = [readable[j] for j in chunk]
        batch = {k: v.to(device) for k, v in make_batch({"ids": ids}, indices).items()}
        if autoregressive:
            rows = _search(list(members) if members is not None else [model], batch, configs, task, nbest)
        elif members is None:
            best = model(batch).argmax(-1).cpu().tolist()  # (B, L)
            lengths = output_lengths(task["decoder"], batch["mask"].sum(dim=1)).tolist()
            rows = [decode_ids(row[:length], loss_name(task)) for row, length in zip(best, lengths)]
        else:
            rows = rescore_proposals(
                [m(batch).float().log_softmax(-1) for m in members], configs, batch["mask"].sum(dim=1)
            )
        for row, i in zip(rows, indices):
            if nbest:
                out[i] = [([labels[a] for a in h.tokens], h.score) for h in row]
            else:
                out[i] = [labels[a] for a in row]
    return out


def distill(
    split,
    teacher: nn.Module,
    tokenizer,
    labels: list[str],
    teacher_task: dict,
    task: dict,
    device: torch.device,
    batch_tokens: int,
) -> tuple[dict[str, list], dict[str, int]]:
    """Sequence-level knowledge distillation (Kim and Rush, 2016): the training data with each
    distinct source once, its target the ``teacher``'s output (one model or an ensemble, with its
    own ``tokenizer``, ``labels`` and ``teacher_task``) in place of its references. A source the
    teacher gives no output for (unreadable, or an empty output) keeps its references.

    Returns the new columns and counts: ``sources`` (distinct), ``changed`` (the output equals none
    of the references), ``kept`` (references kept)."""
    references: dict[str, list[str]] = {}
    for source, target in zip(split["source"], split["target"]):
        references.setdefault(source, []).append(target)
    distinct = list(references)
    outputs = generate(teacher, tokenizer, labels, distinct, device, teacher_task, batch_tokens)
    sources, targets = [], []
    changed = kept = 0
    for source, output in zip(distinct, outputs):
        if not output:
            kept += 1
            sources += [source] * len(references[source])
            targets += references[source]
            continue
        target = join_tokens(output, teacher_task)
        tokens = split_target(target, task)
        changed += all(tokens != split_target(r, task) for r in references[source])
        sources.append(source)
        targets.append(target)
    return {"source": sources, "target": targets}, {"sources": len(distinct), "changed": changed, "kept": kept}


def sequence_log_likelihood(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]], loss_name: str
) -> torch.Tensor:
    """log p(target) of each row under one model: ``log_probs`` (B, L, V), ``lengths`` (B,) output
    positions, ``targets`` target ids without the end symbol. CTC sums over alignments; ``ce``
    scores the target, the end symbol and padding up to the row's length."""
    rows = [t + [END] for t in targets]
    device = log_probs.device
    if loss_name == "ctc":
        padded = pad(rows, PAD).to(device)
        target_lengths = torch.as_tensor([len(r) for r in rows], dtype=torch.long, device=device)
        return -F.ctc_loss(
            log_probs.transpose(0, 1), padded, lengths, target_lengths, blank=BLANK, reduction="none"
        )  # an impossible target: inf loss, -inf here
    width = log_probs.shape[1]
    fits = torch.as_tensor([len(r) for r in rows], device=device) <= lengths.to(device)
    full = F.pad(pad([r[:width] for r in rows], PAD), (0, width), value=PAD)[:, :width].to(device)  # (B, L)
    picked = log_probs.gather(2, full[..., None]).squeeze(-1)
    beyond = torch.arange(width, device=device) >= lengths.to(device)[:, None]
    # a target needing more positions than the model gives the row is impossible
    return picked.masked_fill(beyond, 0.0).sum(dim=1).masked_fill(~fits, -math.inf)


# ------------------------------------------------------------------------------ metrics


def _closest(hypothesis, references) -> tuple[int, int]:
    """(edit distance, reference length) of the reference closest to the hypothesis (the
    first one on a tie)."""
    return min(((Levenshtein.distance(hypothesis, r), len(r)) for r in references), key=lambda x: x[0])


def metrics(predictions: list[list[str] | None], references: list[list[list[str]]], task: dict) -> dict:
    """Sequence, token and character error rates against the closest of each example's
    references (a missing output counts as empty and wrong); BLEU and chrF on the texts."""
    import sacrebleu

    n = len(references)
    wrong = token_errors = token_total = char_errors = char_total = 0
    for prediction, refs in zip(predictions, references):
        hypothesis = prediction or []
        wrong += prediction is None or hypothesis not in refs
        d, length = _closest(hypothesis, refs)
        token_errors, token_total = token_errors + d, token_total + length
        d, length = _closest(join_tokens(hypothesis, task), [join_tokens(r, task) for r in refs])
        char_errors, char_total = char_errors + d, char_total + length
    hypotheses = [join_tokens(p or [], task) for p in predictions]
    streams = [
        [join_tokens(refs[k], task) if k < len(refs) else None for refs in references]
        for k in range(max((len(r) for r in references), default=0))
    ]
    # character targets (one word per output, as inflection or transliteration gives): BLEU over
    # characters, else it is 0 for any output short of the whole reference
    tokenize = "char" if task.get("target_tokens") == "char" else "13a"
    bleu = sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize).score if n else 0.0
    chrf = sacrebleu.corpus_chrf(hypotheses, streams).score if n else 0.0
    return {
        "accuracy": 1 - wrong / max(n, 1),
        "wer": wrong / max(n, 1),
        "per": token_errors / max(token_total, 1),
        "cer": char_errors / max(char_total, 1),
        "bleu": bleu,
        "chrf": chrf,
        "examples": n,
        "no_output": sum(p is None for p in predictions),
    }


def group_references(split, task: dict) -> tuple[list[str], list[list[list[str]]]]:
    """Unique sources in first-seen order, each with the list of its reference token lists."""
    references: dict[str, list[list[str]]] = {}
    for source, target in zip(split["source"], split["target"]):
        tokens = split_target(target, task)
        refs = references.setdefault(source, [])
        if tokens not in refs:
            refs.append(tokens)
    return list(references), list(references.values())


def evaluate(model, tokenizer, labels, split, task: dict, device, batch_tokens: int) -> dict:
    """Metrics of ``split`` (columns source, target), speed in sources/s, and (autoregressive
    decoders) the beam width they were decoded with."""
    sources, references = group_references(split, task)
    start = time.perf_counter()
    predictions = generate(model, tokenizer, labels, sources, device, task, batch_tokens)
    seconds = time.perf_counter() - start
    unreadable = sum(p is None for p in predictions)
    if unreadable:
        log.warning(
            "%d source(s) longer than decoder.source_length=%d symbols get no output; they count as errors",
            unreadable,
            _source_limit(_member_configs(model, task)),
        )
    result = metrics(predictions, references, task)
    result["sources_per_s"] = len(sources) / max(seconds, 1e-9)
    if is_autoregressive(task["decoder"]):
        result["beam"] = task.get("beam", 1)  # the search the figures come from
    return result


log_metrics = log_scalars  # numbers only


# ----------------------------------------------------------------------------- prediction


def read_input(line: str) -> str:
    """One source per input line."""
    return line.strip()


def predict_records(
    model, tokenizer, labels, inputs: list[str], device, task: dict, batch_tokens: int = 8000
) -> list[dict]:
    """The generated sequence of each source, as text and as tokens (with ``task["nbest"]`` set,
    by ``predict nbest=N``: also ``nbest``, the N best outputs with their scores, best first); an
    empty source or one the decoder cannot read gets ``output: null`` and an ``error``."""
    nbest = task.get("nbest") or 0
    sources = [s for s in inputs if s]
    outputs = iter(generate(model, tokenizer, labels, sources, device, task, batch_tokens, nbest) if sources else [])
    records = []
    for source in inputs:
        if not source:
            records.append({"source": source, "output": None, "tokens": None, "error": "empty text"})
            continue
        output = next(outputs)
        if output is None:
            length = len(tok.encode_texts(tokenizer, [source])[0])
            records.append(
                {
                    "source": source,
                    "output": None,
                    "tokens": None,
                    "error": f"source of {length} symbols is longer than decoder.source_length="
                    f"{_source_limit(_member_configs(model, task))}",
                }
            )
            continue
        tokens = output[0][0] if nbest else output
        record = {"source": source, "output": join_tokens(tokens, task), "tokens": tokens}
        if nbest:
            record["nbest"] = [
                {"output": join_tokens(t, task), "tokens": t, "score": round(score, 4)} for t, score in output
            ]
        records.append(record)
    return records


def rescore_proposals(
    log_probs: list[torch.Tensor], configs: list[dict], source_lengths: torch.Tensor
) -> list[list[int]]:
    """An ensemble's output: every member's greedy output is a proposal; each row takes the
    proposal with the highest log-likelihood summed over the members (the first member's on a
    tie; CTC: the probability of the sequence summed over alignments; ``ce``: the sum over
    positions; averaging position by position would mix CTC models whose outputs are aligned
    differently, rescoring whole sequences does not). A proposal some member cannot produce at
    all (longer than that member's output) scores -inf; if every proposal does, the first
    member's is kept. ``log_probs``: each member's (B, L, V); ``configs``: their task configs."""
    lengths = [output_lengths(c["decoder"], source_lengths) for c in configs]
    proposals = []  # [member][row]
    for lp, n, c in zip(log_probs, lengths, configs):
        best = lp.argmax(-1).tolist()
        proposals.append([decode_ids(row[:k], loss_name(c)) for row, k in zip(best, n.tolist())])
    scores = torch.stack(
        [
            sum(
                sequence_log_likelihood(lp, n, candidates, loss_name(c))
                for lp, n, c in zip(log_probs, lengths, configs)
            )
            for candidates in proposals
        ],
        dim=1,
    )  # (B, members)
    choice = scores.argmax(dim=1).tolist()
    return [proposals[k][b] for b, k in enumerate(choice)]


TASKS.add(GenerationConfig, sys.modules[__name__], select=SELECT)
