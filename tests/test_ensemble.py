"""Ensembles of checkpoints: averaged probabilities for labels, rescored proposals for generation."""

import math

import pytest
import torch
from torch.nn import functional as F

from convnlp import checkpoint, ensemble
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.tasks import classification as cls
from convnlp.tasks import generation as gen
from tests import test_classification as tc
from tests import test_generation as tg


def save_classifier(path, seed, encoder="dilated", labels=("neg", "pos")):
    tokenizer = tok.build("word", tc.TEXTS)
    torch.manual_seed(seed)
    model = build_model(tc.TASK, tc.ENCODERS[encoder], tokenizer.get_vocab_size(), len(labels))
    checkpoint.save(path, model, {"task": tc.TASK, "encoder": tc.ENCODERS[encoder]}, tokenizer, list(labels), {})
    return str(path)


def test_a_classifier_ensemble_gives_the_mean_of_its_members_probabilities(tmp_path):
    paths = [save_classifier(tmp_path / "a", 0), save_classifier(tmp_path / "b", 1, encoder="bilstm")]
    loaded = ensemble.load(paths)
    model, config, tokenizer, labels = loaded.model, loaded.config, loaded.tokenizer, loaded.labels
    assert isinstance(model, ensemble.Ensemble) and config["encoder"]["name"] == "dilated"
    members = [checkpoint.load(p).model for p in paths]
    records = cls.predict_records(model, tokenizer, labels, ["a good film", "bad"], torch.device("cpu"), tc.TASK)
    for text, record in zip(["a good film", "bad"], records):
        single = [cls.predict_records(m, tokenizer, labels, [text], torch.device("cpu"), tc.TASK)[0] for m in members]
        for label in labels:
            mean = sum(s["probabilities"][label] for s in single) / 2
            assert record["probabilities"][label] == pytest.approx(mean, abs=1e-5)
    assert not isinstance(ensemble.load([paths[0]]).model, ensemble.Ensemble)  # a list of one: that checkpoint


def test_an_ensemble_needs_one_task_tokenizer_and_label_set(tmp_path):
    a = save_classifier(tmp_path / "a", 0)
    other = save_classifier(tmp_path / "labels", 1, labels=("neg", "neutral"))
    with pytest.raises(
        UserError, match=r"labels: its labels differ from those of .*a; an ensemble's checkpoints must share"
    ):
        ensemble.load([a, other])
    tokenizer = tok.build("char", tc.TEXTS)
    model = build_model(tc.TASK, tc.ENCODERS["dilated"], tokenizer.get_vocab_size(), 2)
    checkpoint.save(
        tmp_path / "chars", model, {"task": tc.TASK, "encoder": tc.ENCODERS["dilated"]}, tokenizer, ["neg", "pos"], {}
    )
    with pytest.raises(UserError, match="its tokenizer differs from that of"):
        ensemble.load([a, tmp_path / "chars"])
    with pytest.raises(UserError, match="give a checkpoint directory, or a list"):
        ensemble.load([])
    task = {**tc.TASK, "features": ["suffix3"], "feature_rows": 16}
    tokenizer = tok.build("word", tc.TEXTS)
    model = build_model(task, tc.ENCODERS["dilated"], tokenizer.get_vocab_size(), 2)
    checkpoint.save(
        tmp_path / "features", model, {"task": task, "encoder": tc.ENCODERS["dilated"]}, tokenizer, ["neg", "pos"], {}
    )
    with pytest.raises(UserError, match=r"its word features \(task.features=\['suffix3'\], feature_rows=16\) differ"):
        ensemble.load([a, tmp_path / "features"])


def test_sequence_log_likelihood_of_ctc_and_ce_outputs():
    torch.manual_seed(0)
    log_probs = torch.randn(2, 5, 6).log_softmax(-1)  # 2 rows, 5 positions, 3 specials + 3 tokens
    lengths = torch.tensor([5, 3])
    targets = [[3, 3], [4]]
    ctc = gen.sequence_log_likelihood(log_probs, lengths, targets, "ctc")
    for b, target in enumerate(targets):
        expected = -F.ctc_loss(
            log_probs[b : b + 1].transpose(0, 1),
            torch.tensor([target + [gen.END]]),
            lengths[b : b + 1],
            torch.tensor([len(target) + 1]),
            blank=gen.BLANK,
            reduction="sum",
        )
        assert ctc[b].item() == pytest.approx(expected.item(), abs=1e-5)
    ce = gen.sequence_log_likelihood(log_probs, lengths, targets, "ce")
    row0 = [3, 3, gen.END, gen.PAD, gen.PAD]  # target, end, then padding to the length
    assert ce[0].item() == pytest.approx(sum(log_probs[0, i, a].item() for i, a in enumerate(row0)), abs=1e-5)
    row1 = [4, gen.END, gen.PAD]
    assert ce[1].item() == pytest.approx(sum(log_probs[1, i, a].item() for i, a in enumerate(row1)), abs=1e-5)
    # a target that needs more positions than there are is impossible
    assert gen.sequence_log_likelihood(log_probs, lengths, [[3], [3, 4, 5]], "ce")[1].item() == -math.inf
    assert gen.sequence_log_likelihood(log_probs, lengths, [[3], [3, 3, 4]], "ctc")[1].item() == -math.inf


