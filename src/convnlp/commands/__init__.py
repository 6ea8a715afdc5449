"""The commands of ``convnlp <command>``, one file each. A command file declares its own settings
(the keys of ``conf/<command>.yaml`` besides the config groups) as a dataclass and registers its
``run(cfg, run_dir)`` with ``@COMMANDS.register(Config, name=..., ...)`` (``convnlp.registry``):

- ``summary``: its line in ``convnlp --help``; ``examples``: command lines shown under it;
- ``groups``: the config groups its config holds (validated against their schemas);
- ``run_dir``: whether it writes a run directory (``outputs/<command>/<date>_<time>``);
- ``order``: where ``convnlp --help`` lists it.

A command file imports little at its top (``convnlp --help`` reads every one of them); what it
runs, it imports when it runs. Adding a command is its file here and ``conf/<command>.yaml``.
"""
