"""Autoencoder: text in, the same text out, through one fixed-size code per text (``convnlp.codes``).

The encoder reads the text's symbols (characters, words or BPE: the ``tokenizer`` group); the
head pools them into a code of ``task.code_dim`` numbers; the decoder writes the text back from
that code alone: ``decoder=deconv`` (the default: transposed convolutions, one parallel pass,
Zhang et al. 2017), or ``convs2s`` / ``lstm`` one symbol after the other (Bowman et al. 2016).

- ``task.variational=true``: a Gaussian code, its KL term to N(0, I) warmed up over
  ``task.kl_anneal_steps`` training batches and held at least at ``task.free_bits`` nats per
  dimension; ``task.word_dropout`` hides decoder inputs (autoregressive decoders) so the decoder
  has to use the code.
- ``task.noise`` (``convnlp.data.noise``): a denoising autoencoder; the training input is
  corrupted afresh every batch, the target is the clean text. Over characters, a spelling corrector.

The output symbols are the tokenizer's: the label list is ``<pad> </s> <blank>`` followed by the
vocabulary from ``<unk>`` on, so symbol id i is label i + 2. A word outside the vocabulary is
``<unk>`` in the input and in the reference (as autoencoder papers count it); the metrics give
the share of such reference symbols (``unknown``). Texts are rebuilt from symbols as the
tokenizer splits them: characters joined, words and punctuation joined by spaces, BPE decoded.

Metrics: ``token_accuracy`` (symbols equal to the reference's at the same position, over the
longer of output and reference: what ``trainer.select=auto`` selects by), ``accuracy`` (exact
match), ``per`` (symbol edit distance over the reference length), ``bleu`` (sacrebleu over the
rebuilt texts; over characters for a character tokenizer); variational: ``kl`` (nats per text)
and ``active_units`` (code dimensions whose mean varies across texts by more than 0.01).

Data column (``COLUMNS``): ``text`` (str). Any data set with text serves: ``data=text`` (one
text per line), a classification set's texts, a tagging set's sentences (words joined by
spaces), a generation set's distinct sources.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import dataclass

import torch
from rapidfuzz.distance import Levenshtein
from torch import nn
from torch.nn import functional as F

from convnlp import codes
from convnlp.data import noise as noise_
from convnlp.data import tokenizer as tok
from convnlp.data.batching import token_batches
from convnlp.decoders import is_autoregressive
from convnlp.errors import UserError
from convnlp.registry import TASKS, Check, at_least, option, zero_or_more
from convnlp.tasks.shared import dropout_option, embedding_dim_option, log_scalars, sequence_batch

log = logging.getLogger(__name__)

COLUMNS = ("text",)
OUTPUT_FIELDS = ("text", "output", "tokens")  # the fields of a `convnlp predict` record (null with an error)
SPECIALS = ("<pad>", "</s>", "<blank>")
END = 1  # the end symbol (label 0 is <pad>: the padding of targets)
OFFSET = len(SPECIALS) - 1  # symbol id i (<unk> is 1, <pad> 0 is never a target) is label i + OFFSET
SELECT = ("auto", "token_accuracy", "accuracy", "per", "bleu")  # trainer.select: auto is token_accuracy
NOISE = {kind: 0.0 for kind in noise_.KINDS}


@dataclass
class AutoencoderConfig:
    name: str = "autoencoder"
    embedding_dim: int = embedding_dim_option(128)
    embedding_dropout: float = dropout_option(0.0)
    token_dropout: float = dropout_option(0.0, "input symbols replaced by <unk> in training")
    code_dim: int = option(256, at_least(1), help="numbers in a text's code")
    pool: str = option(
        "max", choices=codes.POOLS, help="max: over positions; strided: convolutions down to one position"
    )
    variational: bool = option(False, help="a Gaussian code with a KL term (a VAE)")
    kl_weight: float = option(1.0, zero_or_more(), help="the KL term's weight once warmed up")
    kl_anneal_steps: int = option(2000, zero_or_more("no warm-up"), help="training batches the KL weight rises over")
    free_bits: float = option(0.0, zero_or_more(), help="nats per code dimension the KL term is held at least at")
    word_dropout: float = dropout_option(0.0, "convs2s / lstm: decoder inputs replaced by <unk> in training")
    noise: dict[str, float] = option(
        dict(NOISE),
        Check(noise_.check, f"must give probabilities below 1 for: {', '.join(noise_.KINDS)}"),
        help="denoising: per-symbol probabilities of drop, swap, substitute, insert in training",
    )


def build_head(cfg: AutoencoderConfig, input_dim: int, num_labels: int, decoder: dict | None = None) -> nn.Module:
    if not decoder:
        raise UserError("task=autoencoder needs a decoder: add decoder=deconv (or convs2s, lstm)")
    return codes.build(cfg, input_dim, num_labels, decoder)


# ------------------------------------------------------------------------------ symbols


def label_vocabulary(split, task: dict, tokenizer=None) -> list[str]:
    """The special symbols, then the tokenizer's vocabulary from <unk> on (in id order)."""
    if tokenizer is None:
        raise ValueError("task=autoencoder's labels are its tokenizer's symbols: give the tokenizer")
    return list(SPECIALS) + [tokenizer.id_to_token(i) for i in range(1, tokenizer.get_vocab_size())]


