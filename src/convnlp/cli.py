"""`convnlp <command> [hydra overrides]`: a thin dispatcher to one Hydra app per command.

Before Hydra runs, the overrides are composed and checked against the typed schemas (every
value of a ``-m`` sweep too), so a bad group option, a misspelled key or a wrong type fails
in one line that names the valid choices, before any work starts.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from convnlp import __version__, distributed
from convnlp.config import check_resolves, override_key, validate
from convnlp.errors import UserError
from convnlp.registry import COMMANDS, DATASETS, Entry

HEADER = """usage: convnlp <command> [overrides] [-m] [--help] [--cfg job]
       convnlp --version | -sc install=bash (shell completion: eval "$(convnlp -sc install=bash)")

commands:
"""
FOOTER = """
Overrides are Hydra's (group=option, key=value, -m for sweeps). `convnlp <command> --help`
lists the config groups and options of a command.
"""


def commands() -> list[Entry]:
    """The registered commands (convnlp/commands/), in the order --help lists them."""
    return sorted(COMMANDS.entries(), key=lambda e: e.info["order"])


def usage() -> str:
    """``convnlp --help``: each command's summary and examples, from its file in convnlp/commands/."""
    lines = []
    for entry in commands():
        examples = list(entry.info.get("examples", ()))
        head = f"  {entry.name:<9} {entry.info['summary']}"
        if len(head) > 36:
            lines.append(head)
            head = ""
        first = examples.pop(0) if examples else ""
        lines.append(f"{head:<37}{first}".rstrip())
        lines += [" " * 37 + example for example in examples]
    return HEADER + "\n".join(lines) + "\n" + FOOTER


VALUE_FLAGS = {
    "--config-dir",
    "-cd",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--experimental-rerun",
    "--package",
    "-p",
    "--cfg",
    "-c",
}
INFO_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--cfg",
    "-c",
    "--resolve",
    "--package",
    "-p",
    "--shell-completion",
    "-sc",
}


def short_dirname(name: str, limit: int = 120) -> str:
    """A sweep job's directory name (its overrides) cut to ``limit`` characters, with a hash of
    the whole name so that different jobs keep different directories (file systems allow 255)."""
    if len(name) <= limit:
        return name
    import hashlib

    return f"{name[: limit - 9]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"


OmegaConf.register_new_resolver("convnlp_short", short_dirname, replace=True)


