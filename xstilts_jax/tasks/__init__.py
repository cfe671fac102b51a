"""Tasks: what each task is and where its data lives (``catalog/``, one spec per task), how its
files are read (``formats/``, ``sources/``), and how each family featurizes, predicts and is
scored (``families/``).

Layers inside: ``io`` and ``examples`` at the bottom; ``spec``; ``formats``; ``catalog`` and
``registry``; ``sources``; ``families`` on top (imported as ``xstilts_jax.tasks.families``,
not from here: it needs the models). :func:`read` is what phases read through.
"""

from __future__ import annotations

import os

from xstilts_jax.tasks.examples import BuccData
from xstilts_jax.tasks.io import DataError, ReadResult
from xstilts_jax.tasks.registry import (UnknownTaskError, as_task, get_task, register_task,
                                        task_names, xtreme_groups)
from xstilts_jax.tasks.sources import SOURCES, read_split
from xstilts_jax.tasks.spec import TaskSpec

ROLE_SPLITS = ("train", "dev", "test", "translate_train")


def read(task: TaskSpec | str, data_dir: str | os.PathLike | None, split: str,
         language: str | None = None, *, source: str = "files",
         tfds_dir: str | None = None) -> ReadResult | BuccData:
    """The examples a phase or an evaluation reads: ``split`` is a role, ``train`` / ``dev``
    (the task's training and model-selection data, in its training language: ``language``
    defaults to it), ``test`` (its zero-shot evaluation split, in any of its languages) or
    ``translate_train`` (machine translations of its training data)."""
    task = as_task(task)
    language = task.train_language if language is None else language
    if split == "test":
        if task.test_split is None:
            raise DataError(f"task {task.name!r} has no test split (it is English-only: an "
                            f"intermediate task)")
        if language not in task.languages:
            raise DataError(f"task {task.name!r} has no language {language!r}; its "
                            f"languages: {' '.join(task.languages)}")
        name = task.test_split
    elif split in ("train", "dev"):
        name = task.train_split if split == "train" else task.dev_split
        if name is None:
            raise DataError(f"task {task.name!r} has no {split} data (it is evaluated, "
                            f"not trained)")
        if language != task.train_language:
            raise DataError(f"task {task.name!r} trains and selects in "
                            f"{task.train_language!r} only, not {language!r}")
    elif split == "translate_train":
        if task.train_split is None:
            raise DataError(f"task {task.name!r} has no training data to translate")
        name = "translate_train"
        if not task.has_split(name):
            raise DataError(f"task {task.name!r} has no machine translations of its training "
                            f"data")
    else:
        raise DataError(f"unknown split {split!r}; use {', '.join(ROLE_SPLITS)}")
    return read_split(task, name, language, data_dir=data_dir, source=source, tfds_dir=tfds_dir)


__all__ = ["ROLE_SPLITS", "SOURCES", "BuccData", "DataError", "ReadResult", "TaskSpec",
           "UnknownTaskError", "as_task", "get_task", "read", "read_split", "register_task",
           "task_names", "xtreme_groups"]
