"""Where examples come from: ``files`` (``data.dir``, the spec's locations) or ``tfds``
(prepared TFDS datasets). Both give the same example types for the same (task, split,
language); :func:`read_split` is the one entry every phase, evaluation and retrieval uses."""

from __future__ import annotations

import os

from xstilts_jax.tasks.examples import BuccData
from xstilts_jax.tasks.io import DataError, ReadResult
from xstilts_jax.tasks.registry import as_task
from xstilts_jax.tasks.sources import files
from xstilts_jax.tasks.spec import TaskSpec

SOURCES = ("files", "tfds")


def read_split(task: TaskSpec | str, split: str, language: str, *,
               data_dir: str | os.PathLike | None = None, source: str = "files",
               tfds_dir: str | None = None) -> ReadResult | BuccData:
    """``task``'s declared ``split`` in ``language`` from ``source``: the files under
    ``data_dir`` or the TFDS datasets prepared in ``tfds_dir``."""
    task = as_task(task)
    if source == "tfds":
        from xstilts_jax.tasks.sources import tfds  # imports tensorflow_datasets lazily itself

        return tfds.read_tfds(task, split, language, data_dir=tfds_dir or None)
    if source != "files":
        raise DataError(f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
    if data_dir is None:
        raise DataError(f"task {task.name!r}: data.source 'files' needs data.dir")
    return files.read_split(task, data_dir, split, language)


__all__ = ["SOURCES", "read_split"]
