"""Multiple-choice formats (HellaSwag, CosmosQA, CommonsenseQA) as the releases ship them.

One example is a prompt and a fixed number of choices; the model scores each (prompt, choice)
pair and a softmax over the choices picks the answer. X-STILTs (Phang et al., 2020) ran these
intermediate tasks with jiant; prompts and choices are built as jiant's task classes build
them (``nyu-mll/jiant``, ``jiant/tasks/lib/{hellaswag,cosmosqa,commonsenseqa}.py``).

Release formats read here (``read_file(path, format)``, or the ``read_<task>`` functions):

HellaSwag (rowanz/hellaswag, ``data/hellaswag_{train,val,test}.jsonl``; format
``hellaswag_jsonl``): one JSON object a line with ``ind, activity_label, ctx_a, ctx_b, ctx,
split, split_type, label, endings, source_id``; ``endings`` is a list of exactly 4 strings,
``label`` an integer 0-3 (the test file has no ``label``). Used: ``ind`` (the id), ``ctx_a``,
``ctx_b``, ``endings``, ``label``.

- prompt = ``ctx_a``; choice i = ``(ctx_b + " " + endings[i]).strip()``. This is jiant's
  ``HellaSwagTask`` (prompt ``ctx_a``, choices ``ctx_b + " " + ending``) and the dataset
  authors' own BERT runner (``hellaswag_models/bert/run_bert.py``: ``ctx_a`` as segment A,
  ``"{ctx_b} {ending}"`` as segment B, the bare ending when ``ctx_b`` is empty, as it is for most
  WikiHow items). The ``.strip()`` gives that bare ending instead of jiant's leading space; for
  XLM-R it changes nothing (its tokenizer drops leading and repeated spaces), for other
  tokenizers it avoids a spurious space token. ``ctx`` (= ``ctx_a + " " + ctx_b``) is not used:
  splitting it as above keeps the last, incomplete sentence with the endings it continues.

CosmosQA (wilburOne/cosmosqa, ``data/train.csv``, ``data/valid.csv``; format
``cosmosqa_csv``): a header row ``id,context,question,answer0,answer1,answer2,answer3,label``
(columns found by name) and records quoted as Python's ``csv`` module writes and reads them
(default dialect: fields holding ``,``, ``"`` or newlines are ``"``-quoted with ``""`` for a
quote; a record may span several physical lines). The jsonl variant (``train.jsonl``,
``valid.jsonl``, and the release's unlabelled ``test.jsonl``; format ``cosmosqa_jsonl``) has
the same keys, one object a line, ``label`` an integer or a decimal string.

- prompt = ``context + " " + question``, as jiant's ``CosmosQATask``; choices ``answer0..3``;
  label 0-3. (HF's ``run_swag``-style scripts put the question with each answer instead; jiant
  is what X-STILTs used.)
- CSV line numbers (in errors and guids) are the physical line where the record starts; an
  embedded ``\\r\\n`` inside a quoted field is read as ``\\n``.

CommonsenseQA (``train_rand_split.jsonl``, ``dev_rand_split.jsonl``,
``test_rand_split_no_answers.jsonl``; format ``commonsenseqa_jsonl``): one object a line,
``{"answerKey": "A", "id": ..., "question": {"question_concept": ..., "choices": [{"label": "A",
"text": ...}, ... 5 of them], "stem": ...}}``.

- prompt = ``stem``; choices ordered by label A-E (the release lists them in that order; any
  order is accepted, but each of A-E exactly once); label = index of ``answerKey``, as jiant's
  ``CommonsenseQATask`` (original-format branch).

Policies common to all formats:

- Every text field has its outer whitespace stripped (as the sentence-pair readers of
  the sentence-pair readers do).
- Blank lines (blank records in CSV) are skipped and counted in ``ReadResult.skipped``.
- Ids must be unique in a file: a repeat is a ``DataError`` naming both lines.
- Unlabelled records (the test files) are refused with a hint unless ``allow_unlabelled=True``,
  which reads them with label ``-1`` (for writing predictions; never score those).
- ``guid`` is ``"<guid_prefix>:<line>"``, 1-based physical line, ``guid_prefix`` defaulting to
  the file name (pass a path relative to the data folder where file names repeat: CosmosQA's
  ``train.csv``).
- Any other bad input raises :class:`DataError` ``"<file>:<line>: <what is wrong>"``; a file
  with no examples is an error. UTF-8 is required (a BOM is allowed).

Featurization and predictions: ``tasks/families/multiple_choice.py``.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
from typing import Callable, Iterator, Sequence

from xstilts_jax.tasks.examples import MCExample
from xstilts_jax.tasks.io import (SKIP_BLANK_LINE, DataError, ReadResult, Skips, check_file,
                                  read_lines)

UNLABELLED = -1  # label of examples read with allow_unlabelled=True

HELLASWAG_NUM_CHOICES = 4
COSMOSQA_NUM_CHOICES = 4
COMMONSENSEQA_LABELS = ("A", "B", "C", "D", "E")
COSMOSQA_COLUMNS = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3",
                    "label")


# --------------------------------------------------------------------------- helpers


class _Collector:
    """Examples of one file: guids, duplicate-id and label checks, skip counts."""

    def __init__(self, path: pathlib.Path, guid_prefix: str | None, language: str,
                 allow_unlabelled: bool):
        self.path, self.language, self.allow_unlabelled = path, language, allow_unlabelled
        self.guid_prefix = path.name if guid_prefix is None else guid_prefix
        self.examples: list[MCExample] = []
        self.skips = Skips()
        self.ids: dict[str, int] = {}  # id -> line it was first seen on

    def error(self, lineno: int, message: str) -> DataError:
        return DataError(f"{self.path}:{lineno}: {message}")

    def blank(self) -> None:
        self.skips.count(SKIP_BLANK_LINE)

    def label(self, lineno: int, value, num_choices: int, key: str = "label") -> int:
        """An integer (or decimal string) in [0, num_choices); None or "" is an unlabelled
        record (refused unless allow_unlabelled)."""
        if value is None or value == "":
            if not self.allow_unlabelled:
                raise self.error(lineno, f"no {key!r} (an unlabelled test file? only labelled "
                                         f"files are read unless allow_unlabelled=True, which "
                                         f"gives label {UNLABELLED})")
            return UNLABELLED
        if isinstance(value, str) and value.strip().isdecimal():
            index = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            index = value
        else:
            raise self.error(lineno, f"{key} {value!r} is not an integer")
        if not 0 <= index < num_choices:
            raise self.error(lineno, f"{key} {index} is out of range: expected 0 to "
                                     f"{num_choices - 1}")
        return index

    def add(self, lineno: int, id_: str, prompt: str, choices: Sequence[str], label: int) -> None:
        first = self.ids.get(id_)
        if first is not None:
            raise self.error(lineno, f"duplicate id {id_!r} (first on line {first})")
        self.ids[id_] = lineno
        self.examples.append(MCExample(f"{self.guid_prefix}:{lineno}", prompt.strip(),
                                       tuple(c.strip() for c in choices), label, self.language))

    def result(self) -> ReadResult[MCExample]:
        return self.skips.finish(self.path, self.language, self.examples, "examples")


def _get(c: _Collector, lineno: int, record: dict, key: str, kind: type | tuple[type, ...],
         where: str = ""):
    """record[key], which must exist and be of ``kind`` (bool is not an int)."""
    if key not in record:
        raise c.error(lineno, f"field {where}{key!r} is missing")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join({str: "a string", int: "an integer", list: "a list",
                             dict: "an object"}[k] for k in kinds)
        raise c.error(lineno, f"field {where}{key!r} is a {type(value).__name__}, "
                              f"expected {names}")
    return value


def _json_records(c: _Collector) -> Iterator[tuple[int, dict]]:
    """(line, object) of a jsonl file; blank lines are counted and skipped."""
    for lineno, line in read_lines(c.path):
        if not line.strip():
            c.blank()
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise c.error(lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise c.error(lineno, f"expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def _record_id(c: _Collector, lineno: int, record: dict, key: str) -> str:
    return str(_get(c, lineno, record, key, (str, int)))


# --------------------------------------------------------------------------- readers


def _read_hellaswag_jsonl(c: _Collector) -> None:
    for lineno, record in _json_records(c):
        id_ = _record_id(c, lineno, record, "ind")
        ctx_a = _get(c, lineno, record, "ctx_a", str)
        ctx_b = _get(c, lineno, record, "ctx_b", str)
        endings = _get(c, lineno, record, "endings", list)
        if len(endings) != HELLASWAG_NUM_CHOICES:
            raise c.error(lineno, f"{len(endings)} endings, expected {HELLASWAG_NUM_CHOICES}")
        for i, ending in enumerate(endings):
            if not isinstance(ending, str):
                raise c.error(lineno, f"endings[{i}] is a {type(ending).__name__}, "
                                      f"expected a string")
        label = c.label(lineno, record.get("label"), HELLASWAG_NUM_CHOICES)
        c.add(lineno, id_, ctx_a, [(ctx_b + " " + e).strip() for e in endings], label)


def _cosmosqa_example(c: _Collector, lineno: int, fields: dict[str, str], label) -> None:
    prompt = fields["context"].strip() + " " + fields["question"].strip()
    choices = [fields[f"answer{i}"] for i in range(COSMOSQA_NUM_CHOICES)]
    c.add(lineno, fields["id"], prompt, choices,
          c.label(lineno, label, COSMOSQA_NUM_CHOICES))


def _read_cosmosqa_csv(c: _Collector) -> None:
    # _lines decodes (UTF-8, BOM, line numbers); each physical line goes to csv with its
    # ending, so reader.line_num counts physical lines and a record starts at the line after
    # the previous record ended.
    reader = csv.reader((line + "\n" for _, line in read_lines(c.path)), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{c.path}: empty file (expected the header row "
                            f"{','.join(COSMOSQA_COLUMNS)})")
        column = {name.strip(): i for i, name in reversed(list(enumerate(header)))}
        missing = [name for name in COSMOSQA_COLUMNS if name not in column]
        # An unlabelled file (no label column) is a missing label, not a malformed header.
        if missing and missing != ["label"]:
            raise c.error(1, f"the header has no column {', '.join(map(repr, missing))} "
                             f"(header: {','.join(header)})")
        width = len(header)
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not row or (len(row) == 1 and not row[0].strip()):
                c.blank()
                continue
            if len(row) != width:
                raise c.error(start, f"{len(row)} comma-separated fields, the header has "
                                     f"{width}")
            fields = {name: row[column[name]] for name in COSMOSQA_COLUMNS if name in column}
            _cosmosqa_example(c, start, fields, fields.get("label"))
    except csv.Error as e:
        raise c.error(start, f"malformed CSV ({e}; a quoted field that is not closed?)") from None


def _read_cosmosqa_jsonl(c: _Collector) -> None:
    for lineno, record in _json_records(c):
        fields = {"id": _record_id(c, lineno, record, "id")}
        for key in COSMOSQA_COLUMNS[1:-1]:
            fields[key] = _get(c, lineno, record, key, str)
        _cosmosqa_example(c, lineno, fields, record.get("label"))


def _read_commonsenseqa_jsonl(c: _Collector) -> None:
    expected = ", ".join(COMMONSENSEQA_LABELS)
    for lineno, record in _json_records(c):
        id_ = _record_id(c, lineno, record, "id")
        question = _get(c, lineno, record, "question", dict)
        stem = _get(c, lineno, question, "stem", str, "question.")
        raw_choices = _get(c, lineno, question, "choices", list, "question.")
        if len(raw_choices) != len(COMMONSENSEQA_LABELS):
            raise c.error(lineno, f"{len(raw_choices)} choices, expected "
                                  f"{len(COMMONSENSEQA_LABELS)}")
        by_label: dict[str, str] = {}
        for i, choice in enumerate(raw_choices):
            if not isinstance(choice, dict):
                raise c.error(lineno, f"question.choices[{i}] is a {type(choice).__name__}, "
                                      f"expected an object")
            where = f"question.choices[{i}]."
            by_label[_get(c, lineno, choice, "label", str, where)] = _get(
                c, lineno, choice, "text", str, where)
        if sorted(by_label) != list(COMMONSENSEQA_LABELS):
            labels = ", ".join(str(choice["label"]) for choice in raw_choices)
            raise c.error(lineno, f"choice labels {labels}, expected {expected} once each")
        answer = record.get("answerKey")
        if answer is None or answer == "":
            label = c.label(lineno, None, len(COMMONSENSEQA_LABELS), "answerKey")
        elif answer not in COMMONSENSEQA_LABELS:
            raise c.error(lineno, f"answerKey {answer!r} is not one of {expected}")
        else:
            label = COMMONSENSEQA_LABELS.index(answer)
        c.add(lineno, id_, stem, [by_label[k] for k in COMMONSENSEQA_LABELS], label)


FORMATS: dict[str, Callable[[_Collector], None]] = {
    "hellaswag_jsonl": _read_hellaswag_jsonl,
    "cosmosqa_csv": _read_cosmosqa_csv,
    "cosmosqa_jsonl": _read_cosmosqa_jsonl,
    "commonsenseqa_jsonl": _read_commonsenseqa_jsonl,
}


def read_file(path: str | os.PathLike, format: str, *, language: str = "en",
              guid_prefix: str | None = None,
              allow_unlabelled: bool = False) -> ReadResult[MCExample]:
    """Every example of one file in a format of ``FORMATS`` (see the module docstring)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    path = check_file(path)
    collector = _Collector(path, guid_prefix, language, allow_unlabelled)
    FORMATS[format](collector)
    return collector.result()


