"""Every shipped config composes, validates and builds a model; bad values fail in one line."""

import re
from importlib import resources

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from convnlp.config import SCHEMAS, validate
from convnlp.data import serves
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.registry import COMMANDS, DATASETS, DECODERS, ENCODERS, checks
from convnlp.tasks import task_config

CONF = resources.files("convnlp.conf")  # conf/ at the top of the repository, shipped as convnlp.conf


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
    + [
        (task, encoder, None, tokenizer)
        for task in options("task")
        for encoder in options("encoder")
        for tokenizer in options("tokenizer")
    ]
)


@pytest.mark.parametrize("task,encoder,data,tokenizer", COMBINATIONS)
def test_compose_validate_and_build(task, encoder, data, tokenizer):
    overrides = [f"task={task}", f"encoder={encoder}", f"tokenizer={tokenizer}"]
    if data is not None:
        overrides += [f"data={data}"] + (["data.path=somewhere"] if data == "hub" else [])
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    data = cfg.data.name
    if task not in serves(data):
        with pytest.raises(UserError, match=f"data={data} is .* data; task={task} needs one of: "):
            validate(cfg)
        return
    cfg = validate(cfg)
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


@pytest.mark.parametrize(
    "override,message",
    [
        ("encoder.width=wide", "encoder.width: Value 'wide' of type 'str' could not be converted to Integer"),
        ("task.pooling=max", "task.pooling='max' is not valid; choose one of: first, last, mean, first_last"),
        ("data.tagset=lemma", "data.tagset='lemma' is not valid; choose one of: upos, xpos"),
        (
            "decoder=deconv decoder.bottleneck=matrix",
            "decoder.bottleneck='matrix' is not valid; choose one of: vector, sequence",
        ),
        (
            "decoder=deconv decoder.stride=1",
            "decoder.stride=1 must be at least 2 (each upsampling layer must grow the length)",
        ),
        ("decoder=deconv decoder.too_long=cut", "decoder.too_long='cut' is not valid; choose one of: error, filter"),
    ],
)
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


def test_resume_comparison_fills_defaults_and_reads_configs_of_earlier_versions():
    """A run saved before a key existed (at its default) can still be resumed, and one saved
    with the data keys this version retired (config.RETIRED) too; the groups that replaced
    those keys are compared themselves."""
    from convnlp.resume import config_difference

    def composed(*overrides):
        with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
            cfg = validate(compose(config_name="train", overrides=["task=generation", *overrides]))
        return OmegaConf.to_container(cfg, resolve=True)

    current = composed("decoder.output_length=fixed", "decoder.too_long=error")
    saved = composed("decoder.output_length=fixed", "decoder.too_long=error")
    saved["data"].update(epochs=15, output_length="source", too_long="filter", batch_tokens=1000)
    for key in ("output_length", "length_ratio", "length_extra"):
        del saved["decoder"][key]
    assert config_difference(saved, current) == "decoder.output_length: 'source' there, 'fixed' now"
    assert config_difference(saved, composed("decoder.too_long=error")) is None  # data.output_length=source said it
    del saved["data"]["output_length"]  # saved before either existed: the default then, fixed
    assert config_difference(saved, current) is None


# ------------------------------------------------- bad values, generated from the schemas


def _bad_values():
    """(group, option, key, kind, value) for every option of every group: a value of a wrong
    type, one out of range (where a rule gives a range), one not among the choices (where there
    are choices), and an unknown key per option."""
    import dataclasses
    import typing

    candidates = [
        -1,
        0,
        1,
        2,
        3,
        4,
        0.5,
        1.5,
        100,
        10**6,
        -0.5,
        [],
        [0],
        [2],
        [-1],
        [4, 6],
        [0.5, 2.0],
        "[",
        {"drop": 1.5},
    ]
    for group, schemas in SCHEMAS.items():
        for option, schema in schemas.items():
            hints = typing.get_type_hints(schema)
            declared = {name: (check, choices) for name, check, choices in checks(schema)}
            for field in dataclasses.fields(schema):
                key, hint = f"{group}.{field.name}", hints[field.name]
                if field.name == "name" or hint is typing.Any:
                    continue
                base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Union else hint
                wrong = {int: "many", float: "many", bool: "maybe", str: [1, 2]}.get(base, "many")
                yield group, option, field.name, "type", wrong
                check, choice = declared.get(field.name, (None, None))
                if choice:
                    yield group, option, field.name, "choice", "nope"
                if check is not None:
                    for value in candidates:
                        try:
                            typed = OmegaConf.merge(OmegaConf.structured(schema), {field.name: value})[field.name]
                            holds = check.ok(typed)
                        except Exception:
                            continue
                        if not holds:
                            yield group, option, field.name, "range", value
                            break
                    else:
                        raise AssertionError(f"no out-of-range candidate for {key}")
            yield group, option, "no_such_key", "unknown key", 1


