"""convnlp average: the mean of several checkpoints' weights, refused for different models."""

import json

import pytest
import torch
from safetensors.torch import load_file

from convnlp import checkpoint
from convnlp.average import average_checkpoints
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.model import build_model
from tests.test_tagging import ENCODER, TASK

SENTENCES = [["The", "cat", "sat", "."], ["A", "dog", "barked", "loudly", "!"]]


def save(path, seed, encoder=ENCODER, labels=("A", "B", "C"), sentences=SENTENCES):
    tokenizer = tok.build("char", sentences)
    torch.manual_seed(seed)
    model = build_model(TASK, encoder, tokenizer.get_vocab_size(), len(labels))
    checkpoint.save(path, model, {"task": TASK, "encoder": encoder}, tokenizer, list(labels), {})
    return path


def test_the_average_is_the_mean_of_every_weight_and_loads_as_a_checkpoint(tmp_path):
    paths = [save(tmp_path / f"c{seed}", seed) for seed in (0, 1, 2)]
    average_checkpoints(paths, tmp_path / "avg")
    weights = [load_file(p / "model.safetensors") for p in paths]
    averaged = load_file(tmp_path / "avg" / "model.safetensors")
    assert set(averaged) == set(weights[0])
    for name, value in averaged.items():
        assert torch.allclose(value, sum(w[name] for w in weights) / 3, atol=1e-6), name
    averaged = checkpoint.load(tmp_path / "avg")
    assert averaged.labels == ["A", "B", "C"] and averaged.config["encoder"] == ENCODER
    assert json.loads((tmp_path / "avg" / "metrics.json").read_text())["averaged"] == [str(p) for p in paths]


def test_checkpoints_of_different_models_are_refused(tmp_path):
    save(tmp_path / "a", 0)
    save(tmp_path / "wider", 1, encoder={**ENCODER, "width": ENCODER["width"] * 2})
    with pytest.raises(
        UserError, match=r"wider: another model \(encoder.width: 12 in .*a, 24 here\); only checkpoints of one model"
    ):
        average_checkpoints([tmp_path / "a", tmp_path / "wider"], tmp_path / "out")
    save(tmp_path / "labels", 1, labels=("A", "B", "D"))
    with pytest.raises(UserError, match="its labels differ from those of"):
        average_checkpoints([tmp_path / "a", tmp_path / "labels"], tmp_path / "out")
    save(tmp_path / "vocabulary", 1, sentences=[["Zebras", "quickly", "jumped"]])
    with pytest.raises(UserError, match="its tokenizer differs from that of"):
        average_checkpoints([tmp_path / "a", tmp_path / "vocabulary"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_checkpoint_a_missing_one_or_a_used_output_is_an_error(tmp_path):
    save(tmp_path / "a", 0)
    save(tmp_path / "b", 1)
    with pytest.raises(UserError, match="two or more checkpoint directories"):
        average_checkpoints([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(UserError, match="nowhere: checkpoint directory not found"):
        average_checkpoints([tmp_path / "a", tmp_path / "nowhere"], tmp_path / "out")
    with pytest.raises(UserError, match="exists and is not an empty directory"):
        average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not an empty directory"):
        average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "file")
