"""Task registry: task name -> Task (family, labels, languages, where its English training and
dev data come from), and the one ``read`` that every phase and evaluation uses.

The files of each task are found by :mod:`classification` (sentence-pair tasks) or
:mod:`layout` (tagging, QA, retrieval), or read from TFDS (:mod:`xstilts_jax.data.tfds_source`)
when ``source="tfds"``; both give the same example types.
"""

from __future__ import annotations

import dataclasses
import os

from xstilts_jax.tasks import classification, layout, multiple_choice
from xstilts_jax.tasks.classification import ClassificationTask, DataError
from xstilts_jax.tasks.readers import PANX_LABELS, UPOS_TAGS

SOURCES = ("files", "tfds")


class UnknownTaskError(ValueError):
    """A task name that is not registered; the message lists the known names."""


@dataclasses.dataclass(frozen=True)
class Task:
    """A task as phases see it: ``train``/``dev`` name the (data task, split) of its English
    training and model-selection data (XQuAD trains on SQuAD), ``test_split`` the split its
    zero-shot languages are evaluated on (None: an English-only intermediate task)."""

    name: str
    family: str  # classification | tagging | qa | retrieval (a key of families.FAMILIES)
    labels: tuple[str, ...]  # () for QA and retrieval
    languages: tuple[str, ...]
    train: tuple[str, str] | None
    dev: tuple[str, str] | None
    test_split: str | None = "test"
    train_language: str = "en"

    def read(self, data_dir: str | os.PathLike, split: str, language: str | None = None, *,
             source: str = "files", tfds_dir: str | None = None):
        """The examples of ``split`` ("train", "dev", "test", or "translate_train": machine
        translations of the English training data) in ``language`` (default: English): a
        ReadResult of the family's example type."""
        language = self.train_language if language is None else language
        if split == "test":
            if self.test_split is None:
                raise DataError(f"task {self.name!r} has no test split (it is English-only: an "
                                f"intermediate task)")
            if language not in self.languages:
                raise DataError(f"task {self.name!r} has no language {language!r}; its "
                                f"languages: {' '.join(self.languages)}")
            where = (self.name, self.test_split)
        elif split in ("train", "dev"):
            where = self.train if split == "train" else self.dev
            if where is None:
                raise DataError(f"task {self.name!r} has no {split} data (it is evaluated, "
                                f"not trained)")
            if language != self.train_language:
                raise DataError(f"task {self.name!r} trains and selects in "
                                f"{self.train_language!r} only, not {language!r}")
        elif split == "translate_train":
            if self.train is None:
                raise DataError(f"task {self.name!r} has no training data to translate")
            where = (self.train[0], "translate_train")
        else:
            raise DataError(f"unknown split {split!r}; use train, dev, test or translate_train")
        return read_data(*where, language, data_dir=data_dir, source=source, tfds_dir=tfds_dir)


def read_data(data_task: str, split: str, language: str, *, data_dir, source: str = "files",
              tfds_dir: str | None = None):
    """One split of one data source: classification's and layout's files, or TFDS."""
    if source == "tfds":
        from xstilts_jax.data.tfds_source import read_tfds

        return read_tfds(data_task, split, language, data_dir=tfds_dir or None)
    if source != "files":
        raise DataError(f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
    if data_task in _CLASSIFICATION:
        return classification.read_split(_CLASSIFICATION[data_task], data_dir, split, language)
    return layout.read(data_task, data_dir, split, language)


_CLASSIFICATION: dict[str, ClassificationTask] = {t.name: t for t in classification.TASKS}


def _classification(spec: ClassificationTask) -> Task:
    return Task(spec.name, "classification", spec.labels, spec.languages,
                train=(spec.name, "train"), dev=(spec.name, spec.dev_split),
                test_split=spec.test_split)


def _registry(*tasks: Task) -> dict[str, Task]:
    registry: dict[str, Task] = {}
    for task in tasks:
        if task.name in registry:
            raise ValueError(f"task {task.name!r} is defined twice")
        registry[task.name] = task
    return registry


TASKS: dict[str, Task] = _registry(
    *(_classification(spec) for spec in classification.TASKS),
    Task("udpos", "tagging", UPOS_TAGS, layout.LANGUAGES["udpos"], ("udpos", "train"),
         ("udpos", "dev")),
    Task("panx", "tagging", PANX_LABELS, layout.LANGUAGES["panx"], ("panx", "train"),
         ("panx", "dev")),
    Task("squad", "qa", (), ("en",), ("squad", "train"), ("squad", "dev"), test_split=None),
    Task("squad_v2", "qa", (), ("en",), ("squad_v2", "train"), ("squad_v2", "dev"),
         test_split=None),
    # CCG supertags: the label set is made from the training data (families._Supertagging).
    Task("ccg", "supertagging", (), ("en",), ("ccg", "train"), ("ccg", "dev"), test_split=None),
    # XQuAD's English test questions are SQuAD v1.1 dev questions: selecting on SQuAD dev
    # sees them (XTREME trains a fixed number of epochs instead; set patience/eval_every).
    Task("xquad", "qa", (), layout.LANGUAGES["xquad"], ("squad", "train"), ("squad", "dev")),
    Task("mlqa", "qa", (), layout.LANGUAGES["mlqa"], ("squad", "train"), ("mlqa", "dev")),
    # TyDiQA-GoldP has no test split: XTREME tests on its dev files, so the English dev set
    # that selects checkpoints is also the English test set.
    Task("tydiqa", "qa", (), layout.LANGUAGES["tydiqa"], ("tydiqa", "train"), ("tydiqa", "dev")),
    # Multiple-choice intermediate tasks (English only; labels name the choices).
    *(Task(name, "multiple_choice", labels, ("en",), (name, "train"), (name, "dev"),
           test_split=None)
      for name, labels in (("hellaswag", ("0", "1", "2", "3")), ("cosmosqa", ("0", "1", "2", "3")),
                           ("commonsenseqa", multiple_choice.COMMONSENSEQA_LABELS))),
    Task("bucc2018", "retrieval", (), layout.LANGUAGES["bucc2018"], None, None),
    Task("tatoeba", "retrieval", (), layout.LANGUAGES["tatoeba"], None, None),
)


def task_names() -> tuple[str, ...]:
    return tuple(sorted(TASKS))


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: "
                               f"{', '.join(task_names())}") from None


__all__ = ["SOURCES", "TASKS", "DataError", "Task", "UnknownTaskError", "get_task", "read_data",
           "task_names"]
