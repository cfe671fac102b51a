"""Sentence-pair classification tasks (MNLI, XNLI, PAWS-X): file readers and featurization.

Data layout. ``data_dir`` is XTREME's ``download/`` folder (what XTREME's
``scripts/download_data.sh`` fills), with MultiNLI added beside it::

    <data_dir>/mnli/train.tsv            GLUE MNLI TSV (header row; or the jsonl below)
    <data_dir>/mnli/dev_matched.tsv
    <data_dir>/mnli/dev_mismatched.tsv
    <data_dir>/mnli/multinli_1.0_{train,dev_matched,dev_mismatched}.jsonl   MultiNLI release
    <data_dir>/xnli/train-en.tsv         XTREME's English training file (optional, see below)
    <data_dir>/xnli/dev-<lang>.tsv       XTREME layout: premise<TAB>hypothesis<TAB>label
    <data_dir>/xnli/test-<lang>.tsv

Where a split has several candidate files, the first one present in the order above is
read (TSV before jsonl) and ``ReadResult.path`` says which.

XTREME sources checked (google-research/xtreme):
- ``utils_preprocess.py``, ``xnli_preprocess``: ``train-en.tsv`` is XNLI-MT's
  ``multinli/multinli.train.en.tsv`` (MultiNLI train) with its header dropped and
  ``contradictory`` renamed ``contradiction``; ``dev-<lang>.tsv`` / ``test-<lang>.tsv`` are
  XNLI-1.0's ``xnli.{dev,test}.tsv`` split by language. All are written by
  ``csv.writer(delimiter='\\t', quoting=csv.QUOTE_NONE)``: no header row, three columns
  ``sentence1, sentence2, label``, label a string. (Older revisions wrote test files with no
  label column; those are refused, not given XTREME's dummy ``neutral``.)
- ``scripts/download_data.sh``, ``download_xnli``: the files land in ``download/xnli/``.
- ``third_party/processors/xnli.py``: reads ``{split}-{lang}.tsv`` with ``csv.reader(
  delimiter='\\t', quotechar=None)`` (plain tab splitting, as here) and ``get_labels()`` is
  ``["contradiction", "entailment", "neutral"]``, the label order used for both tasks.

PAWS-X (labels ``"0"``, ``"1"`` as XTREME's ``PawsxProcessor.get_labels()``; 7 languages)::

    <data_dir>/pawsx/train-en.tsv        XTREME layout: sentence1<TAB>sentence2<TAB>label
    <data_dir>/pawsx/dev-<lang>.tsv
    <data_dir>/pawsx/test-<lang>.tsv     (XTREME's download writes it without labels)
    <data_dir>/x-final/en/train.tsv      PAWS-X release (x-final.tar.gz): header row
    <data_dir>/x-final/<lang>/{dev_2k,test_2k}.tsv        id<TAB>sentence1<TAB>sentence2<TAB>label
    <data_dir>/x-final/<lang>/translated_train.tsv     split "translate_train" (not en)

- ``utils_preprocess.py``, ``pawsx_preprocess``: drops the release's header row and id
  column and writes ``train-en.tsv`` (from ``en/train.tsv``), ``dev-<lang>.tsv`` (from
  ``dev_2k.tsv``) and ``test-<lang>.tsv`` (from ``test_2k.tsv``, label column removed) with
  ``csv.writer(fout, delimiter='\\t')``: default quoting, so a sentence holding ``"`` is
  written ``"..."`` with its quotes doubled (and lines end in ``\\r\\n``). This reader undoes
  that quoting (XTREME's own processor reads the quotes as text); a field that is not a
  well-formed quoted field is taken as it is (files written with ``QUOTE_NONE``).
- For ``test`` the release's ``test_2k.tsv`` is tried first: it has the labels that XTREME's
  download removes. Other splits try XTREME's files first.
- Known oddities of the release, kept as they are (XTREME keeps them) and logged: translated
  rows whose sentence is the placeholder ``NS`` (failed translation; google-research-datasets/
  paws issue 15) and rows with empty sentences (machine-translated training data, issue 4).
  Labels other than ``0``/``1`` are errors naming the line.

Every TSV here is split on tabs with no quote handling (``csv.QUOTE_NONE`` semantics) except
PAWS-X's XTREME files as just described:
GLUE's MNLI files contain unbalanced ``"`` characters that default csv quoting would
merge across lines. Examples whose gold label is ``-`` (no annotator consensus; MultiNLI
dev sets) are skipped, counted in ``ReadResult.skipped`` and logged; any other bad input
raises ``DataError`` naming the file and line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from typing import Callable, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

NLI_LABELS = ("contradiction", "entailment", "neutral")
PAWSX_LABELS = ("0", "1")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
PAWSX_PLACEHOLDER = "NS"  # what PAWS-X's translated dev/test files hold for a failed translation
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                  "vi", "zh")
NO_GOLD_LABEL = "-"
SKIP_NO_GOLD_LABEL = "no gold label ('-')"
SKIP_BLANK_LINE = "blank line"


class DataError(ValueError):
    """Task data that cannot be read; the message names the file (and line) and says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class PairExample:
    guid: str  # "<file relative to data_dir>:<line>", 1-based physical line
    text_a: str
    text_b: str
    label: int  # index into the task's labels
    language: str


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """The examples of one file, and what was skipped (reason -> count)."""

    path: pathlib.Path
    examples: list[PairExample]
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.examples)