def read_hellaswag(path: str | os.PathLike, **kwargs) -> ReadResult[MCExample]:
    """A HellaSwag release file (``hellaswag_{train,val}.jsonl``; ``hellaswag_test.jsonl``
    only with ``allow_unlabelled=True``). Keyword arguments as :func:`read_file`."""
    return read_file(path, "hellaswag_jsonl", **kwargs)


def read_cosmosqa(path: str | os.PathLike, **kwargs) -> ReadResult[MCExample]:
    """A CosmosQA release file: ``*.csv`` (``train.csv``, ``valid.csv``) or ``*.jsonl``, by its
    suffix. Keyword arguments as :func:`read_file`."""
    suffix = pathlib.Path(path).suffix.lower()
    formats = {".csv": "cosmosqa_csv", ".jsonl": "cosmosqa_jsonl"}
    if suffix not in formats:
        raise DataError(f"{path}: a CosmosQA file must end in .csv or .jsonl")
    return read_file(path, formats[suffix], **kwargs)


def read_commonsenseqa(path: str | os.PathLike, **kwargs) -> ReadResult[MCExample]:
    """A CommonsenseQA release file (``{train,dev}_rand_split.jsonl``; the test file
    ``test_rand_split_no_answers.jsonl`` only with ``allow_unlabelled=True``). Keyword
    arguments as :func:`read_file`."""
    return read_file(path, "commonsenseqa_jsonl", **kwargs)


__all__ = ["COMMONSENSEQA_LABELS", "COSMOSQA_COLUMNS", "FORMATS", "UNLABELLED", "read_commonsenseqa",
           "read_cosmosqa", "read_file", "read_hellaswag"]
