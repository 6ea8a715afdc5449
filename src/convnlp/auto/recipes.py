"""The candidates of a race: the task's recipes, ``conf/recipes/<task>/<name>.yaml`` (and a user's
own, ``DIR/recipes/<task>/<name>.yaml`` with ``--config-dir DIR``), each composed with the command
line and checked before any training.

A recipe is a config file in the global package, as an experiment is: ``defaults`` with
``override /<group>: <option>`` and values of the model and training groups. It opens with a
comment line saying what it is for. A candidate is trained as ``convnlp train <the command line>
+recipes/<task>=<name>``: Hydra lets the command line win over the recipe, for a group as for a
value, so what the user gave holds for every candidate.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from convnlp.config import check_resolves, override_key, validate
from convnlp.errors import UserError
from convnlp.registry import COMMANDS

log = logging.getLogger("convnlp.auto")

# what a recipe may set: the model and its training, never the data (the user's)
RECIPE_GROUPS = ("task", "encoder", "decoder", "tokenizer", "trainer", "optim")
# the trainer's keys the race and the comparison of the candidates own: their budget, threads,
# validation data and metric, where they start from
RACE_OWNED = tuple(
    f"trainer.{k}"
    for k in (
        "max_minutes",
        "max_epochs",
        "max_steps",
        "select",
        "holdout",
        "resume",
        "init",
        "teacher",
        "threads",
        "progress",
    )
)
# the keys of a composed config that make two candidates the same training
COMPARED = (*RECIPE_GROUPS, "data", "seed")


@dataclass
class Candidate:
    """One recipe of the race as it will train: its name, what it is for (the recipe's opening
    line), the overrides `convnlp train` gets for it (the command line's and the recipe's), whether
    it trains what the command trains without ``auto=true``, and its composed config."""

    name: str
    about: str
    overrides: list[str]
    default: bool = False
    config: dict = field(default_factory=dict, repr=False)


def available(task: str) -> list[str]:
    """The recipes of ``task`` on the config search path (the package's, a --config-dir's)."""
    return GlobalHydra.instance().config_loader().get_group_options(f"recipes/{task}")


def _source_text(task: str, name: str, provider_path: str) -> str:
    """The recipe file's text, from the package or from a --config-dir."""
    relative = Path("recipes") / task / f"{name}.yaml"
    if provider_path.startswith("file://"):
        return (Path(provider_path.removeprefix("file://")) / relative).read_text()
    module = provider_path.removeprefix("pkg://").replace("/", ".")
    return importlib.resources.files(module).joinpath(*relative.parts).read_text()


def _about(text: str, where: str) -> str:
    """The opening comment line (after ``# @package``): what the recipe is for."""
    for line in text.splitlines():
        if line.startswith("# @package"):
            continue
        if line.startswith("#") and line.lstrip("# ").strip():
            return line.lstrip("# ").strip()
        break
    raise UserError(f"{where}: a recipe opens with a comment line saying what it is for")


def _flat(node, prefix: str = "") -> list[str]:
    if not isinstance(node, dict) or not node:
        return [prefix] if prefix else []
    return [key for k, v in node.items() for key in _flat(v, f"{prefix}.{k}" if prefix else str(k))]


def read(task: str, name: str) -> tuple[str, list[str]]:
    """What a recipe is for, and the keys it sets (groups it chooses, values it sets); checks that
    it sets the model and training groups only."""
    where = f"recipe {name} (recipes/{task}/{name}.yaml)"
    try:
        result = GlobalHydra.instance().config_loader().repository.load_config(f"recipes/{task}/{name}")
    except (HydraException, OmegaConfBaseException, yaml.YAMLError, ValueError) as e:
        raise UserError(f"{where}: {' '.join(str(e).split())[:300]}") from None
    if result is None:
        raise UserError(f"{where}: not found")
    if (result.header or {}).get("package") != "_global_":
        raise UserError(f"{where}: open it with `# @package _global_`, as an experiment does")
    about = _about(_source_text(task, name, result.path), where)
    groups = [d.group.lstrip("/") for d in result.defaults_list or () if getattr(d, "group", None)]
    keys = groups + _flat(OmegaConf.to_container(result.config))
    stray = [k for k in keys if k.split(".")[0] not in RECIPE_GROUPS]
    if stray:
        raise UserError(
            f"{where} sets {stray[0]}: a recipe sets only {', '.join(RECIPE_GROUPS)} (the data is the user's)"
        )
    owned = [k for k in keys if k in RACE_OWNED]
    if owned:
        raise UserError(
            f"{where} sets {owned[0]}: the race sets the candidates' budget, threads, validation data and metric "
            "(give trainer.select and the like on the command line, for every candidate)"
        )
    return about, keys


def _compose(overrides: list[str], where: str) -> dict:
    """The config `convnlp train` composes from ``overrides``, checked as the command line is."""
    entry = COMMANDS["train"]
    try:
        cfg = compose(config_name="train", overrides=overrides)
        check_resolves(cfg)
        cfg = validate(cfg, entry.info.get("groups", ()), entry.config)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"{where}: {str(e).strip().splitlines()[0]}") from None
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    return _compared(cfg)


def _compared(cfg: DictConfig) -> dict:
    values = OmegaConf.to_container(cfg, resolve=True)
    return {k: values.get(k) for k in COMPARED}


def candidates(task: str, names: list[str] | None, base: list[str]) -> list[Candidate]:
    """The race's candidates: ``names`` (auto.recipes; None: every recipe of the task), each
    composed with the command line's ``base`` overrides and checked; a recipe that trains the
    same as an earlier one with the command line's settings is raced once."""
    known = available(task)
    if not known:
        raise UserError(f"auto=true: task={task} has no recipes (conf/recipes/{task}/)")
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise UserError(f"auto.recipes: unknown recipe {unknown[0]!r} for task={task}; choose from: {', '.join(known)}")
    given = {override_key(o) for o in base}
    default = _compose(base, "the command line")
    chosen: list[Candidate] = []
    for name in dict.fromkeys(names or known):
        about, keys = read(task, name)
        overrides = [*base, f"+recipes/{task}={name}"]
        config = _compose(overrides, f"recipe {name} with the command line")
        held = [k for k in keys if k in given]
        if held:
            log.info("auto: recipe %s sets %s; the command line's value holds", name, ", ".join(held))
        same = next((c for c in chosen if c.config == config), None)
        if same is not None:
            log.info(
                "auto: recipe %s trains the same as %s with the command line's settings: raced once", name, same.name
            )
            continue
        chosen.append(Candidate(name, about, overrides, config == default, config))
    return chosen