BAD_VALUES = list(_bad_values())


def _context(group: str, option: str) -> dict:
    """A config in which ``group=option`` is valid: a task the data serves, generation for a decoder."""
    if group == "data":
        return {"task": {"name": DATASETS[option].info["tasks"][0]}}
    if group == "decoder":
        return {"task": {"name": "generation"}}
    if group == "task":
        return {
            "data": {
                "name": {
                    "tagging": "cmudict_stress",
                    "classification": "cmudict_syllables",
                    "generation": "cmudict_g2p",
                    "autoencoder": "cmudict_words",
                }[option]
            }
        }
    return {}


def test_every_option_rejects_a_wrong_type_an_out_of_range_and_an_unknown_value_in_one_line():
    """Issue 16: each of these, for every option of every group, is one line naming the key."""
    assert len(BAD_VALUES) > 300
    kinds = {}
    for group, option, key, kind, value in BAD_VALUES:
        base = {**_context(group, option), group: {"name": option}}
        good = validate(OmegaConf.create(base))  # the option itself is valid ...
        assert good[group].name == option
        bad = OmegaConf.create(base)
        bad[group][key] = value
        with pytest.raises(UserError) as error:  # ... and the bad value is refused, by name
            validate(bad)
        message = str(error.value)
        assert "\n" not in message and f"{group}.{key}" in message, (group, option, key, kind, value, message)
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"type", "choice", "range", "unknown key"}


# --------------------------------------------- one source of truth: the schemas' defaults


# Values that still come from another group (the data set suggests them); each is a known
# exception to "the YAML value is the schema default", until those settings move to experiments.
def test_every_yaml_file_holds_its_schemas_keys_and_defaults():
    import dataclasses

    for group, schemas in SCHEMAS.items():
        for option, schema in schemas.items():
            text = (CONF / group / f"{option}.yaml").read_text()
            node = OmegaConf.create(text)
            node = node[group] if text.startswith("# @package _global_\n") else node
            keys = set(node.keys()) - {"defaults"}
            assert keys == {f.name for f in dataclasses.fields(schema)}, (group, option)
            defaults = OmegaConf.to_container(OmegaConf.structured(schema))
            for key in keys:
                assert OmegaConf.to_container(node)[key] == defaults[key], (group, option, key)


def test_no_group_reads_or_sets_another_groups_values():
    """No interpolation anywhere in the groups (Hydra's own run-directory names aside), and the
    group files set their own group only: what crosses groups lives in conf/experiment/. A task
    may also set the batch size it wants on any data (docs/data.md, Defaults and the evidence), and
    whether to stop early (the autoencoder's plateau: docs/autoencoder.md)."""
    for group in SCHEMAS:
        for option in options(group):
            text = (CONF / group / f"{option}.yaml").read_text()
            assert "${" not in text, (group, option)
            node = OmegaConf.create(text)
            if text.startswith("# @package _global_\n"):  # a task that picks its default data
                assert set(node.keys()) - {"defaults", "trainer"} == {group}, (group, option)
                assert set(node.get("trainer", {})) <= {"batch_tokens", "patience"}, (group, option)


def test_every_command_file_holds_its_settings_and_defaults():
    """conf/<command>.yaml: the keys besides the config groups and hydra are the command's
    dataclass fields (convnlp/commands/<command>.py), at its defaults."""
    import dataclasses

    for entry in COMMANDS.entries():
        node = OmegaConf.to_container(OmegaConf.create((CONF / f"{entry.name}.yaml").read_text()))
        groups = set(entry.info.get("groups", ())) | {"defaults", "hydra"}
        own = {k: v for k, v in node.items() if k not in groups}
        if "data" in own and "data" not in entry.info.get("groups", ()):  # eval: data.split for the checkpoint's data
            pytest.fail(f"{entry.name}: data")
        assert set(own) == {f.name for f in dataclasses.fields(entry.config)}, entry.name
        defaults = OmegaConf.to_container(OmegaConf.structured(entry.config))
        for key, value in own.items():
            assert value == defaults[key], (entry.name, key)


