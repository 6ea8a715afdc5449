"""Peers that `convnlp bench` times beside convnlp's own encoders, on the same sentences and
with the same thread limit. Optional: ``pip install -e ".[peers]"``; without a peer's library its
row is absent and bench says why in one line.

spaCy computes on the CPU with thinc's blis kernels, which run on one thread whatever the limit:
its figure at 2 threads is 1-thread work (spaCy spreads over cores with processes,
``nlp.pipe(n_process=...)``, which on 2,000 UD sentences was slower still: about 7k words/s).

spaCy's CPU tagger: the pipeline ``spacy init config --pipeline tagger --optimize efficiency``
writes (hashed NORM/PREFIX/SUFFIX/SHAPE embeddings, a 4-layer maxout window CNN of width 96, a
softmax tagger), initialized on the bench's training sentences. Untrained weights cost the same
time as trained ones; a trained pipeline directory (``bench.spacy_model``) is timed instead and
its tagging accuracy on the evaluation sentences reported too. Tokens are the data set's gold
tokens (``Doc(words=...)``, spaCy's tokenizer is not run), batched by ``nlp.pipe`` at the
pipeline's own batch size.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from convnlp.errors import UserError, first_line

KNOWN = ("spacy",)
# the components a tag needs; a trained pipeline's parser, NER, lemmatizer... are switched off
TAGGING_PIPES = ("tok2vec", "tagger", "morphologizer", "attribute_ruler")


def missing(name: str) -> str | None:
    """Why the peer ``name`` (one of ``KNOWN``) cannot run here, in one line; None when it can."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        return 'spaCy is not installed (pip install -e ".[peers]"), so its row is absent'
    return None


def thread_limit(threads: int):
    """Limit numpy's BLAS/OpenMP pools (what spaCy computes with) to ``threads``, where
    threadpoolctl is installed; torch's own pool is set by ``torch.set_num_threads``."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


class SpacyTagger:
    """spaCy's tagger as a bench subject: batched inference (``nlp.pipe``) and batch-1 latency."""

    name = "spacy"
    measures = ("infer", "latency")

    def __init__(
        self, train_tokens: list[list[str]], train_tags: list[list[str]], model: str | None = None, lang: str = "en"
    ):
        import spacy
        from spacy.tokens import Doc
        from spacy.training import Example

        self._doc = Doc
        if model:
            path = Path(model)
            if not (path / "config.cfg").is_file():
                raise UserError(f"bench.spacy_model={model}: not a spaCy pipeline directory (no config.cfg in it)")
            try:
                self.nlp = spacy.load(path)
            except Exception as error:  # a garbled config.cfg, an unknown language, missing weights...
                raise UserError(f"bench.spacy_model={model}: spaCy cannot load it: {first_line(error)}") from None
            if not {"tagger", "morphologizer"} & set(self.nlp.pipe_names):
                raise UserError(
                    f"bench.spacy_model={model}: the pipeline has no tagger or morphologizer "
                    f"(its components: {', '.join(self.nlp.pipe_names) or 'none'})"
                )
            self.nlp.select_pipes(enable=[p for p in self.nlp.pipe_names if p in TAGGING_PIPES])
            self.description = f"spaCy {spacy.__version__}, trained pipeline {model}"
        else:
            from spacy.cli.init_config import init_config

            try:
                config = init_config(lang=lang, pipeline=["tagger"], optimize="efficiency", gpu=False)
                self.nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
            except Exception as error:  # an unknown language, or one whose extra packages are missing
                raise UserError(
                    f"bench.spacy_lang={lang}: spaCy cannot make a pipeline for it: {first_line(error)}"
                ) from None
            examples = [
                Example.from_dict(Doc(self.nlp.vocab, words=list(words)), {"tags": [str(t) for t in tags]})
                for words, tags in zip(train_tokens, train_tags)
                if words
            ]
            if not examples:
                raise UserError("bench: spaCy's tagger needs training sentences to learn its tag set; there are none")
            quiet = logging.getLogger("spacy")  # its own handler repeats every line of initialize()
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                self.nlp.initialize(lambda: examples)
            finally:
                quiet.setLevel(level)
            self.description = (
                f"spaCy {spacy.__version__}, untrained efficiency tok2vec + tagger "
                f"(lang={lang}), initialized on {len(examples)} training sentences"
            )
        self.trained = bool(model)
        self.batch_size = self.nlp.batch_size
        self.parameters = sum(
            node.get_param(p).size
            for _, pipe in self.nlp.pipeline
            if hasattr(pipe, "model")
            for node in pipe.model.walk()
            for p in node.param_names
            if node.has_param(p)
        )
        self.flops_per_symbol = None  # not counted for a peer

    def docs(self, sentences: list[list[str]]) -> list:
        return [self._doc(self.nlp.vocab, words=list(words)) for words in sentences]

    def infer(self, sentences: list[list[str]]) -> list:
        return list(self.nlp.pipe(self.docs(sentences), batch_size=self.batch_size))

    def accuracy(self, tokens: list[list[str]], tags: list[list[str]]) -> float:
        """Share of tokens whose predicted tag is the gold one: ``pos_`` (UPOS) where the
        pipeline fills it (a morphologizer, an attribute ruler), else the tagger's ``tag_``."""
        right = total = 0
        for doc, gold in zip(self.infer(tokens), tags):
            for token, tag in zip(doc, gold):
                right += (token.pos_ or token.tag_) == str(tag)
                total += 1
        return right / max(total, 1)