def tokenizer_examples(split) -> list[str]:
    return split["text"]


def join(labels: list[str], ids: list[int], tokenizer) -> str:
    """The text of output label ids, rebuilt as the tokenizer splits text."""
    kind = tok.kind_of(tokenizer)
    if kind == "bpe":
        return tokenizer.decode([a - OFFSET for a in ids], skip_special_tokens=False)
    return ("" if kind == "char" else " ").join(labels[a] for a in ids)


def _limit(task: dict) -> int:
    """Symbols a text may have: the decoder writes ``max_length`` positions, the end symbol one
    of them (and an autoregressive decoder reads at most ``source_length``)."""
    decoder = task["decoder"]
    limit = decoder["max_length"] - 1
    return min(limit, decoder["source_length"]) if is_autoregressive(decoder) else limit


def _too_long(texts: list[str], ids: list[list[int]], where: str, task: dict) -> list[int]:
    """The texts the decoder can hold: those too long are an error, or with
    ``decoder.too_long=filter`` left out, counted in the log."""
    limit = _limit(task)
    long = [i for i, row in enumerate(ids) if len(row) > limit]
    if not long:
        return list(range(len(ids)))
    problem = (
        f"{where}: {len(long)} text(s) have more than {limit} symbols, the most decoder.max_length="
        f"{task['decoder']['max_length']} holds with the end symbol (longest {max(len(ids[i]) for i in long)}; "
        f"first: {texts[long[0]][:60]!r})"
    )
    if task["decoder"]["too_long"] != "filter":
        raise UserError(f"{problem}. Raise decoder.max_length, or set decoder.too_long=filter to leave them out")
    log.warning("%s; left out (decoder.too_long=filter)", problem)
    keep = sorted(set(range(len(ids))) - set(long))
    if not keep:
        raise UserError(f"{where}: no texts left after leaving out those too long for the decoder")
    return keep


def report_unseen(split, labels: list[str], where: str, task: dict, tokenizer=None) -> dict[str, int]:
    """The count of reference symbols outside the vocabulary (<unk>), warned about once."""
    if tokenizer is None:
        return {}
    unknown = sum(row.count(tok.UNK_ID) for row in tok.encode_texts(tokenizer, list(split["text"])))
    if unknown:
        log.warning("%s: %d symbol(s) outside the vocabulary are <unk> in input and reference", where, unknown)
    return {tok.UNK: unknown} if unknown else {}


def encode(split, tokenizer, labels: list[str], where: str, task: dict) -> dict[str, list]:
    """Symbol ids, and the target labels followed by the end symbol; the training split also
    carries the noise settings (``make_batch`` corrupts its inputs)."""
    texts = list(split["text"])
    ids = tok.encode_texts(tokenizer, texts)
    empty = [i for i, row in enumerate(ids) if not row]
    if empty:
        raise UserError(f"{where}: text {empty[0] + 1} ({texts[empty[0]]!r}) has no symbols")
    keep = _too_long(texts, ids, where, task)
    ids = [ids[i] for i in keep]
    encoded = {"ids": ids, "target": [[a + OFFSET for a in row] + [END] for row in ids]}
    settings = noise_.active(task.get("noise"))
    if where == "train" and settings:
        encoded["noise"] = settings
        encoded["drawn"] = noise_.symbols(tokenizer)
        encoded["limit"] = [_limit(task)]  # inserted symbols never take an input past what the code reads
        log.info("denoising: the training input is corrupted every batch (%s)", settings)
    return encoded


def make_batch(encoded: dict[str, list], indices: list[int]) -> dict[str, torch.Tensor]:
    ids = [encoded["ids"][i] for i in indices]
    if "noise" in encoded:  # a fresh corruption each time a text is batched (seeded: python's random)
        limit = encoded["limit"][0]
        ids = [noise_.corrupt(row, encoded["noise"], encoded["drawn"], random)[:limit] for row in ids]
    return sequence_batch(ids, [encoded["target"][i] for i in indices] if "target" in encoded else None)


