"""Every shipped config composes, validates and builds a model; bad values fail in one line."""

from importlib import resources

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from convnlp.config import SCHEMAS, validate
from convnlp.errors import UserError
from convnlp.model import build_model

CONF = resources.files("convnlp") / "conf"


def options(group):
    return sorted(p.name[:-5] for p in (CONF / group).iterdir() if p.name.endswith(".yaml"))


def test_every_option_file_has_a_schema_and_a_command_comment():
    for group, schemas in SCHEMAS.items():
        assert options(group) == sorted(schemas), group
        for option in options(group):
            text = (CONF / group / f"{option}.yaml").read_text()
            assert text.startswith("# convnlp ") or text.startswith("# CONVNLP_"), (group, option)
            assert OmegaConf.create(text).name == option


@pytest.mark.parametrize("encoder", options("encoder"))
@pytest.mark.parametrize("task", options("task"))
@pytest.mark.parametrize("data", options("data"))
@pytest.mark.parametrize("tokenizer", options("tokenizer"))
def test_compose_validate_and_build(task, encoder, data, tokenizer):
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"task={task}", f"encoder={encoder}",
                                                      f"data={data}", f"tokenizer={tokenizer}"])
    cfg = validate(cfg)
    assert cfg.trainer.max_epochs == cfg.data.epochs
    config = OmegaConf.to_container(cfg, resolve=True)
    model = build_model(config["task"], config["encoder"], vocab_size=30, num_labels=4)
    assert model.encoder.receptive_field > 1


@pytest.mark.parametrize("override,message", [
    ("encoder.width=wide", "encoder.width: Value 'wide' of type 'str' could not be converted to Integer"),
    ("task.pooling=max", "task.pooling='max' is not valid; choose one of: first, last, mean, first_last"),
    ("data.tagset=lemma", "data.tagset='lemma' is not valid; choose one of: upos, xpos"),
])
def test_validation_errors(override, message):
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[override, "data=ud_ewt"])
    with pytest.raises(UserError) as error:
        validate(cfg)
    assert str(error.value) == message
