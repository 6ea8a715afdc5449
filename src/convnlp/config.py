"""The check that turns a composed config into one clear line when something is wrong.

Every group option's keys, types, defaults, ranges and choices are declared once, by the
dataclass of the file that defines the option (``convnlp.registry``: ``option(default, check,
choices=...)``); a command's own settings by the dataclass of its file in ``convnlp/commands``.
This module only reads them: ``validate`` merges each group into its typed schema, then checks
the choices and ranges the dataclass declares, the task's ``trainer.select`` metrics and each
option's own ``check()`` (the deconv decoder's length arithmetic). Each group option carries
``name`` (the file name: ``encoder=dilated`` is ``conf/encoder/dilated.yaml`` with ``name:
dilated``) so that a checkpoint's saved config can be rebuilt without Hydra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from convnlp.data import check_task
from convnlp.errors import UserError
from convnlp.registry import DATASETS, DECODERS, GROUPS, TASKS, checks, from_dict


class _Schemas(Mapping):
    """``SCHEMAS[group][option]``: the config dataclass of each option, read from the registries."""

    def __getitem__(self, group: str) -> dict[str, type]:
        return GROUPS[group].schemas()

    def __iter__(self) -> Iterator[str]:
        return iter(GROUPS)

    def __len__(self) -> int:
        return len(GROUPS)


SCHEMAS = _Schemas()

# the validation metrics that improve downwards (so do training's loss and time, as `convnlp report` sorts)
LOWER_IS_BETTER = ("wer", "per", "cer", "loss")


# Keys that configs saved by earlier versions hold and this one no longer has: left out when such
# a config is read (a checkpoint's, a run resumed), so old checkpoints still load and resume.
# (data.epochs, .batch_tokens, .output_length, .too_long: a data set's suggestions for other
# groups, now in its experiment file conf/experiment/<data>.yaml.)
RETIRED = {"data": ("epochs", "batch_tokens", "output_length", "too_long")}


def with_earlier_defaults(config: dict) -> dict:
    """A saved config with the earlier default of each key whose default changed, where it lacks
    the key (it was saved before the key existed), so a checkpoint or a resumed run keeps the
    model it was: ``decoder.output_length`` was ``fixed`` until 2026-12-02, or what the data group
    said in the versions that kept it there (RETIRED). And generation's ``task.loss=auto`` (the
    default since 2026-12-06, ``ctc`` before) as the loss it stands for, so the two compare equal."""
    if not isinstance(config, dict):
        return config
    decoder = config.get("decoder")
    task = config.get("task")
    if (
        isinstance(task, dict)
        and isinstance(decoder, dict)
        and task.get("loss") == "auto"
        and decoder.get("name") in DECODERS
    ):
        autoregressive = getattr(DECODERS[decoder["name"]].target, "autoregressive", False)
        config = {**config, "task": {**task, "loss": "ce" if autoregressive else "ctc"}}
    if not isinstance(decoder, dict) or "output_length" in decoder or decoder.get("name") != "deconv":
        return config
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    return {**config, "decoder": {**decoder, "output_length": data.get("output_length", "fixed")}}


def override_key(override: str) -> str:
    """The key a Hydra override sets: ``trainer.threads`` of ``trainer.threads=1``, ``x`` of ``+x=1``."""
    return override.split("=", 1)[0].lstrip("+~")


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
        valid = ", ".join(f.name for f in dataclasses.fields(options[name]))
        raise UserError(f"unknown key '{group}.{e.key}' for {group}={name}; valid keys: {valid}") from None
    except ValidationError as e:
        raise UserError(f"{group}.{e.key}: {str(e).splitlines()[0]}") from None


def check_values(node: DictConfig, schema: type, prefix: str = "") -> None:
    """The choices and ranges ``schema`` declares, on the values of ``node`` (nested dataclasses
    too); a value left null is not checked."""
    for name, check, choices in checks(schema):
        key, value = f"{prefix}{name}", OmegaConf.select(node, name, default=None)
        if value is None:
            continue
        if choices is not None and value not in choices:
            raise UserError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")
        if check is not None and not check.holds(value):
            raise UserError(f"{key}={value} {check.requirement}")
    for f in dataclasses.fields(schema):  # a nested group of settings: field(default_factory=ItsDataclass)
        inner = f.default_factory
        if isinstance(inner, type) and dataclasses.is_dataclass(inner) and isinstance(node.get(f.name), DictConfig):
            check_values(node[f.name], inner, f"{prefix}{f.name}.")


def validate(cfg: DictConfig, groups: tuple[str, ...] = tuple(GROUPS), top: type | None = None) -> DictConfig:
    """Check every present group against its schema (its choices, ranges and own ``check()``)
    and, with ``top`` (a command's config dataclass), the command's own settings; returns a
    typed copy."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    task, data = (OmegaConf.select(out, f"{g}.name", default=None) for g in ("task", "data"))
    if task is not None and data is not None and data in DATASETS:  # first: a data set's experiment sets keys of
        check_task(data, task)  # its own task (an unknown name: below)
    present = [g for g in groups if g in cfg and isinstance(cfg[g], DictConfig) and "name" in cfg[g]]
    for group in present:
        out[group] = validate_group(group, cfg[group])
    for group in present:
        check_values(out[group], SCHEMAS[group][out[group].name], f"{group}.")
    task = OmegaConf.select(out, "task.name", default=None)
    select = OmegaConf.select(out, "trainer.select", default=None)
    if select is not None and task in TASKS and select not in TASKS[task].info["select"]:
        raise UserError(
            f"trainer.select={select!r} is not a {task} metric; choose one of: {', '.join(TASKS[task].info['select'])}"
        )
    for group in present:  # an option's own check across its settings
        typed = from_dict(SCHEMAS[group][out[group].name], OmegaConf.to_container(out[group], resolve=True))
        if hasattr(typed, "check"):
            typed.check()
    if top is not None:
        check_values(out, top)
    return out


def check_resolves(cfg: DictConfig) -> None:
    """Every interpolation resolves and every mandatory (???) value is given."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} is required: add {e.full_key}=...") from None
    except OmegaConfBaseException as e:
        raise UserError(f"config: {str(e).splitlines()[0]}") from None