@dataclasses.dataclass(frozen=True)
class DataFile:
    """A candidate file for a split: a path relative to data_dir ({lang} is filled in) and
    the name of its format in ``FORMATS``."""

    pattern: str
    format: str


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    files: tuple[DataFile, ...]  # candidates, first present wins


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """A sentence-pair classification task: its labels, languages and where its splits live.

    ``train`` exists only in ``train_language``; other splits exist in every language.
    """

    name: str
    labels: tuple[str, ...]
    languages: tuple[str, ...]
    splits: tuple[Split, ...]
    dev_split: str
    test_split: str | None  # None: no labelled test set (GLUE's MNLI test is unlabelled)
    train_language: str = "en"

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.splits)

    def split(self, name: str) -> Split:
        for s in self.splits:
            if s.name == name:
                return s
        raise DataError(f"task {self.name!r} has no split {name!r}; "
                        f"its splits: {', '.join(self.split_names)}")


# --------------------------------------------------------------------------- readers


def _lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line ending). Only b'\\n' ends a line, so a
    stray '\\r' or U+2028 inside a sentence does not split it."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte "
                                f"{e.start})") from None
            yield lineno, text.rstrip("\r\n")


class _Builder:
    """Collects examples of one file, mapping label strings to indices and counting skips."""

    def __init__(self, path: pathlib.Path, guid_prefix: str, labels: Sequence[str], language: str):
        self.path, self.guid_prefix, self.language = path, guid_prefix, language
        self.labels = tuple(labels)
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.examples: list[PairExample] = []
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, lineno: int, text_a: str, text_b: str, label: str) -> None:
        label = label.strip()
        if label == NO_GOLD_LABEL:
            self.skip(SKIP_NO_GOLD_LABEL)
            return
        index = self.label_index.get(label)
        if index is None:
            raise DataError(f"{self.path}:{lineno}: label {label!r} is not one of "
                            f"{', '.join(self.labels)}")
        self.examples.append(PairExample(f"{self.guid_prefix}:{lineno}", text_a.strip(),
                                         text_b.strip(), index, self.language))

    def result(self) -> ReadResult:
        return ReadResult(self.path, self.examples, dict(self.skipped))