def describe(encoded: dict[str, list]) -> str:
    return f"{len(encoded['ids'])} texts"


def loss(logits: tuple[torch.Tensor, torch.Tensor], batch: dict, task: dict) -> tuple[torch.Tensor, int]:
    """Cross-entropy per target symbol, the end symbol included (deconv's positions after it
    are not scored: the output ends at the first end symbol), plus the KL term spread over the
    batch's target symbols; and the number of texts. (Scoring deconv's padding positions too, as
    Zhang et al. do, left the code unused: 64 positions for words of about 8 letters.)"""
    logits, penalty = logits  # the head's scores (B, L, V) and its KL term (convnlp.codes)
    target = batch["target"]
    count, symbols = target.shape[0], batch["target_lengths"].sum()
    beyond = torch.arange(target.shape[1], device=target.device) >= batch["target_lengths"][:, None]
    target = target.masked_fill(beyond, -100)  # after the end symbol: not predicted
    if not is_autoregressive(task["decoder"]):  # deconv scores at least the batch's longest target
        target = F.pad(target, (0, logits.shape[1] - target.shape[1]), value=-100)  # (B, L)
    reconstruction = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-100, reduction="sum")
    return (reconstruction + penalty * count) / symbols, count


# ------------------------------------------------------------------------------ codes and decoding


def _head(model: nn.Module) -> codes.CodeAutoencoder:
    head = getattr(model, "head", None)
    if not isinstance(head, codes.CodeAutoencoder):
        raise UserError("an ensemble of autoencoders has no one code; give one checkpoint")
    return head


def posteriors(model, tokenizer, texts: list[str], device, batch_tokens: int = 8000) -> tuple:
    """The code means (N, D) of non-empty ``texts`` and their log-variances (None for a plain code),
    on the CPU, in the order given (one line for a text that has none)."""
    head = _head(model)
    ids = tok.encode_texts(tokenizer, texts)
    empty = [i for i, row in enumerate(ids) if not row]
    if empty:
        raise UserError(f"text {empty[0] + 1} ({texts[empty[0]]!r}) has no symbols: nothing to encode")
    long = [i for i, row in enumerate(ids) if head.pool == "strided" and len(row) > head.window]
    if long:
        raise UserError(
            f"text {long[0] + 1} has {len(ids[long[0]])} symbols, more than the window of {head.window} "
            "that task.pool=strided reads (decoder.max_length)"
        )
    return posteriors_of(model, ids, device, batch_tokens)


@torch.no_grad()
def posteriors_of(model, ids: list[list[int]], device, batch_tokens: int = 8000) -> tuple:
    """``posteriors`` of texts' symbol ids (each non-empty, each within the head's reach)."""
    model.eval()
    head = _head(model)
    means, log_vars, order = [], [], []
    for chunk in token_batches([len(row) for row in ids], batch_tokens, shuffle=False):
        batch = {k: v.to(device) for k, v in make_batch({"ids": ids}, chunk).items()}
        mean, log_var = head.posterior(model.encode(batch), batch["mask"])
        means.append(mean.float().cpu())
        log_vars.append(None if log_var is None else log_var.float().cpu())
        order += chunk
    where = torch.as_tensor(order).argsort()
    mean = torch.cat(means)[where] if means else torch.zeros(0, head.code_dim)
    log_var = torch.cat(log_vars)[where] if means and head.variational else None
    return mean, log_var


@torch.no_grad()
def decode_codes(model, tokenizer, labels: list[str], z: torch.Tensor, device, rows: int = 256) -> list[dict]:
    """``{"output", "tokens"}`` of each code of ``z`` (N, D), decoded greedily."""
    model.eval()
    head = _head(model)  # an ensemble is refused here
    return [
        {"output": join(labels, ids, tokenizer), "tokens": [labels[a] for a in ids]}
        for ids in generate(head, z, device, rows)
    ]


def generate(head: codes.CodeAutoencoder, z: torch.Tensor, device, rows: int = 256) -> list[list[int]]:
    """The label ids decoded from codes ``z`` (N, D), ``rows`` at a time (deconv scores
    (rows, max_length, V) at once)."""
    return [ids for start in range(0, z.shape[0], rows) for ids in head.generate(z[start : start + rows].to(device))]


def interpolate(
    model, tokenizer, labels: list[str], a: str, b: str, device, steps: int = 8, kind: str = "line"
) -> list[dict]:
    """The texts decoded at ``steps`` + 1 evenly spaced codes from the code of ``a`` to that of
    ``b`` (along the line, or ``slerp``: the arc), each ``{"t", "output", "tokens"}``."""
    means, _ = posteriors(model, tokenizer, [a, b], device)
    along = codes.path(means[0], means[1], steps, kind)
    records = decode_codes(model, tokenizer, labels, along, device)
    return [{"t": round(i / steps, 4), **r} for i, r in enumerate(records)]


