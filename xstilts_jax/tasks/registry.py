"""The task registry: name -> :class:`~xstilts_jax.tasks.spec.TaskSpec`, and the lists the grid
enumerates (``task_names(role="target")``, the nine intermediate tasks, XTREME's groups).

It starts as the catalog; ``register_task`` adds a spec at run time (a user's own task, the
demo's synthetic ones), which then reads, trains and evaluates like any other.
"""

from __future__ import annotations

from xstilts_jax.tasks.catalog import TASKS as _CATALOG
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.spec import TaskSpec


class UnknownTaskError(DataError):
    """A task name that is not registered; the message lists the known names."""


_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Add ``spec`` to the registry; a name already there is an error unless ``replace``."""
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"expected a TaskSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ValueError(f"task {spec.name!r} is defined twice")
    _REGISTRY[spec.name] = spec
    return spec


for _spec in _CATALOG:
    register_task(_spec)


def task_names(role: str | None = None, family: str | None = None) -> tuple[str, ...]:
    """Registered task names, sorted; only those with ``role`` (target, intermediate: the
    paper's nine, retrieval, extra) and of ``family``, when given."""
    return tuple(sorted(name for name, spec in _REGISTRY.items()
                        if (role is None or role in spec.roles)
                        and (family is None or spec.family == family)))


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: "
                               f"{', '.join(task_names())}") from None


def as_task(task: TaskSpec | str) -> TaskSpec:
    """A spec, given one or its registered name."""
    return task if isinstance(task, TaskSpec) else get_task(task)


def xtreme_groups() -> dict[str, tuple[str, ...]]:
    """XTREME's task groups (classification, tagging, qa, retrieval), each with its tasks in
    the catalog's order: what XTREME's summary averages."""
    groups: dict[str, list[str]] = {}
    for spec in _REGISTRY.values():
        if spec.xtreme_group is not None:
            groups.setdefault(spec.xtreme_group, []).append(spec.name)
    return {group: tuple(names) for group, names in groups.items()}


__all__ = ["UnknownTaskError", "as_task", "get_task", "register_task", "task_names", "xtreme_groups"]