def fail(message: str) -> None:
    rank = _other_rank()
    if rank:  # most errors are every rank's: torchrun stops this one while rank 0 says it
        time.sleep(3)
        message = f"[rank {rank}] {message}"
    # one write, the newline included: print() writes the text and its newline apart, and a line of
    # torchrun's or of another rank's written in between would break ours in two
    sys.stderr.write(f"convnlp: error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


def _other_rank() -> int:
    """This process's rank if it is one of several processes of one training, not rank 0; else 0."""
    return distributed.rank_in_environment() if distributed.launched() else 0  # joined or not: RANK is set


# --------------------------------------------------------------------- checking overrides


def _variants(overrides: list[str]) -> list[list[str]]:
    """Override lists that together cover every value of every sweep (not their product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed, sweeps = [], []
    for o in parsed:
        if o.get_key_element().lstrip("+~").startswith("hydra"):
            continue
        if o.is_sweep_override():
            try:
                sweeps.append((o.get_key_element(), list(o.sweep_string_iterator())))
            except Exception:  # interval sweeps (optuna) have no list of values to check
                continue
        else:
            fixed.append(o.input_line)
    first = [f"{key}={values[0]}" for key, values in sweeps]
    variants = [fixed + first]
    for i, (key, values) in enumerate(sweeps):
        for value in values[1:]:
            variants.append(fixed + first[:i] + [f"{key}={value}"] + first[i + 1 :])
    return variants


def _explain(error: Exception, command: str, overrides: list[str]) -> str:
    """One line for a Hydra composition error."""
    from hydra import compose

    text = str(error)
    missing = re.search(r"Could not find '([\w/]+)/([^']*)'", text)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        return f"unknown {group} {option!r}; choose one of: {', '.join(options)}"
    bad_key = re.search(r"Could not override '([^']+)'", text)
    if bad_key and "not in struct" in f"{text} {error.__cause__}":
        key = bad_key.group(1)
        parent, _, leaf = key.rpartition(".")
        groups_only = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
        try:
            node = compose(config_name=command, overrides=groups_only)
            node = node.get(parent) if parent else node
            valid = ", ".join(k for k in node.keys()) if isinstance(node, DictConfig) else ""
        except Exception:
            valid = ""
        return f"unknown config key {key!r}" + (f"; valid keys in {parent or 'the config'}: {valid}" if valid else "")
    return text.strip().splitlines()[0]


def _config_dirs(args: list[str]) -> list[str]:
    """The directories given with ``--config-dir DIR`` / ``-cd DIR`` / ``--config-dir=DIR``."""
    dirs = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(args[i + 1])
        elif arg.startswith(("--config-dir=", "-cd=")):
            dirs.append(arg.split("=", 1)[1])
    for d in dirs:
        if not Path(d).is_dir():
            fail(f"--config-dir {d}: no such directory")
    return [str(Path(d).resolve()) for d in dirs]


def _check_experiment(variant: list[str], options: list[str]) -> None:
    """``experiment=NAME`` must name a file of the experiment group (the group is optional in
    train.yaml, so Hydra itself would quietly run without it), and a data set's own file
    (``experiment/<data>.yaml``, applied by ``data=<data>``) is not an experiment of its own."""
    for override in variant:
        key, _, value = override.partition("=")
        if key.lstrip("+") != "experiment" or value in ("null", ""):
            continue
        if value not in options:
            fail(f"unknown experiment {value!r}; choose one of: {', '.join(o for o in options if o not in DATASETS)}")
        data = [o.partition("=")[2] for o in variant if o.partition("=")[0].lstrip("+") == "data"]
        if value in DATASETS and data != [value]:
            fail(
                f"experiment={value} holds the settings data={value} wants and is applied by data={value}; "
                "give data=" + value
            )


def check_overrides(command: str, args: list[str]) -> DictConfig:
    """Compose every variant of the overrides (each value of a sweep) and check it; the config
    of the first variant."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides, skip = [], False
    for arg in args:  # leave out flags, and the values of flags that take one
        if not skip and not arg.startswith("-"):
            overrides.append(arg)
        skip = arg in VALUE_FLAGS
    try:
        variants = _variants(overrides)
    except HydraException as e:
        fail(f"cannot parse overrides: {str(e).strip().splitlines()[0]}")
    # a user's --config-dir joins the search path, as it does for the Hydra app
    dirs = _config_dirs(args)
    search = [f"hydra.searchpath=[{','.join('file://' + d for d in dirs)}]"] if dirs else []
    first = None
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for variant in variants:
            try:
                cfg = compose(config_name=command, overrides=search + variant)
            except (HydraException, OmegaConfBaseException) as e:
                fail(_explain(e, command, variant))
            if command == "train":
                loader = GlobalHydra.instance().config_loader()
                _check_experiment(variant, loader.get_group_options("experiment", overrides=search))
            try:
                check_resolves(cfg)
                validate(cfg, COMMANDS[command].info.get("groups", ()), COMMANDS[command].config)
            except UserError as e:
                fail(str(e))
            first = cfg if first is None else first
    return first


def positional_runs(args: list[str]) -> list[str]:
    """`convnlp report DIR [DIR ...]`: plain arguments become the override runs=[...]."""
    paths, skip = [], False
    for arg in args:  # not the values of flags that take one (--config-dir DIR)
        if not skip and "=" not in arg and not arg.startswith("-"):
            paths.append(arg)
        skip = arg in VALUE_FLAGS
    if not paths:
        return args
    quoted = ",".join("'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in paths)
    return [a for a in args if a not in paths] + [f"runs=[{quoted}]"]


def auto_shorthand(args: list[str]) -> list[str]:
    """``convnlp train auto=true``: short for ``auto.enabled=true`` (``auto`` also holds the race's
    settings, auto.recipes and the like)."""
    return [f"auto.enabled={a.split('=', 1)[1]}" if a.startswith("auto=") else a for a in args]


def main(argv: list[str] | None = None) -> None:
    try:
        dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        reader_left()


def reader_left() -> None:
    """`convnlp predict ... | head -1`: the reader of our output left. Exit quietly, as Unix
    filters do (status 141, as if killed by SIGPIPE), without a traceback and without a second
    error when Python flushes standard output at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


def claim_run_dir(command: str, multirun: bool, root: Path = Path("outputs")) -> Path:
    """A new run (or sweep) directory ``outputs/<command>[-multirun]/<date>_<time>``, created
    here with an exclusive mkdir: runs started in the same second get ``_2``, ``_3``, ... and two
    processes can never share one directory, on one machine or on a shared file system."""
    parent = root / (f"{command}-multirun" if multirun else command)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 10_000):
        path = parent / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"{parent}: cannot create a new run directory for {stamp}")


def terminated(command: str) -> None:
    """SIGTERM (a scheduler's preemption, `timeout`, `kill`): say so in the run's log and exit as
    a terminated process does (128 + 15); a checkpoint being written is left whole (the old one).
    Rank 0 of several processes says it on standard error too, first: torchrun stops every process
    when one of them fails, and kills those still there 30 s later."""
    world = distributed.world()
    if world.distributed and world.main:
        # os.write, not print: this runs in a signal handler, which may have interrupted a write to
        # sys.stderr (print would raise "reentrant call"), and one write keeps the line whole
        line = (
            f"convnlp: error: rank 0 of {world.size} stopped by SIGTERM (the job was stopped, or torchrun stopped "
            f"all processes because one failed: then its error is above); continue with trainer.resume=true\n"
        )
        os.write(sys.stderr.fileno(), line.encode())
    message = "terminated by SIGTERM" + ("; continue it with trainer.resume=true" if command == "train" else "")
    _log_to_files(logging.ERROR, message)
    sys.exit(143)


def _log_to_files(level: int, message: str, exc_info=None) -> None:
    """Write to the run's log file (train.log) only: standard error gets its own one line."""
    record = logging.getLogger("convnlp").makeRecord("convnlp", level, __file__, 0, message, None, exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


COMPLETION = """# convnlp's shell completion: eval "$(convnlp -sc install=bash)" (in ~/.bashrc to keep it)
_convnlp_completion()
{
    local words=($COMP_LINE)
    local word=${words[$COMP_CWORD]}
    if (( COMP_CWORD <= 1 )); then
        COMPREPLY=($(compgen -W "%s --help --version" -- "$word"))
        return
    fi
    # Hydra completes the overrides of one command's config: hand it the line without the command
    local line="convnlp ${COMP_LINE#*[[:space:]]${words[1]}}"
    local choices=$(COMP_POINT=${#line} COMP_LINE="$line" convnlp ${words[1]} -sc query=bash 2>/dev/null)
    COMPREPLY=($(compgen -o nospace -o default -W "$choices" -- "$word"))
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _convnlp_completion convnlp
"""


def shell_completion(argv: list[str]) -> bool:
    """``-sc install=bash`` / ``uninstall=bash`` (zsh: the same, after ``autoload bashcompinit &&
    bashcompinit``), with or without a command: a completion for ``convnlp`` that completes the
    command, then hands the overrides to Hydra's completion of that command's config (Hydra's own
    script would register the command name as a program of its own). ``query=`` is Hydra's."""
    for i, arg in enumerate(argv):
        if arg in ("-sc", "--shell-completion") and i + 1 < len(argv):
            action, _, shell = argv[i + 1].partition("=")
            break
    else:
        return False
    if action == "query":
        return False
    if action not in ("install", "uninstall") or shell not in ("bash", "zsh"):
        fail(
            f"-sc {argv[i + 1]}: give install=bash or uninstall=bash (zsh: the same after "
            "`autoload bashcompinit && bashcompinit`)"
        )
    names = " ".join(e.name for e in commands())
    print(COMPLETION % names if action == "install" else "complete -r convnlp 2> /dev/null")
    return True


def version() -> str:
    import torch

    return f"convnlp {__version__} (torch {torch.__version__}, Python {sys.version.split()[0]})"


def join_processes(command: str, args: list[str], multirun: bool, cfg: DictConfig) -> list[str]:
    """Under torchrun: join the other processes of this training, and share rank 0's run
    directory (rank 0 alone writes into it)."""
    if command != "train":
        fail(
            f"torchrun starts several processes to train one model; `convnlp {command}` runs in one process "
            f"(run it without torchrun)"
        )
    if multirun:
        fail(
            "torchrun trains one model; a sweep (-m) launches its jobs itself: run the sweep without torchrun, "
            "with hydra/launcher=slurm (its tasks_per_node trains each job on several processes)"
        )
    try:
        world = distributed.start(cfg.trainer.device, cfg.trainer.ddp_backend, cfg.trainer.ddp_timeout_minutes)
        given = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("hydra.run.dir=")]
        run_dir = given[-1] if given else None
        if run_dir is None and world.main:  # absolute: other machines share it through a shared file system
            run_dir = str(claim_run_dir(command, False).resolve())
        run_dir = distributed.Sync(world, distributed.device(world, cfg.trainer.device)).from_main(run_dir)
    except UserError as e:
        fail(str(e))
    except (OSError, RuntimeError) as e:
        fail(f"data-parallel training: {str(e).strip().splitlines()[0]}")
    args = [a for a in args if not a.lstrip("+").startswith("hydra.run.dir=")] + [f"hydra.run.dir={run_dir}"]
    return args if world.main else [*args, "hydra.output_subdir=null"]  # rank 0 writes .hydra/


def dispatch(argv: list[str]) -> None:
    logging.raiseExceptions = False  # a log file that cannot be written (disk full) prints no traceback
    # optuna 2 (the Hydra sweeper's) on SQLAlchemy 1.4: a warning about SQLAlchemy 2, which the pins rule out
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("--version", "-V", "version"):
        print(version())
        return
    if shell_completion(argv):
        return
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of: {', '.join(e.name for e in commands())}")
    if command == "report":
        args = positional_runs(args)
    if command == "train":
        args = auto_shorthand(args)
    if not INFO_FLAGS.intersection(args):
        cfg = check_overrides(command, args)
        multirun = "-m" in args or "--multirun" in args
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        if distributed.launched() and (command == "train" or distributed.under_torchrun()):
            args = join_processes(command, args, multirun, cfg)
        elif COMMANDS[command].info.get("run_dir") and not any(a.lstrip("+").startswith(f"{key}=") for a in args):
            try:
                args = [*args, f"{key}={claim_run_dir(command, multirun)}"]
            except (UserError, OSError) as e:
                fail(f"cannot create the run directory: {e}")

    entry = COMMANDS[command]

    def app(cfg: DictConfig):
        signal.signal(signal.SIGTERM, lambda signum, frame: terminated(command))
        try:
            hydra_cfg = HydraConfig.get()
            given = {override_key(o) for o in hydra_cfg.overrides.task}
            if entry.info.get("groups"):
                cfg = validate(cfg, entry.info["groups"], entry.config)
            run_dir = Path(hydra_cfg.runtime.output_dir) if entry.info.get("run_dir") else None
            return entry.target(cfg, run_dir, given)
        except UserError as e:  # the reason goes to the run's log too, not only to the terminal
            _log_to_files(logging.ERROR, f"failed: {e}")
            fail(str(e))
        except BrokenPipeError:
            reader_left()
        except KeyboardInterrupt:
            _log_to_files(logging.ERROR, "interrupted (Ctrl-C)")
            raise
        except Exception as e:
            _log_to_files(logging.ERROR, f"failed: {type(e).__name__}: {e}", sys.exc_info())
            lost = distributed.lost_peer(e)
            if lost:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's stop follows: this line says it all
                world = distributed.world()
                fail(
                    f"rank {world.rank} of {world.size}: another process of this training is gone ({lost}); "
                    f"torchrun names the one that failed; continue with trainer.resume=true"
                )
            raise

    app.__name__ = command
    sys.argv = [f"convnlp {command}", *args]
    hydra.main(config_path="pkg://convnlp.conf", config_name=command, version_base="1.3")(app)()


if __name__ == "__main__":
    main()