# ------------------------------------------------------------------------------ metrics


BLEU_TOKENS = {"char": "char", "word": "none", "bpe": "13a"}  # word texts are rebuilt split already


def metrics(predictions: list[list[int] | None], references: list[list[int]], texts: tuple, kind: str) -> dict:
    """Reconstruction metrics of output label ids against the references' (a missing output counts
    as empty and wrong); ``texts``: (outputs, references) rebuilt, for BLEU, tokenized as the
    tokenizer ``kind`` splits."""
    import sacrebleu

    n = len(references)
    exact = matched = positions = edits = total = 0
    for prediction, reference in zip(predictions, references):
        hypothesis = prediction or []
        exact += prediction is not None and hypothesis == reference
        matched += sum(x == y for x, y in zip(hypothesis, reference))
        positions += max(len(hypothesis), len(reference))
        edits += Levenshtein.distance(hypothesis, reference)
        total += len(reference)
    outputs, refs = texts
    bleu = sacrebleu.corpus_bleu(list(outputs), [list(refs)], tokenize=BLEU_TOKENS[kind]).score if n else 0.0
    return {
        "token_accuracy": matched / max(positions, 1),
        "accuracy": exact / max(n, 1),
        "per": edits / max(total, 1),
        "bleu": bleu,
        "examples": n,
        "no_output": sum(p is None for p in predictions),
    }


def evaluate(model, tokenizer, labels, split, task: dict, device, batch_tokens: int) -> dict:
    """Reconstruction metrics of ``split`` (column text), the share of <unk> reference symbols,
    speed in texts/s; variational: the KL (nats per text) and active units. Texts longer than the
    decoder holds get no output and count as errors."""
    texts = list(split["text"])  # an empty one has no symbols: no output, counted wrong
    ids = tok.encode_texts(tokenizer, texts)
    limit = _limit(task)
    readable = [i for i, row in enumerate(ids) if 0 < len(row) <= limit]
    if len(readable) < len(texts):
        log.warning(
            "%d text(s) empty or longer than %d symbols get no output; they count as errors",
            len(texts) - len(readable),
            limit,
        )
    start = time.perf_counter()
    mean, log_var = posteriors_of(model, [ids[i] for i in readable], device, batch_tokens)
    decoded = generate(_head(model), mean, device)
    seconds = time.perf_counter() - start
    predictions: list = [None] * len(texts)
    for i, row in zip(readable, decoded):
        predictions[i] = row
    references = [[a + OFFSET for a in row] for row in ids]
    rebuilt = (
        [join(labels, p or [], tokenizer) for p in predictions],
        [join(labels, r, tokenizer) for r in references],
    )
    result = metrics(predictions, references, rebuilt, tok.kind_of(tokenizer))
    result["unknown"] = sum(row.count(tok.UNK_ID) for row in ids) / max(sum(len(row) for row in ids), 1)
    if log_var is not None:
        result["kl"] = float(codes.kl_divergence(mean, log_var).sum(dim=1).mean()) if readable else 0.0
        result["active_units"] = codes.active_units(mean)
    result["texts_per_s"] = len(texts) / max(seconds, 1e-9)
    return result


log_metrics = log_scalars  # numbers only


# ----------------------------------------------------------------------------- prediction


def read_input(line: str) -> str:
    """One text per input line."""
    return line.strip()


def predict_records(
    model, tokenizer, labels, inputs: list[str], device, task: dict, batch_tokens: int = 8000
) -> list[dict]:
    """The reconstruction of each text (of a denoising model: the corrected text), as text and as
    symbols; an empty text or one longer than the decoder holds gets ``output: null`` and an ``error``."""
    limit = _limit(task)
    ids = tok.encode_texts(tokenizer, inputs)
    lengths = [len(row) for row in ids]
    readable = [i for i, n in enumerate(lengths) if 0 < n <= limit]
    mean, _ = posteriors_of(model, [ids[i] for i in readable], device, batch_tokens)
    decoded = iter(decode_codes(model, tokenizer, labels, mean, device) if readable else [])
    records = []
    for text, n in zip(inputs, lengths):
        if 0 < n <= limit:
            records.append({"text": text, **next(decoded)})
            continue
        error = "empty text" if not n else f"text of {n} symbols is longer than the {limit} the decoder holds"
        records.append({"text": text, "output": None, "tokens": None, "error": error})
    return records


TASKS.add(AutoencoderConfig, sys.modules[__name__], select=SELECT)
