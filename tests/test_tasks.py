"""The task contract (convnlp.tasks.Task): every task module satisfies it, with the protocol's
parameter names, so the trainer, eval and predict can call any task the same way."""

import inspect

from convnlp.registry import TASKS
from convnlp.tasks import Task


def test_every_task_module_satisfies_the_task_protocol():
    members = [name for name, value in vars(Task).items() if not name.startswith("_") and inspect.isfunction(value)]
    assert len(members) == 12
    for name, module in ((e.name, e.target) for e in TASKS.entries()):
        assert isinstance(module, Task), name
        assert isinstance(module.COLUMNS, tuple) and len(module.COLUMNS) in (1, 2)  # an autoencoder: text only
        assert isinstance(module.OUTPUT_FIELDS, tuple) and module.OUTPUT_FIELDS
        for member in members:
            expected = list(inspect.signature(getattr(Task, member)).parameters)[1:]  # less self
            assert list(inspect.signature(getattr(module, member)).parameters) == expected, (name, member)
