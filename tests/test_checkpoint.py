"""Checkpoints: round trip, atomic writes, loading runs nothing, clear errors."""

import json

import pytest
import torch

from convnlp import checkpoint
from convnlp.data import tokenizer as tok
from convnlp.data.batching import collate
from convnlp.errors import UserError
from convnlp.model import build_model
from tests.test_tagging import ENCODER, TASK

SENTENCES = [["The", "cat", "sat", "."], ["A", "dog", "barked", "loudly", "!"]]


def make_checkpoint(path):
    tokenizer = tok.build("char", SENTENCES)
    torch.manual_seed(0)
    model = build_model(TASK, ENCODER, tokenizer.get_vocab_size(), 3).eval()
    config = {"task": TASK, "encoder": ENCODER}
    checkpoint.save(path, model, config, tokenizer, ["A", "B", "C"], {"accuracy": 0.5})
    return model, tokenizer


def test_round_trip_gives_identical_outputs(tmp_path):
    model, tokenizer = make_checkpoint(tmp_path / "best")
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == [
        "config.json", "labels.json", "metrics.json", "model.safetensors", "tokenizer.json"]
    loaded, config, tokenizer2, labels = checkpoint.load(tmp_path / "best")
    batch = collate(*tok.encode(tokenizer2, SENTENCES))
    assert torch.equal(loaded.eval()(batch), model(batch))
    assert labels == ["A", "B", "C"] and config["encoder"] == ENCODER


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "last")
    before = (tmp_path / "last" / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were killed mid-write

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        make_checkpoint(tmp_path / "last")
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last"]  # no half-written directory left


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "model.safetensors").unlink(), "checkpoint is missing model.safetensors"),
    (lambda d: (d / "labels.json").write_text("{oops"), "labels.json: not valid JSON"),
    (lambda d: (d / "labels.json").write_text('["A"]'), "model.safetensors: does not match the checkpoint's config"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\0" * 100), "model.safetensors: does not match"),
    (lambda d: (d / "config.json").write_text('{"task": {}}'), "config.json: not a usable model config"),
    (lambda d: (d / "tokenizer.json").write_text("{}"), "tokenizer.json: not a valid tokenizer file"),
])
def test_damaged_checkpoint_fails_in_one_line(tmp_path, damage, message):
    make_checkpoint(tmp_path / "ck")
    damage(tmp_path / "ck")
    with pytest.raises(UserError, match=message) as error:
        checkpoint.load(tmp_path / "ck")
    assert "\n" not in str(error.value)


def test_loading_never_instantiates_targets_from_the_config(tmp_path):
    make_checkpoint(tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["encoder"] = {"_target_": "os.system", "name": "os.system", "command": "touch pwned"}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="encoder.name='os.system' is not known"):
        checkpoint.load(tmp_path / "ck")
    assert not (tmp_path / "pwned").exists()


def test_a_save_killed_between_renames_falls_back_to_the_previous_version(tmp_path):
    make_checkpoint(tmp_path / "last")
    (tmp_path / "last").rename(tmp_path / ".last.old")  # the moment between the two renames
    model, *_ = checkpoint.load(tmp_path / "last")
    assert model is not None


def test_damaged_training_state_is_one_line(tmp_path):
    make_checkpoint(tmp_path / "last")
    (tmp_path / "last" / "training_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="training_state.pt: cannot read the training state"):
        checkpoint.load_training_state(tmp_path / "last")