def test_parts_take_their_config_and_have_no_defaults_of_their_own():
    """Defaults live once, in the dataclass: a registered encoder or decoder is built from its
    config, and its constructor declares no default of its own."""
    import inspect

    for registry, extra in ((ENCODERS, ["input_dim"]), (DECODERS, ["input_dim", "num_labels"])):
        for entry in registry.entries():
            target = entry.target.__init__ if inspect.isclass(entry.target) else entry.target
            parameters = [p for name, p in inspect.signature(target).parameters.items() if name != "self"]
            assert [p.name for p in parameters] == ["cfg", *extra], entry.name
            assert all(p.default is inspect.Parameter.empty for p in parameters), entry.name


# ------------------------------------------------------------------------- experiments


def _header(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("#"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_validates_and_cites_its_figure(experiment):
    """conf/experiment/: one file per published figure, opening with its command, date and
    figures; a data set's own file (experiment/<data>.yaml) is applied by data=<data>."""
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_\n"), experiment
    header = _header(text)
    assert "convnlp train " in header.splitlines()[1], experiment
    assert re.search(r"20\d\d-\d\d-\d\d[:,]", header) and re.search(r"\d%", header), experiment  # date, figures
    own = experiment in DATASETS
    overrides = [f"data={experiment}"] if own else [f"experiment={experiment}"]
    if own and DATASETS[experiment].info["tasks"][0] != "tagging":
        overrides.insert(0, f"task={DATASETS[experiment].info['tasks'][0]}")
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.runtime.choices.experiment == experiment
    if own:  # applied inside an interpolated default: values only, no group choices
        assert "defaults" not in OmegaConf.create(text), experiment
    else:  # an experiment names its data set
        assert cfg.hydra.runtime.choices.data in DATASETS
    validate(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))


def test_a_data_set_brings_its_own_experiment_and_the_command_line_wins():
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        default = compose(config_name="train")
        g2p = compose(config_name="train", overrides=["task=generation"])
        ud = compose(config_name="train", overrides=["data=ud_ewt", "trainer.max_epochs=7"])
        csv = compose(config_name="train", overrides=["task=classification", "data=csv"])
        sst2 = compose(config_name="train", overrides=["experiment=sst2_word", "trainer.max_epochs=2"])
    assert default.trainer.max_epochs == 3 and default.trainer.batch_tokens == 4000
    assert (g2p.trainer.max_epochs, g2p.trainer.batch_tokens) == (15, 1000)
    assert (g2p.decoder.output_length, g2p.decoder.too_long) == ("source", "filter")
    assert ud.trainer.max_epochs == 7
    assert csv.trainer.max_epochs is None and "epochs" not in csv.data  # a user's data: the trainer's default (20)
    assert (sst2.data.name, sst2.tokenizer.name, sst2.trainer.max_epochs, sst2.trainer.batch_tokens) == (
        "sst2",
        "word",
        2,
        1000,
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["experiment=nosuch"], "unknown experiment 'nosuch'; choose one of: g2p_6min, "),
        (["experiment=ud_ewt"], "experiment=ud_ewt holds the settings data=ud_ewt wants and is applied by data=ud_ewt"),
        (["-m", "experiment=sst2_word,sst2_chars"], "unknown experiment 'sst2_chars'"),
        (["--config-dir", "/nonexistent/dir", "experiment=mine"], "--config-dir /nonexistent/dir: no such directory"),
    ],
)
def test_bad_experiments_fail_in_one_line(overrides, message, capsys):
    from convnlp.cli import check_overrides

    with pytest.raises(SystemExit):
        check_overrides("train", overrides)
    assert message in capsys.readouterr().err


def test_a_users_own_experiments_folder(tmp_path, capsys):
    """`convnlp train --config-dir DIR experiment=NAME`: DIR/experiment/NAME.yaml, checked like ours."""
    from convnlp.cli import check_overrides

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /encoder: plain\ntrainer:\n  max_epochs: 1\n"
    )
    check_overrides("train", ["--config-dir", str(tmp_path), "experiment=mine"])
    with pytest.raises(SystemExit):
        check_overrides("train", [f"--config-dir={tmp_path}", "experiment=mine", "trainer.max_epochs=x"])
    assert "trainer.max_epochs" in capsys.readouterr().err


def test_the_wheel_ships_every_package_and_the_configs():
    """pyproject.toml lists the packages (conf/ is mapped to convnlp.conf): a new subpackage
    must be listed too, or the wheel would lack it."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(root / "src").parts) for p in (root / "src").rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"convnlp.conf"}
    assert setuptools["package-dir"]["convnlp.conf"] == "conf"
    assert (root / "conf" / "train.yaml").is_file() and not (root / "src" / "convnlp" / "conf").exists()