def _read_glue_tsv(b: _Builder) -> None:
    """GLUE / MultiNLI TSV: a header row; columns found by name (sentence1, sentence2, and
    gold_label, or label when the header has no gold_label); every row as wide as the header."""
    lines = _lines(b.path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{b.path}: empty file (expected a header row)")
    header = first[1].split("\t")
    column = {name: i for i, name in reversed(list(enumerate(header)))}
    label_name = "gold_label" if "gold_label" in column else "label"
    missing = [c for c in ("sentence1", "sentence2", label_name) if c not in column]
    if missing:
        wanted = ", ".join(repr(m) if m != "label" else "'gold_label' or 'label'" for m in missing)
        raise DataError(f"{b.path}:1: the header has no column {wanted} "
                        f"(header: {', '.join(header)})")
    i_a, i_b, i_label = column["sentence1"], column["sentence2"], column[label_name]
    width = len(header)
    for lineno, line in lines:
        if not line.strip():
            b.skip(SKIP_BLANK_LINE)
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise DataError(f"{b.path}:{lineno}: {len(fields)} tab-separated columns, the "
                            f"header has {width}")
        b.add(lineno, fields[i_a], fields[i_b], fields[i_label])


def _read_multinli_jsonl(b: _Builder) -> None:
    """MultiNLI release jsonl: one JSON object a line with sentence1, sentence2, gold_label."""
    for lineno, line in _lines(b.path):
        if not line.strip():
            b.skip(SKIP_BLANK_LINE)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{b.path}:{lineno}: invalid JSON ({e.msg} at column "
                            f"{e.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{b.path}:{lineno}: expected a JSON object, got "
                            f"{type(record).__name__}")
        values = []
        for key in ("sentence1", "sentence2", "gold_label"):
            value = record.get(key)
            if not isinstance(value, str):
                problem = "missing" if value is None else f"not a string ({type(value).__name__})"
                raise DataError(f"{b.path}:{lineno}: field {key!r} is {problem}")
            values.append(value)
        b.add(lineno, *values)


def _read_three_columns(b: _Builder, columns: str, unlabelled_hint: str,
                        field: Callable[[str], str] = lambda f: f) -> None:
    """Headerless ``text_a<TAB>text_b<TAB>label`` lines (XTREME's processed pair files);
    ``unlabelled_hint`` explains a 2-column line, ``field`` decodes each field."""
    for lineno, line in _lines(b.path):
        if not line.strip():
            b.skip(SKIP_BLANK_LINE)
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            hint = f" ({unlabelled_hint})" if len(fields) == 2 else ""
            raise DataError(f"{b.path}:{lineno}: {len(fields)} tab-separated columns, expected 3 "
                            f"({columns}){hint}")
        b.add(lineno, *(field(f) for f in fields))


def _read_xtreme_tsv(b: _Builder) -> None:
    """XTREME's processed pair files: no header, premise<TAB>hypothesis<TAB>label."""
    _read_three_columns(b, "premise, hypothesis, label",
                        "a test file without labels? only labelled files are read")


def _unquote_csv(field: str) -> str:
    """A field as written by csv's default (QUOTE_MINIMAL) writer -> its text; a field that
    is not a well-formed quoted field is returned as it is."""
    if len(field) >= 2 and field[0] == field[-1] == '"':
        inner = field[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return field


def _note_pawsx_oddities(b: _Builder) -> None:
    """Log the release's placeholder and empty sentences, which are kept (see the module
    docstring)."""
    placeholder = sum(PAWSX_PLACEHOLDER in (e.text_a, e.text_b) for e in b.examples)
    empty = sum(not e.text_a or not e.text_b for e in b.examples)
    if placeholder or empty:
        log.warning("%s: kept %d pairs with an %r (failed translation) sentence and %d with an "
                    "empty sentence", b.path, placeholder, PAWSX_PLACEHOLDER, empty)


def _read_pawsx_tsv(b: _Builder) -> None:
    """PAWS-X release TSV: header ``id sentence1 sentence2 label``, plain tab splitting."""
    _read_glue_tsv(b)
    _note_pawsx_oddities(b)


def _read_pawsx_xtreme_tsv(b: _Builder) -> None:
    """XTREME's processed PAWS-X files: no header, sentence1<TAB>sentence2<TAB>label, fields
    csv-quoted when they hold a '"' (see the module docstring)."""
    _read_three_columns(b, "sentence1, sentence2, label",
                        "XTREME's download writes test files without labels; the labelled "
                        "x-final/<lang>/test_2k.tsv of the PAWS-X release is read before it",
                        field=_unquote_csv)
    _note_pawsx_oddities(b)


FORMATS: dict[str, Callable[[_Builder], None]] = {
    "glue_tsv": _read_glue_tsv,
    "multinli_jsonl": _read_multinli_jsonl,
    "xtreme_tsv": _read_xtreme_tsv,
    "pawsx_tsv": _read_pawsx_tsv,
    "pawsx_xtreme_tsv": _read_pawsx_xtreme_tsv,
}


def read_file(path: str | os.PathLike, format: str, *, labels: Sequence[str], language: str,
              guid_prefix: str | None = None) -> ReadResult:
    """Every example of one file in a known format; an empty result is an error."""
    path = pathlib.Path(path)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    builder = _Builder(path, guid_prefix or path.name, labels, language)
    FORMATS[format](builder)
    result = builder.result()
    for reason, count in result.skipped.items():
        log.warning("%s: skipped %d lines: %s", path, count, reason)
    if not result.examples:
        skipped = "; ".join(f"{n} skipped: {r}" for r, n in result.skipped.items())
        raise DataError(f"{path}: no examples" + (f" ({skipped})" if skipped else ""))
    return result


def split_files(task: ClassificationTask, data_dir: str | os.PathLike, split: str,
                language: str) -> list[tuple[pathlib.Path, DataFile]]:
    """The candidate files of a split, in the order they are tried."""
    if language not in task.languages:
        raise DataError(f"task {task.name!r} has no language {language!r}; "
                        f"its languages: {' '.join(task.languages)}")
    if split == "train" and language != task.train_language:
        raise DataError(f"task {task.name!r} trains only in {task.train_language!r}, "
                        f"not {language!r}")
    data_dir = pathlib.Path(data_dir)
    return [(data_dir / f.pattern.format(lang=language), f) for f in task.split(split).files]


def read_split(task: ClassificationTask, data_dir: str | os.PathLike, split: str,
               language: str | None = None) -> ReadResult:
    """The examples of ``task``'s ``split`` in ``language`` (default: the training language),
    read from the first candidate file present under ``data_dir`` (see the module docstring)."""
    language = task.train_language if language is None else language
    candidates = split_files(task, data_dir, split, language)
    for path, data_file in candidates:
        if path.is_file():
            log.info("%s %s (%s): reading %s", task.name, split, language, path)
            guid_prefix = path.relative_to(data_dir).as_posix()
            return read_file(path, data_file.format, labels=task.labels, language=language,
                             guid_prefix=guid_prefix)
    expected = " or ".join(str(p) for p, _ in candidates)
    raise DataError(f"task {task.name!r} split {split!r} ({language}): no data file; "
                    f"expected {expected}")


# --------------------------------------------------------------------------- tasks

def _mnli_files(split: str) -> tuple[DataFile, ...]:
    return (DataFile(f"mnli/{split}.tsv", "glue_tsv"),
            DataFile(f"mnli/multinli_1.0_{split}.jsonl", "multinli_jsonl"))


MNLI = ClassificationTask(
    name="mnli",
    labels=NLI_LABELS,
    languages=("en",),
    splits=tuple(Split(s, _mnli_files(s)) for s in ("train", "dev_matched", "dev_mismatched")),
    dev_split="dev_matched",
    test_split=None,
)

XNLI = ClassificationTask(
    name="xnli",
    labels=NLI_LABELS,
    languages=XNLI_LANGUAGES,
    splits=(
        # XTREME trains XNLI on MultiNLI train: its own train-en.tsv, else the MNLI files.
        Split("train", (DataFile("xnli/train-en.tsv", "xtreme_tsv"),) + _mnli_files("train")),
        Split("dev", (DataFile("xnli/dev-{lang}.tsv", "xtreme_tsv"),)),
        Split("test", (DataFile("xnli/test-{lang}.tsv", "xtreme_tsv"),)),
    ),
    dev_split="dev",
    test_split="test",
)

PAWSX = ClassificationTask(
    name="pawsx",
    labels=PAWSX_LABELS,
    languages=PAWSX_LANGUAGES,
    splits=(
        Split("train", (DataFile("pawsx/train-en.tsv", "pawsx_xtreme_tsv"),
                        DataFile("x-final/en/train.tsv", "pawsx_tsv"))),
        Split("dev", (DataFile("pawsx/dev-{lang}.tsv", "pawsx_xtreme_tsv"),
                      DataFile("x-final/{lang}/dev_2k.tsv", "pawsx_tsv"))),
        # The release first: XTREME's download strips the test labels.
        Split("test", (DataFile("x-final/{lang}/test_2k.tsv", "pawsx_tsv"),
                       DataFile("pawsx/test-{lang}.tsv", "pawsx_xtreme_tsv"))),
        # Machine translations of the English training set (the release has none for en);
        # not part of XTREME's zero-shot setting.
        Split("translate_train", (DataFile("x-final/{lang}/translated_train.tsv", "pawsx_tsv"),)),
    ),
    dev_split="dev",
    test_split="test",
)

TASKS = (MNLI, XNLI, PAWSX)


# --------------------------------------------------------------------------- features


@dataclasses.dataclass(frozen=True)
class PairFeatures:
    """Token ids of (text_a, text_b) pairs with special tokens, unpadded, one row per example."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]  # the tokenizer's segment ids, or zeros where it has none
    labels: np.ndarray  # int32 [n]
    guids: list[str]
    num_truncated: int  # pairs cut to max_length (longest_first)

    def __len__(self) -> int:
        return len(self.input_ids)


def featurize_pairs(tokenizer, examples: Sequence[PairExample], max_length: int, *,
                    chunk_size: int = 8192) -> PairFeatures:
    """Tokenize pairs with the fast tokenizer's batch call: ``<s> A </s></s> B </s>`` for
    XLM-R, truncated ``longest_first`` to ``max_length`` tokens (specials included).

    ``chunk_size`` pairs go to the tokenizer at a time, which bounds the memory its
    per-example Encoding objects take. A pair counts as truncated when its encoding has
    overflowing tokens (what truncation removed).
    """
    minimum = tokenizer.num_special_tokens_to_add(pair=True) + 2
    if max_length < minimum:
        raise ValueError(f"max_length {max_length} leaves no room for a pair: it needs at "
                         f"least {minimum} (special tokens plus one token of each text)")
    with_types = "token_type_ids" in tokenizer.model_input_names
    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    num_truncated = 0
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start:start + chunk_size]
        text_a = [e.text_a for e in chunk]
        text_b = [e.text_b for e in chunk]
        encoded = tokenizer(text_a, text_b, truncation="longest_first", max_length=max_length,
                            add_special_tokens=True, return_attention_mask=False,
                            return_token_type_ids=with_types)
        ids = encoded["input_ids"]
        input_ids.extend(ids)
        if with_types:
            token_type_ids.extend(encoded["token_type_ids"])
        else:
            token_type_ids.extend([0] * len(row) for row in ids)
        # The Rust encoding keeps what truncation cut off: no second tokenizer call.
        num_truncated += sum(len(encoded.encodings[i].overflowing) > 0
                             for i, row in enumerate(ids) if len(row) == max_length)
    if num_truncated:
        log.info("%d of %d pairs truncated to %d tokens", num_truncated, len(examples), max_length)
    labels = np.fromiter((e.label for e in examples), dtype=np.int32, count=len(examples))
    return PairFeatures(input_ids, token_type_ids, labels, [e.guid for e in examples],
                        num_truncated)
