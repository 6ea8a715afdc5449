"""Closed registries of convnlp's parts, and the typed options each part declares.

A part (an encoder, a decoder, a data set, a task, a tokenizer, a command, ...) is one file that
declares its config as a dataclass and registers itself with a decorator of this module::

    @dataclass
    class DilatedConfig:
        name: str = "dilated"                       # the option name: conf/encoder/dilated.yaml
        width: int = option(128, at_least(1))       # default and range, once, beside the field

    @ENCODERS.register(DilatedConfig)
    class DilatedEncoder(nn.Module): ...

The dataclass is the one place a setting's name, type, default and range live: validation
(``convnlp.config``), ``--help``, the constructors (which take the config and have no defaults
of their own) and the YAML files in ``conf/`` (checked against it by tests/test_config.py) all
derive from it. A registry imports the modules of its own package the first time it is asked
for a name, so adding a part is its file and its YAML, and a name resolves only to a module of
convnlp: never to a class path from a config or a checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """A constraint on a setting: ``ok(value)`` holds, or the error says ``<key>=<value> <requirement>``."""

    ok: Callable[[Any], bool]
    requirement: str

    def holds(self, value) -> bool:
        try:
            return bool(self.ok(value))
        except TypeError:  # e.g. a string where a number belongs
            return False


def at_least(n: float, why: str = "") -> Check:
    return Check(lambda v: v >= n, f"must be at least {n:g}" + (f" ({why})" if why else ""))


def zero_or_more(meaning: str = "") -> Check:
    return Check(lambda v: v >= 0, f"must be 0{f' ({meaning})' if meaning else ''} or more")


def positive() -> Check:
    return Check(lambda v: v > 0, "must be positive")


def fraction() -> Check:
    return Check(lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")


def within(low: float, high: float, why: str = "") -> Check:
    return Check(lambda v: low <= v <= high, f"must be in [{low:g}, {high:g}]" + (f" ({why})" if why else ""))


def _odd(v) -> bool:
    return isinstance(v, int) and v >= 1 and v % 2 == 1


def odd() -> Check:
    return Check(_odd, "must be an odd number (the length is kept)")


def whole(check: Check) -> Check:
    """``check`` on a whole number (a command's own settings, which have no typed group)."""
    return Check(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and check.ok(v),
        f"must be a whole number, {check.requirement.removeprefix('must be ')}",
    )


def option(default: Any, check: Check | None = None, *, choices: tuple[str, ...] | None = None, help: str = "") -> Any:
    """A dataclass field with its default, its constraint (``check``) or its allowed words
    (``choices``), and a line of help."""
    metadata = {"check": check, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def checks(config: type) -> Iterator[tuple[str, Check | None, tuple[str, ...] | None]]:
    """(field name, check, choices) of every field of a config dataclass that has either."""
    for f in dataclasses.fields(config):
        check, choices = f.metadata.get("check"), f.metadata.get("choices")
        if check is not None or choices is not None:
            yield f.name, check, choices


def defaults(config: type) -> dict:
    """A config dataclass's defaults as plain values."""
    return dataclasses.asdict(config())


def from_dict(config: type, values: dict):
    """A config dataclass from a plain dict (a checkpoint's config.json, a composed group):
    missing keys take their defaults; an unknown key is an error."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise TypeError(f"unknown key {unknown[0]!r} for {config.__name__}; valid keys: {', '.join(sorted(names))}")
    return config(**values)


@dataclass(frozen=True)
class Entry:
    """One registered part: its option ``name``, its ``config`` dataclass, what it names
    (``target``: a class, a function or a module) and what else it declared (``info``)."""

    name: str
    config: type
    target: Any
    info: dict


class Registry:
    """The options of one config group (or the commands), filled by the decorator of the
    modules of ``module`` (a package: every module in it; or one module)."""

    def __init__(self, group: str, module: str):
        self.group, self.module = group, module
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, config: type, name: str | None = None, **info) -> Callable:
        """Decorator: the class or function below is the option ``config.name`` (or ``name``)
        of this group."""

        def decorate(target):
            self.add(config, target, name, **info)
            return target

        return decorate

    def add(self, config: type, target: Any = None, name: str | None = None, **info) -> None:
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.group}: {config!r} is not a dataclass")
        name = name or next((f.default for f in dataclasses.fields(config) if f.name == "name"), None)
        if not isinstance(name, str):
            raise TypeError(f"{self.group}: {config.__name__} needs a field `name` whose default is its option name")
        if name in self._entries and self._entries[name].config is not config:
            raise ValueError(f"{self.group}={name} is registered twice")
        self._entries[name] = Entry(name, config, target, info)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        module = importlib.import_module(self.module)
        for found in pkgutil.iter_modules(getattr(module, "__path__", [])):
            importlib.import_module(f"{self.module}.{found.name}")

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __getitem__(self, name: str) -> Entry:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.group} {name!r}; choose one of: {', '.join(self._entries)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def entries(self) -> list[Entry]:
        self._load()
        return list(self._entries.values())

    def schemas(self) -> dict[str, type]:
        return {e.name: e.config for e in self.entries()}

    def config(self, values: dict):
        """The typed config of a plain dict that names its option (``{"name": "dilated", ...}``)."""
        return from_dict(self[values["name"]].config, values)


# The config groups of a run (conf/<group>/<option>.yaml), and the commands (conf/<command>.yaml).
TASKS = Registry("task", "convnlp.tasks")
ENCODERS = Registry("encoder", "convnlp.encoders")
DECODERS = Registry("decoder", "convnlp.decoders")
DATASETS = Registry("data", "convnlp.data")
TOKENIZERS = Registry("tokenizer", "convnlp.data.tokenizer")
TRAINERS = Registry("trainer", "convnlp.train.settings")
OPTIMIZERS = Registry("optim", "convnlp.optimization")
COMMANDS = Registry("command", "convnlp.commands")

GROUPS: dict[str, Registry] = {
    r.group: r for r in (TASKS, ENCODERS, DECODERS, DATASETS, TOKENIZERS, TRAINERS, OPTIMIZERS)
}
