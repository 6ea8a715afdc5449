"""Every shipped config composes, validates and builds a model; bad values fail in one line."""

from importlib import resources

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from convnlp.config import SCHEMAS, validate
from convnlp.data import DATA_TASKS
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.tasks import task_config

CONF = resources.files("convnlp") / "conf"


def options(group):
    return sorted(p.name[:-5] for p in (CONF / group).iterdir() if p.name.endswith(".yaml"))


def test_every_option_file_has_a_schema_and_a_command_comment():
    for group, schemas in SCHEMAS.items():
        assert options(group) == sorted(schemas), group
        for option in options(group):
            text = (CONF / group / f"{option}.yaml").read_text()
            node = OmegaConf.create(text)
            if text.startswith("# @package _global_\n"):  # a task that picks its default data
                text, node = text.split("\n", 1)[1], node[group]
            assert text.startswith("# convnlp ") or text.startswith("# CONVNLP_"), (group, option)
            assert node.name == option


COMBINATIONS = (  # every data set with each task; every encoder and tokenizer with each task
    [(task, "dilated", data, "char") for task in options("task") for data in options("data")]
    + [(task, encoder, None, tokenizer) for task in options("task") for encoder in options("encoder")
       for tokenizer in options("tokenizer")])


@pytest.mark.parametrize("task,encoder,data,tokenizer", COMBINATIONS)
def test_compose_validate_and_build(task, encoder, data, tokenizer):
    overrides = [f"task={task}", f"encoder={encoder}", f"tokenizer={tokenizer}"]
    if data is not None:
        overrides += [f"data={data}"] + (["data.path=somewhere"] if data == "hub" else [])
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    data = cfg.data.name
    if task not in DATA_TASKS[data]:
        with pytest.raises(UserError, match=f"data={data} is .* data; task={task} needs one of: "):
            validate(cfg)
        return
    cfg = validate(cfg)
    assert cfg.trainer.max_epochs == cfg.data.epochs
    config = OmegaConf.to_container(cfg, resolve=True)
    model = build_model(task_config(config), config["encoder"], vocab_size=30, num_labels=4)
    assert model.encoder.receptive_field > 1


def test_each_task_has_its_default_data():
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        assert compose(config_name="train").data.name == "cmudict_stress"
        assert compose(config_name="train", overrides=["task=classification"]).data.name == "cmudict_syllables"
        assert compose(config_name="train", overrides=["task=classification", "data=sst2"]).data.name == "sst2"
        assert compose(config_name="train", overrides=["data=sst2", "task=classification"]).data.name == "sst2"
        generation = compose(config_name="train", overrides=["task=generation"])
        assert generation.data.name == "cmudict_g2p" and generation.decoder.name == "deconv"
        assert compose(config_name="train", overrides=["task=generation", "decoder=deconv"]).decoder.name == "deconv"
        assert compose(config_name="train").get("decoder") is None  # tagging has no decoder


@pytest.mark.parametrize("override,message", [
    ("encoder.width=wide", "encoder.width: Value 'wide' of type 'str' could not be converted to Integer"),
    ("task.pooling=max", "task.pooling='max' is not valid; choose one of: first, last, mean, first_last"),
    ("data.tagset=lemma", "data.tagset='lemma' is not valid; choose one of: upos, xpos"),
    ("decoder=deconv decoder.bottleneck=matrix",
     "decoder.bottleneck='matrix' is not valid; choose one of: vector, sequence"),
    ("decoder=deconv decoder.stride=1", "decoder.stride=1 must be at least 2 (each upsampling layer must grow the length)"),
    ("decoder=deconv decoder.too_long=cut", "decoder.too_long='cut' is not valid; choose one of: error, filter"),
])
def test_validation_errors(override, message):
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*override.split(), "data=ud_ewt"])
    with pytest.raises(UserError) as error:
        validate(cfg)
    assert str(error.value) == message


def test_sweep_directory_names_stay_short_and_distinct():
    from convnlp.cli import short_dirname

    assert short_dirname("encoder=plain") == "encoder=plain"
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert len(short_dirname(long_a)) == 120 and short_dirname(long_a) != short_dirname(long_b)


def test_resume_comparison_fills_defaults_and_ignores_suggestions():
    """A run saved before a key existed (at its default) can still be resumed; a data config's
    suggestions for other groups are not compared (those groups are)."""
    from convnlp.train import config_difference

    def composed(*overrides):
        with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
            cfg = validate(compose(config_name="train", overrides=["task=generation", *overrides]))
        return OmegaConf.to_container(cfg, resolve=True)

    current = composed("decoder.output_length=fixed", "decoder.too_long=error")
    saved = composed("decoder.output_length=fixed", "decoder.too_long=error")
    for key in ("output_length", "too_long", "batch_tokens"):
        del saved["data"][key]
    for key in ("output_length", "length_ratio", "length_extra"):
        del saved["decoder"][key]
    assert config_difference(saved, current) is None
    assert config_difference(saved, composed()) == "decoder.output_length: 'fixed' there, 'source' now"
