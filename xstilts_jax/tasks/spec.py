"""One declarative record per task: :class:`TaskSpec` (pure data, no reading).

A spec says what a task is (family, labels, languages, its XTREME group and metric, family
options) and where each of its splits lives: in files under ``data.dir`` (:class:`Location`
candidates, first present wins, read with a format reader of ``sources/files.py``) and in TFDS
(:class:`TfdsDataset` candidates, ``sources/tfds.py``). Everything that lists tasks, locates
files or maps a task to TFDS or to XTREME's scorer derives from the specs in ``catalog/``:
adding a task is one spec (plus a format reader if its format is new).

Patterns and TFDS names may hold ``{lang}`` and the names of the spec's ``placeholders`` tables
(e.g. ``{code3}``: Tatoeba's ISO 639-3 code of the language), filled per language.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Mapping

from xstilts_jax.tasks.io import DataError

FAMILY_NAMES = ("classification", "tagging", "qa", "multiple_choice", "supertagging", "retrieval")
ROLES = ("target", "intermediate", "retrieval", "extra", "demo")
XTREME_GROUPS = ("classification", "tagging", "qa", "retrieval")
# XTREME's official metric per kind (``metrics.py``): what a task's predictions are scored by.
METRICS = ("accuracy", "tagging_f1", "squad", "mlqa", "bucc_f1")


@dataclasses.dataclass(frozen=True)
class Location:
    """A candidate location of a split's files: ``patterns`` relative to ``data.dir``, all of
    which must exist (one with ``*`` is a glob that must match at least one file), read with
    the format reader ``format``; ``origin`` says whose layout it is and ``note`` what to know
    when it is only partly there."""

    patterns: tuple[str, ...]
    format: str
    origin: str = ""
    note: str = ""


def at(format: str, *patterns: str, origin: str = "", note: str = "") -> Location:
    return Location(tuple(patterns), format, origin, note)


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
    """Where a split lives in TFDS: a builder, its config and split (each may hold ``{lang}``
    and placeholders), and which record reader of ``sources/tfds.py`` turns records into the
    family's examples."""

    builder: str
    config: str | None
    split: str
    reader: str

    def name(self, fill) -> str:
        """``builder[/config]`` with the placeholders filled by ``fill``."""
        return self.builder if self.config is None else f"{self.builder}/{fill(self.config)}"


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a task.

    ``parts``: read in order and concatenated (ANLI's three rounds); each part is a tuple of
    candidate locations, the first present is read. ``languages``: those the split exists in
    (None: the training language for ``train``, the task's languages otherwise).
    ``translates``: a split of machine translations of another split of the task (``train``);
    in that split's languages (English) it is the original itself. ``same_as``: the split is
    another task's (XQuAD trains on SQuAD: ``("squad", "train")``). ``tfds``: its parts in TFDS
    (None: not there, ``tfds_note`` says why).
    """

    name: str
    parts: tuple[tuple[Location, ...], ...] = ()
    languages: tuple[str, ...] | None = None
    translates: str | None = None
    same_as: tuple[str, str] | None = None
    tfds: tuple[tuple[TfdsDataset, ...], ...] | None = None
    tfds_note: str = ""

    def __post_init__(self) -> None:
        if self.same_as is None and (not self.parts or not all(self.parts)):
            raise ValueError(f"split {self.name!r}: every part needs a candidate location")
        if self.same_as is not None and self.parts:
            raise ValueError(f"split {self.name!r} is {self.same_as}: it has no parts of its own")
        if self.languages is not None and not self.languages:
            raise ValueError(f"split {self.name!r}: languages=() (use None for the default)")


def split(name: str, *candidates: Location, languages: tuple[str, ...] | None = None,
          translates: str | None = None, tfds: tuple[TfdsDataset, ...] | None = None,
          tfds_note: str = "") -> Split:
    """A split read from one place: the first of ``candidates`` present (and in TFDS, the
    first of ``tfds`` prepared)."""
    return Split(name, (candidates,), languages, translates,
                 tfds=None if tfds is None else (tfds,), tfds_note=tfds_note)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A task: what it is, where its data lives, how it is scored.

    ``train_split`` / ``dev_split`` name the splits a phase trains and selects checkpoints on
    (in ``train_language``); ``test_split`` the split its zero-shot languages are evaluated
    on (None: not a zero-shot target). ``roles``: what the grid does with it (``target``,
    ``intermediate``: one of the paper's nine, ``retrieval``, ``extra``: trainable, in neither
    list). ``metric`` and ``xtreme_group`` are XTREME's scorer's (targets and retrieval).
    ``labels`` is () where the family has none (QA, retrieval) or makes them from the training
    data (CCG supertags). Family options: ``qa_version`` ("2.0": unanswerable questions),
    ``answer_normalization`` ("mlqa": MLQA's per-language normalisation), ``num_choices``
    (multiple choice), ``max_length`` (the configs' sequence length).

    ``train_examples``: the number of training examples of the published English training split
    the task trains on (``train_split`` in ``train_language``), as the paper / jiant / XTREME
    uses it; None when unknown. Used only for planning costs before the data is present (never
    to check or cut what is read); for QA tasks it counts questions, not the windows a long
    context is featurized into.
    """

    name: str
    family: str
    roles: tuple[str, ...]
    labels: tuple[str, ...]
    languages: tuple[str, ...]
    splits: tuple[Split, ...]
    train_split: str | None = "train"
    dev_split: str | None = "dev"
    test_split: str | None = None
    train_language: str = "en"
    xtreme_group: str | None = None
    metric: str | None = None
    max_length: int = 128
    qa_version: str = "1.1"
    answer_normalization: str = "squad"
    num_choices: int = 0
    placeholders: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    description: str = ""
    train_examples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "placeholders", types.MappingProxyType(
            {k: types.MappingProxyType(dict(v)) for k, v in self.placeholders.items()}))
        problems = []
        if self.family not in FAMILY_NAMES:
            problems.append(f"family {self.family!r} is not one of {', '.join(FAMILY_NAMES)}")
        problems += [f"role {r!r} is not one of {', '.join(ROLES)}" for r in self.roles
                     if r not in ROLES]
        if self.xtreme_group is not None and self.xtreme_group not in XTREME_GROUPS:
            problems.append(f"xtreme_group {self.xtreme_group!r} is not one of "
                            f"{', '.join(XTREME_GROUPS)}")
        if self.metric is not None and self.metric not in METRICS:
            problems.append(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        names = [s.name for s in self.splits]
        if len(set(names)) != len(names):
            problems.append(f"splits repeat: {', '.join(names)}")
        for role_split in (self.train_split, self.dev_split, self.test_split):
            if role_split is not None and role_split not in names:
                problems.append(f"split {role_split!r} is not one of its splits "
                                f"({', '.join(names)})")
        for s in self.splits:
            if s.translates is not None and s.translates not in names:
                problems.append(f"split {s.name!r} translates {s.translates!r}, which the task "
                                f"does not have")
        if self.train_split is not None and self.train_language not in self.languages:
            problems.append(f"train_language {self.train_language!r} is not one of its "
                            f"languages")
        if self.train_examples is not None and (self.train_split is None
                                                or self.train_examples <= 0):
            problems.append(f"train_examples={self.train_examples}: only a task with a "
                            f"train_split has them, and more than 0")
        if problems:
            raise ValueError(f"task spec {self.name!r}: " + "; ".join(problems))

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.splits)

    def has_split(self, name: str) -> bool:
        return name in self.split_names

    def split(self, name: str) -> Split:
        for s in self.splits:
            if s.name == name:
                return s
        raise DataError(f"task {self.name!r} has no split {name!r}; its splits: "
                        f"{', '.join(self.split_names)}")

    def split_languages(self, name: str) -> tuple[str, ...]:
        """Every language split ``name`` can be read in: its own (see :class:`Split`) or, for a
        split of translations, those and the languages of the split it translates, sorted."""
        spec = self.split(name)
        if spec.languages is not None:
            own = spec.languages
        else:
            own = (self.train_language,) if name == self.train_split else self.languages
        if spec.translates is None:
            return own
        return tuple(sorted(set(own) | set(self.split_languages(spec.translates))))

    @property
    def translate_train_languages(self) -> tuple[str, ...]:
        """The languages of the machine translations of the training data (split
        ``translate_train``), sorted; () when the task has none. The training language is not
        one of them: ``translate_train`` in it is the training data itself."""
        if not self.has_split("translate_train"):
            return ()
        return tuple(lang for lang in self.split_languages("translate_train")
                     if lang != self.train_language)

    @property
    def trainable(self) -> bool:
        return self.train_split is not None and self.dev_split is not None

    def fill(self, text: str, language: str) -> str:
        """``text`` with ``{lang}`` and the placeholders of ``language`` filled in."""
        values = {name: table[language] for name, table in self.placeholders.items()
                  if language in table}
        return text.format(lang=language, **values)


__all__ = ["FAMILY_NAMES", "METRICS", "ROLES", "XTREME_GROUPS", "Location", "Split", "TaskSpec",
           "TfdsDataset", "at", "split"]
