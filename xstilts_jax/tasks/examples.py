"""The example types every source (files, TFDS) produces and every family featurizes.

One type per kind of data, whatever the file format it was read from: a reader of a new
format returns one of these, and the family of its task featurizes it unchanged.
"""

from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True, slots=True)
class PairExample:
    """A sentence pair (NLI, paraphrase) or a single sentence (SST-2) with its label."""

    guid: str  # "<file relative to data_dir>:<line>", 1-based physical line, or a record id
    text_a: str
    text_b: str | None  # None: a single-sentence task (SST-2)
    label: int  # index into the task's labels
    language: str


@dataclasses.dataclass(frozen=True, slots=True)
class QAExample:
    """An extractive-QA question with its context and gold answers (SQuAD's JSON)."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (text, answer_start): character offset in context
    title: str
    paragraph: int  # 0-based index of its paragraph in the file (questions sharing a context)
    is_impossible: bool = False  # SQuAD 2.0: no answer in the context (answers is ())
    language: str = ""  # the file's language (a union of translations keeps them apart)


@dataclasses.dataclass(frozen=True, slots=True)
class TaggedSentence:
    """Words and one tag per word (UPOS, PAN-X's IOB2 entities, CCG supertags)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    guid: str = ""  # "<file name>:<line of its first word>"


@dataclasses.dataclass(frozen=True, slots=True)
class TranslationPair:
    """A sentence and its English translation (Tatoeba)."""

    source: str
    english: str  # the translation of source (Tatoeba: line i of one file, line i of the other)
    guid: str = ""  # "<source file name>:<line>"


@dataclasses.dataclass(frozen=True, slots=True)
class MCExample:
    """A multiple-choice question: a prompt and its choices, the label the right one."""

    guid: str  # "<file relative to data_dir or name>:<line>" (1-based), or a TFDS record id
    prompt: str  # the first segment: context (and question)
    choices: tuple[str, ...]  # the second segment of each pair, one per choice
    label: int  # index of the correct choice
    language: str = "en"


@dataclasses.dataclass(frozen=True)
class BuccData:
    """One BUCC 2018 language pair and split: the sentences of each side by id (file order)
    and the gold (source id, English id) pairs, or None where the layout has no gold file.

    TFDS's ``bucc`` builder keeps only the sentences of gold pairs (``complete`` False):
    mining over those alone is much easier than BUCC 2018, and its F1 is not XTREME's."""

    language: str
    source: dict[str, str]
    english: dict[str, str]
    gold: tuple[tuple[str, str], ...] | None
    files: tuple[pathlib.Path, ...]  # source, English and (when read) gold file
    complete: bool = True  # both monolingual pools whole, as BUCC's files have them

    @property
    def path(self) -> pathlib.Path:
        return self.files[0]

    @property
    def skipped(self) -> dict[str, int]:
        return {}

    def __len__(self) -> int:
        return len(self.source)


__all__ = ["BuccData", "MCExample", "PairExample", "QAExample", "TaggedSentence",
           "TranslationPair"]