def one_hot(rows, vocabulary=6, confidence=0.9):
    """Log-probabilities that put ``confidence`` on each position's symbol."""
    probs = torch.full((len(rows), len(rows[0]), vocabulary), (1 - confidence) / (vocabulary - 1))
    for b, row in enumerate(rows):
        for i, a in enumerate(row):
            probs[b, i, a] = confidence
    return probs.log()


def test_ensemble_decoding_takes_the_proposal_the_members_like_best_together():
    config = tg.task_with("ce", output_length="fixed", max_length=4)
    # member 1 sure of [3]; member 2 unsure, slightly preferring [4]; member 3 agrees with member 1
    first = one_hot([[3, gen.END, gen.PAD, gen.PAD]], confidence=0.9)
    second = one_hot([[4, gen.END, gen.PAD, gen.PAD]], confidence=0.3)
    third = one_hot([[3, gen.END, gen.PAD, gen.PAD]], confidence=0.6)
    lengths = torch.tensor([4])
    assert gen.rescore_proposals([second], [config], lengths) == [[4]]
    assert gen.rescore_proposals([second, first], [config, config], lengths) == [[3]]
    assert gen.rescore_proposals([second, third, first], [config] * 3, lengths) == [[3]]


def test_an_ensemble_of_copies_generates_what_the_model_does(tmp_path):
    task = tg.task_with("ctc", output_length="source", length_ratio=2, length_extra=2)
    split = tg.split_of(tg.PAIRS)
    labels = gen.label_vocabulary(split, task)
    tokenizer = tok.build("char", split["source"])
    torch.manual_seed(0)
    model = build_model(task, tg.ENCODER, tokenizer.get_vocab_size(), len(labels))
    saved = {
        "task": {k: v for k, v in task.items() if k != "decoder"},
        "encoder": tg.ENCODER,
        "decoder": task["decoder"],
    }
    checkpoint.save(tmp_path / "m", model, saved, tokenizer, labels, {})
    both = ensemble.load([tmp_path / "m", tmp_path / "m"]).model
    sources = [s for s, _ in tg.PAIRS] + ["x" * 13]
    alone = gen.generate(model, tokenizer, labels, sources, torch.device("cpu"), task)
    assert gen.generate(both, tokenizer, labels, sources, torch.device("cpu"), task) == alone
    assert alone[-1] is None  # longer than decoder.source_length for both


def test_a_tagger_ensemble_of_copies_tags_like_the_model(tmp_path):
    from convnlp.tasks import tagging
    from tests import test_tagging as tt

    sentences = [["The", "cat", "sat", "."], ["A", "dog", "barked", "loudly", "!"]]
    tokenizer = tok.build("char", sentences)
    model = tt.model_for(tokenizer)
    labels = ["A", "B", "C", "D", "E"]
    checkpoint.save(tmp_path / "t", model, {"task": tt.TASK, "encoder": tt.ENCODER}, tokenizer, labels, {})
    both = ensemble.load([tmp_path / "t", tmp_path / "t"]).model
    alone = tagging.predict_records(model, tokenizer, labels, sentences, torch.device("cpu"), tt.TASK)
    assert tagging.predict_records(both, tokenizer, labels, sentences, torch.device("cpu"), tt.TASK) == alone


def test_ensemble_decoding_of_ctc_and_ce_members_with_different_output_lengths():
    ctc = tg.task_with("ctc", output_length="fixed", max_length=6)
    ce = tg.task_with("ce", output_length="fixed", max_length=4)
    B, E, P = gen.BLANK, gen.END, gen.PAD
    ctc_log_probs = torch.cat(
        [
            one_hot([[3, E, B, B, B, B]], confidence=0.4),  # row 0: unsure of [3]
            one_hot([[5, E, B, B, B, B]], confidence=0.9),  # row 1: sure of [5]
            one_hot([[3, 4, 5, 3, E, B]], confidence=0.9),  # row 2: sure of 4 tokens, more than the ce member can hold
        ]
    )
    ce_log_probs = torch.cat(
        [
            one_hot([[4, E, P, P]], confidence=0.9),  # row 0: sure of [4]
            one_hot([[3, E, P, P]], confidence=0.4),  # row 1: unsure of [3]
            one_hot([[3, E, P, P]], confidence=0.3),  # row 2: unsure of [3]
        ]
    )
    sources = torch.tensor([3, 3, 3])
    assert gen.rescore_proposals([ctc_log_probs], [ctc], sources) == [[3], [5], [3, 4, 5, 3]]
    assert gen.rescore_proposals([ctc_log_probs, ce_log_probs], [ctc, ce], sources) == [[4], [5], [3]]
