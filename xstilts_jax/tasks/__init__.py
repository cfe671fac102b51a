"""Task registry: task name -> Task (labels, languages, readers), one module per task family."""

from __future__ import annotations

from xstilts_jax.tasks import classification
from xstilts_jax.tasks.classification import ClassificationTask, DataError

Task = ClassificationTask  # widen to a Union as other task families arrive


class UnknownTaskError(ValueError):
    """A task name that is not registered; the message lists the known names."""


def _registry(*families) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for family in families:
        for task in family:
            if task.name in tasks:
                raise ValueError(f"task {task.name!r} is defined twice")
            tasks[task.name] = task
    return tasks


TASKS: dict[str, Task] = _registry(classification.TASKS)


def task_names() -> tuple[str, ...]:
    return tuple(sorted(TASKS))


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: "
                               f"{', '.join(task_names())}") from None


__all__ = ["TASKS", "ClassificationTask", "DataError", "Task", "UnknownTaskError", "get_task",
           "task_names"]
