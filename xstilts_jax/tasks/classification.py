"""Sentence(-pair) classification tasks: file readers and featurization.

Zero-shot targets XNLI and PAWS-X, and the English intermediate tasks MNLI, QQP, SST-2, SNLI,
ANLI and ANLI+ (X-STILTs, Phang et al. 2020; the layouts of the last five are further below).

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

Machine translations of MultiNLI train (split ``translate_train`` of ``mnli`` and ``xnli``, in
the 14 XNLI languages other than English, :data:`XNLI_TRANSLATION_LANGUAGES`; the X-STILTs
paper's alternative of training on the intermediate task's translations as well)::

    <data_dir>/XNLI-MT-1.0/multinli/multinli.train.<lang>.tsv      XNLI-MT 1.0 (XNLI-MT-1.0.zip)
    <data_dir>/xtreme_translations/XNLI/translate-train/en-<lang>-translated.tsv   XTREME's
    <data_dir>/xnli/XNLI-Translated/en-<lang>-translated.tsv       the same, where XTREME's
                                                                   XnliProcessor looks

- XNLI-MT 1.0 (format ``xnli_mt_tsv``): a header row ``premise<TAB>hypo<TAB>label`` (checked),
  then three columns; labels ``contradictory`` (= contradiction), ``entailment``, ``neutral``.
  Sources: XTREME's ``xnli_preprocess`` (drops the header, renames ``contradictory``), HF
  ``datasets``' xnli script (``csv.DictReader(delimiter='\\t', quoting=csv.QUOTE_NONE)``,
  keys ``premise``, ``hypo``, ``label``), google-research/bert's ``XnliProcessor``.
- XTREME's translate-train (format ``xtreme_translated_tsv``, files of
  ``gs://xtreme_translations/XNLI/translate-train/``): no header, five columns: English
  premise, English hypothesis, translated premise, translated hypothesis, label (names as
  XNLI-MT's). Source: TFDS's ``xtreme_xnli`` builder (``csv.reader(..., quoting=QUOTE_NONE)``,
  five values a row; google-research/xtreme issue 37: the English columns were added in
  September 2020). The earlier three-column files are not read (refused as another format).
- Both: plain tab splitting (quotes are text); a trailing ``\\r`` is dropped. Skipped and
  counted: blank lines, rows with another number of columns
  (:data:`SKIP_MALFORMED_TRANSLATION`, line numbers logged; more than 1% of the rows, and more
  than 10, is an error: the file is in another format), and pairs whose translated premise or
  hypothesis is empty (:data:`SKIP_EMPTY_TRANSLATION`: a failed translation is no training
  pair). Any other label is an error naming the line. Examples carry the file's language.
- In English the split is the training data itself (split ``train``, read from its files): a
  union of ``translate_train`` over languages can include ``en`` as it is. The languages with
  translations: :func:`translate_train_languages` (English is not one of them).

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
    <data_dir>/x-final/<lang>/translated_train.tsv     split "translate_train" (in en: the
                                                       split "train", as for MNLI)

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

English intermediate tasks (``languages=("en",)``; ``test_split`` is None for all of them:
they are intermediate tasks, not zero-shot targets; the labelled test files of SNLI and ANLI
stay readable as split ``"test"`` with :func:`read_split`)::

    <data_dir>/qqp/{train,dev}.tsv       GLUE QQP (QQP/ also accepted, GLUE's folder name)
    <data_dir>/sst2/{train,dev}.tsv      GLUE SST-2 (SST-2/ also accepted)
    <data_dir>/snli/snli_1.0_{train,dev,test}.jsonl     SNLI 1.0 release (snli_1.0.zip);
    <data_dir>/snli/snli_1.0_{train,dev,test}.txt       ... its TSV; snli_1.0/ also accepted
    <data_dir>/anli_v1.0/R{1,2,3}/{train,dev,test}.jsonl   ANLI v1.0 release (anli_v1.0.zip)

- QQP (GLUE ``QQP.zip``, format ``qqp_tsv``): header ``id qid1 qid2 question1 question2
  is_duplicate``, columns found by name, labels ``"0"``/``"1"``; GLUE's test.tsv (``id
  question1 question2``) is unlabelled: no test split. Some copies of GLUE's QQP train.tsv
  (the pre-2019 ``QQP.zip``) hold a few rows broken by a newline inside a question, e.g. a line
  ``"<TAB>Was Muhammad a real historical figure? ...<TAB>0`` with 3 columns instead of 6
  (nyu-mll/GLUE-baselines issue 5). Such rows -- fewer tab-separated columns than the header --
  are skipped, counted under :data:`SKIP_QQP_MALFORMED` and their line numbers logged: the
  pieces of a broken row cannot be told apart from damage reliably, and HF transformers'
  ``QqpProcessor`` (``except IndexError: continue``) and TFDS's ``glue/qqp`` (rows with a
  missing field are dropped) drop them too. A row with MORE columns than the header is an error.
- SST-2 (GLUE ``SST-2.zip``, format ``sst2_tsv``): header ``sentence label``, one sentence a
  row, labels ``"0"``/``"1"``: examples with ``text_b=None`` (single sentences, featurized
  ``<s> A </s>``). GLUE's test.tsv (``index sentence``) is unlabelled: no test split.
- SNLI 1.0: the jsonl (format ``multinli_jsonl``: the same keys as MultiNLI's, ``sentence1,
  sentence2, gold_label`` used) is read before the TSV ``snli_1.0_<split>.txt`` (format
  ``snli_txt``: header ``gold_label sentence1_binary_parse sentence2_binary_parse
  sentence1_parse sentence2_parse sentence1 sentence2 captionID pairID label1 label2 label3
  label4 label5``, columns found by name). A TSV row may lack the trailing annotator columns
  ``label2``-``label5`` (only one annotator labelled most training pairs); any other width is an
  error. Gold label ``-`` (785 train, 158 dev, 176 test pairs) is skipped and counted, as for
  MultiNLI: 549,367 / 9,842 / 9,824 examples.
- ANLI v1.0 (format ``anli_jsonl``): one object a line, keys ``uid, context, hypothesis,
  label`` (and others, unused), ``label`` one of ``e``, ``n``, ``c`` mapped to entailment,
  neutral, contradiction (:data:`NLI_LABELS`). Each split combines the three rounds, in the
  order R1, R2, R3: train 16,946 + 45,460 + 100,459 = 162,865, dev 1,000 + 1,000 + 1,200 =
  3,200, test likewise 3,200.
- ANLI+ (``anli_plus``; X-STILTs' "ANLI+", the paper's table of intermediate tasks gives
  1,104,934 training examples): train = ANLI R1, R2, R3 train (162,865) + MNLI train
  (392,702; the ``mnli`` task's files: GLUE TSV, else MultiNLI jsonl) + SNLI train (549,367:
  550,152 pairs less the 785 whose gold label is ``-``), in that order: 162,865 + 392,702 +
  549,367 = 1,104,934. dev = ANLI R1-R3 dev (3,200). No test split. Labels :data:`NLI_LABELS`
  throughout.

A split combined from several files (ANLI, ANLI+) reads every part (each part: the first of
its candidate files present) in order and concatenates the examples. ``ReadResult.files``
lists every file read, in order; ``ReadResult.path`` is the file read, or for a combined split
the deepest folder holding all its files (``<data_dir>/anli_v1.0`` for ANLI, ``<data_dir>``
for ANLI+); ``skipped`` adds up the parts' counts. Guids (``"<path relative to
data_dir>:<line>"``) stay unique across the parts. All parts are located before any is read:
a missing part is reported at once.
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
QQP_LABELS = ("0", "1")  # GLUE's is_duplicate: 0 not duplicate, 1 duplicate
SST2_LABELS = ("0", "1")  # GLUE's label: 0 negative, 1 positive
ANLI_LABEL_NAMES = {"e": "entailment", "n": "neutral", "c": "contradiction"}  # ANLI's labels
ANLI_ROUNDS = ("R1", "R2", "R3")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
PAWSX_PLACEHOLDER = "NS"  # what PAWS-X's translated dev/test files hold for a failed translation
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                  "vi", "zh")
NO_GOLD_LABEL = "-"
SKIP_NO_GOLD_LABEL = "no gold label ('-')"
SKIP_BLANK_LINE = "blank line"
SKIP_QQP_MALFORMED = "malformed row (fewer tab-separated columns than the header; GLUE's QQP)"
# The annotator-label columns a SNLI 1.0 TSV row may lack (most training pairs have label1 only).
SNLI_OPTIONAL_COLUMNS = ("label2", "label3", "label4", "label5")
# Machine translations of MultiNLI train (XNLI-MT 1.0, XTREME's translate-train): the XNLI
# languages other than English.
XNLI_TRANSLATION_LANGUAGES = tuple(lang for lang in XNLI_LANGUAGES if lang != "en")
PAWSX_TRANSLATION_LANGUAGES = tuple(lang for lang in PAWSX_LANGUAGES if lang != "en")
# The label names of the translated MultiNLI files -> NLI_LABELS ("contradictory" is XNLI-MT's
# name for contradiction; XTREME's files copy it).
TRANSLATED_NLI_LABELS = {"contradictory": "contradiction", "contradiction": "contradiction",
                         "entailment": "entailment", "neutral": "neutral"}
XNLI_MT_HEADER = ("premise", "hypo", "label")
SKIP_EMPTY_TRANSLATION = "empty premise or hypothesis (failed machine translation)"
SKIP_MALFORMED_TRANSLATION = "malformed row (wrong number of tab-separated columns)"
# A file of translations with more malformed rows than this (and than MALFORMED_TRANSLATION_MIN)
# is not read: it is in another format, not a file with a few damaged rows.
MALFORMED_TRANSLATION_FRACTION = 0.01
MALFORMED_TRANSLATION_MIN = 10


class DataError(ValueError):
    """Task data that cannot be read; the message names the file (and line) and says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class PairExample:
    guid: str  # "<file relative to data_dir>:<line>", 1-based physical line
    text_a: str
    text_b: str | None  # None: a single-sentence task (SST-2)
    label: int  # index into the task's labels
    language: str


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """The examples of a split, and what was skipped (reason -> count).

    ``path`` is the file read or, for a split combined from several files, the deepest folder
    holding them all; ``files`` every file read, in order (``()`` given means ``(path,)``)."""

    path: pathlib.Path
    examples: list[PairExample]
    skipped: dict[str, int]
    files: tuple[pathlib.Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.files:
            object.__setattr__(self, "files", (self.path,))

    def __len__(self) -> int:
        return len(self.examples)


def combine_results(results: Sequence[ReadResult]) -> ReadResult:
    """The results of a split's parts, concatenated in order (see the module docstring)."""
    if not results:
        raise ValueError("no results to combine")
    if len(results) == 1:
        return results[0]
    files = tuple(f for r in results for f in r.files)
    skipped: dict[str, int] = {}
    for r in results:
        for reason, count in r.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    path = pathlib.Path(os.path.commonpath([os.fspath(f) for f in files]))
    return ReadResult(path, [e for r in results for e in r.examples], skipped, files)


@dataclasses.dataclass(frozen=True)
class DataFile:
    """A candidate file for a split: a path relative to data_dir ({lang} is filled in) and
    the name of its format in ``FORMATS``."""

    pattern: str
    format: str


@dataclasses.dataclass(frozen=True)
class Split:
    """A split: its parts, read in order and concatenated; each part is a tuple of candidate
    files, the first present is read. Most splits have one part (:func:`_split`).

    ``languages``: the languages its files exist in; None means the task's training language
    for ``train`` and all of the task's languages for any other split (see
    :meth:`ClassificationTask.split_languages`). ``translates``: for machine translations of
    another split (``translate_train`` of ``train``), that split's name; in that split's own
    languages (English) this split is the original itself, read from the original's files."""

    name: str
    parts: tuple[tuple[DataFile, ...], ...]
    languages: tuple[str, ...] | None = None
    translates: str | None = None

    def __post_init__(self) -> None:
        if not self.parts or not all(self.parts):
            raise ValueError(f"split {self.name!r}: every part needs a candidate file")
        if self.languages is not None and not self.languages:
            raise ValueError(f"split {self.name!r}: languages=() (use None for the default)")


def _split(name: str, *candidates: DataFile, languages: tuple[str, ...] | None = None,
           translates: str | None = None) -> Split:
    """A split read from one file: the first of ``candidates`` present."""
    return Split(name, (candidates,), languages, translates)


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """A sentence-pair classification task: its labels, languages and where its splits live.

    ``train`` exists only in ``train_language``; other splits exist in every language, unless
    the split names its own languages (``translate_train``: the translation languages, which
    need not be languages of the task; :meth:`split_languages`).
    """

    name: str
    labels: tuple[str, ...]
    languages: tuple[str, ...]
    splits: tuple[Split, ...]
    dev_split: str
    # None: not a zero-shot target: no labelled test set (GLUE's MNLI test is unlabelled) or
    # an English-only intermediate task.
    test_split: str | None
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

    def __post_init__(self) -> None:
        for s in self.splits:
            if s.translates is not None and s.translates not in self.split_names:
                raise ValueError(f"task {self.name!r} split {s.name!r} translates split "
                                 f"{s.translates!r}, which the task does not have")

    def split_languages(self, name: str) -> tuple[str, ...]:
        """Every language split ``name`` can be read in: its own languages (see
        :class:`Split`) or, for a split of translations, those and the languages of the split
        it translates, sorted."""
        spec = self.split(name)
        if spec.languages is not None:
            own = spec.languages
        else:
            own = (self.train_language,) if name == "train" else self.languages
        if spec.translates is None:
            return own
        return tuple(sorted(set(own) | set(self.split_languages(spec.translates))))

    @property
    def translate_train_languages(self) -> tuple[str, ...]:
        """The languages of the machine translations of the training data (split
        ``translate_train``), sorted; () when the task has none. The training language is not
        one of them: ``translate_train`` in it is the training data itself."""
        if "translate_train" not in self.split_names:
            return ()
        spec = self.split("translate_train")
        original = (set(self.split_languages(spec.translates)) if spec.translates is not None
                    else set())
        return tuple(lang for lang in self.split_languages("translate_train")
                     if lang not in original)


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

    def add(self, lineno: int, text_a: str, text_b: str | None, label: str) -> None:
        label = label.strip()
        if label == NO_GOLD_LABEL:
            self.skip(SKIP_NO_GOLD_LABEL)
            return
        index = self.label_index.get(label)
        if index is None:
            raise DataError(f"{self.path}:{lineno}: label {label!r} is not one of "
                            f"{', '.join(self.labels)}")
        self.examples.append(PairExample(f"{self.guid_prefix}:{lineno}", text_a.strip(),
                                         None if text_b is None else text_b.strip(), index,
                                         self.language))

    def result(self) -> ReadResult:
        return ReadResult(self.path, self.examples, dict(self.skipped))


def _read_header_tsv(b: _Builder, texts: Sequence[str], labels: Sequence[str], *,
                     optional: Sequence[str] = (), short_rows: str | None = None) -> None:
    """A TSV with a header row, split on tabs only; columns found by name: ``texts`` (text_a,
    and text_b unless a single sentence) and the first of ``labels`` in the header. Every row
    is as wide as the header, except that trailing header columns named in ``optional`` may
    be absent. A narrower row is an error or, with ``short_rows`` (a skip reason), skipped,
    counted and its line number logged."""
    lines = _lines(b.path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{b.path}: empty file (expected a header row)")
    header = first[1].split("\t")
    column = {name: i for i, name in reversed(list(enumerate(header)))}
    label_name = next((name for name in labels if name in column), None)
    missing = [repr(c) for c in texts if c not in column]
    if label_name is None:
        missing.append(" or ".join(repr(name) for name in labels))
    if missing:
        raise DataError(f"{b.path}:1: the header has no column {', '.join(missing)} "
                        f"(header: {', '.join(header)})")
    indices = [column[c] for c in texts]
    i_label = column[label_name]
    width = min_width = len(header)
    while min_width > 1 and header[min_width - 1] in optional:
        min_width -= 1
    min_width = max(min_width, max(indices + [i_label]) + 1)
    short: list[int] = []
    for lineno, line in lines:
        if not line.strip():
            b.skip(SKIP_BLANK_LINE)
            continue
        fields = line.split("\t")
        if not min_width <= len(fields) <= width:
            if short_rows is not None and len(fields) < min_width:
                b.skip(short_rows)
                short.append(lineno)
                continue
            expected = (f"the header has {width}" if min_width == width else
                        f"expected {min_width} to {width} (the header has {width}, of which "
                        f"the last {width - min_width} may be absent)")
            raise DataError(f"{b.path}:{lineno}: {len(fields)} tab-separated columns, {expected}")
        text_b = fields[indices[1]] if len(indices) > 1 else None
        b.add(lineno, fields[indices[0]], text_b, fields[i_label])
    if short:
        shown = ", ".join(map(str, short[:20])) + (", ..." if len(short) > 20 else "")
        log.warning("%s: skipped %d rows with fewer than %d columns (%s) at lines %s", b.path,
                    len(short), min_width, short_rows, shown)


def _read_glue_tsv(b: _Builder) -> None:
    """GLUE / MultiNLI TSV: a header row; columns found by name (sentence1, sentence2, and
    gold_label, or label when the header has no gold_label); every row as wide as the header."""
    _read_header_tsv(b, ("sentence1", "sentence2"), ("gold_label", "label"))


def _read_qqp_tsv(b: _Builder) -> None:
    """GLUE QQP: header ``id qid1 qid2 question1 question2 is_duplicate``; rows broken by a
    newline inside a question are skipped and counted (see the module docstring)."""
    _read_header_tsv(b, ("question1", "question2"), ("is_duplicate",),
                     short_rows=SKIP_QQP_MALFORMED)


def _read_sst2_tsv(b: _Builder) -> None:
    """GLUE SST-2: header ``sentence label``; single sentences."""
    _read_header_tsv(b, ("sentence",), ("label",))


def _read_snli_txt(b: _Builder) -> None:
    """SNLI 1.0 TSV (``snli_1.0_<split>.txt``): columns by name, trailing label2-label5 optional."""
    _read_header_tsv(b, ("sentence1", "sentence2"), ("gold_label",),
                     optional=SNLI_OPTIONAL_COLUMNS)


def _json_objects(b: _Builder) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a jsonl file; blank lines skipped and counted."""
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
        yield lineno, record


def _string_fields(b: _Builder, lineno: int, record: dict, keys: Sequence[str]) -> list[str]:
    values = []
    for key in keys:
        value = record.get(key)
        if not isinstance(value, str):
            problem = "missing" if value is None else f"not a string ({type(value).__name__})"
            raise DataError(f"{b.path}:{lineno}: field {key!r} is {problem}")
        values.append(value)
    return values


def _read_multinli_jsonl(b: _Builder) -> None:
    """MultiNLI / SNLI release jsonl: one JSON object a line with sentence1, sentence2,
    gold_label."""
    for lineno, record in _json_objects(b):
        b.add(lineno, *_string_fields(b, lineno, record, ("sentence1", "sentence2", "gold_label")))


def _read_anli_jsonl(b: _Builder) -> None:
    """ANLI release jsonl: ``context``, ``hypothesis`` and ``label`` (e, n or c)."""
    for lineno, record in _json_objects(b):
        context, hypothesis, label = _string_fields(b, lineno, record,
                                                    ("context", "hypothesis", "label"))
        name = ANLI_LABEL_NAMES.get(label.strip())
        if name is None:
            raise DataError(f"{b.path}:{lineno}: label {label!r} is not one of "
                            f"{', '.join(ANLI_LABEL_NAMES)} (ANLI's entailment, neutral, "
                            f"contradiction)")
        b.add(lineno, context, hypothesis, name)


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


def _read_translated_nli(b: _Builder, *, width: int, texts: tuple[int, int], label: int,
                         columns: str, hint: str, header: Sequence[str] | None = None) -> None:
    """Rows of machine-translated MultiNLI, split on tabs only (``csv.QUOTE_NONE``, as HF's
    and TFDS's readers of these files: quotes are text): ``width`` columns, the translated
    premise and hypothesis at ``texts``, the label at ``label`` (:data:`TRANSLATED_NLI_LABELS`).
    Skipped and counted: blank lines, rows with another number of columns (their line numbers
    logged; more than :data:`MALFORMED_TRANSLATION_FRACTION` of the rows is an error) and pairs
    whose premise or hypothesis is empty. An unknown label is an error naming the line."""
    lines = _lines(b.path)
    if header is not None:
        first = next(lines, None)
        if first is None:
            raise DataError(f"{b.path}: empty file (expected the header row "
                            f"{chr(9).join(header)!r})")
        found = [c.strip() for c in first[1].split("\t")]
        if found != list(header):
            raise DataError(f"{b.path}:1: header {first[1]!r}, expected "
                            f"{chr(9).join(header)!r} ({hint})")
    rows = 0
    malformed: list[tuple[int, int]] = []  # (line, columns)
    for lineno, line in lines:
        if not line.strip():
            b.skip(SKIP_BLANK_LINE)
            continue
        rows += 1
        fields = line.split("\t")
        if len(fields) != width:
            b.skip(SKIP_MALFORMED_TRANSLATION)
            malformed.append((lineno, len(fields)))
            continue
        name = TRANSLATED_NLI_LABELS.get(fields[label].strip())
        if name is None:
            raise DataError(f"{b.path}:{lineno}: label {fields[label]!r} is not one of "
                            f"{', '.join(TRANSLATED_NLI_LABELS)} ({columns})")
        text_a, text_b = (fields[i].strip() for i in texts)
        if not text_a or not text_b:
            b.skip(SKIP_EMPTY_TRANSLATION)
            continue
        b.add(lineno, text_a, text_b, name)
    if malformed:
        shown = ", ".join(f"{n} ({c} columns)" for n, c in malformed[:20])
        shown += ", ..." if len(malformed) > 20 else ""
        if len(malformed) > max(MALFORMED_TRANSLATION_MIN, MALFORMED_TRANSLATION_FRACTION * rows):
            first_line, first_width = malformed[0]
            raise DataError(f"{b.path}:{first_line}: {first_width} tab-separated columns, "
                            f"expected {width} ({columns}); {len(malformed)} of {rows} rows "
                            f"are so: not this format ({hint})")
        log.warning("%s: skipped %d rows without %d tab-separated columns, at lines %s",
                    b.path, len(malformed), width, shown)


def _read_xnli_mt_tsv(b: _Builder) -> None:
    """XNLI-MT 1.0 ``multinli.train.<lang>.tsv``: header ``premise hypo label``, then
    premise<TAB>hypothesis<TAB>label (see the module docstring)."""
    _read_translated_nli(b, width=3, texts=(0, 1), label=2, header=XNLI_MT_HEADER,
                         columns="premise, hypo, label", hint="XNLI-MT 1.0's multinli.train files")


def _read_xtreme_translated_tsv(b: _Builder) -> None:
    """XTREME's translate-train ``en-<lang>-translated.tsv``: no header, five columns: English
    premise, English hypothesis, translated premise, translated hypothesis, label."""
    _read_translated_nli(b, width=5, texts=(2, 3), label=4,
                         columns="English premise, English hypothesis, premise, hypothesis, "
                                 "label",
                         hint="XTREME's translate-train files as published since September "
                              "2020; the earlier three-column release is not read")


FORMATS: dict[str, Callable[[_Builder], None]] = {
    "glue_tsv": _read_glue_tsv,
    "multinli_jsonl": _read_multinli_jsonl,
    "qqp_tsv": _read_qqp_tsv,
    "sst2_tsv": _read_sst2_tsv,
    "snli_txt": _read_snli_txt,
    "anli_jsonl": _read_anli_jsonl,
    "xtreme_tsv": _read_xtreme_tsv,
    "pawsx_tsv": _read_pawsx_tsv,
    "pawsx_xtreme_tsv": _read_pawsx_xtreme_tsv,
    "xnli_mt_tsv": _read_xnli_mt_tsv,
    "xtreme_translated_tsv": _read_xtreme_translated_tsv,
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


def resolve_split(task: ClassificationTask, split: str, language: str) -> Split:
    """The split whose files hold ``task``'s ``split`` in ``language``: the split itself, or
    for a split of translations in the language of the data it translates (``translate_train``
    in English), that original split. An unknown split or a language the split does not exist
    in is a DataError."""
    spec = next((s for s in task.splits if s.name == split), None)
    if spec is None or (spec.languages is None and spec.translates is None):
        if language not in task.languages:
            raise DataError(f"task {task.name!r} has no language {language!r}; "
                            f"its languages: {' '.join(task.languages)}")
        if split == "train" and language != task.train_language:
            raise DataError(f"task {task.name!r} trains only in {task.train_language!r}, "
                            f"not {language!r}")
        return task.split(split)
    languages = task.split_languages(split)
    if language not in languages:
        raise DataError(f"task {task.name!r} split {split!r} has no language {language!r}; "
                        f"its languages: {' '.join(languages)}")
    if spec.translates is not None and language in task.split_languages(spec.translates):
        return resolve_split(task, spec.translates, language)
    return spec


def split_files(task: ClassificationTask, data_dir: str | os.PathLike, split: str,
                language: str) -> list[list[tuple[pathlib.Path, DataFile]]]:
    """The candidate files of each part of a split, in the order they are tried (those of
    the split :func:`resolve_split` names)."""
    data_dir = pathlib.Path(data_dir)
    return [[(data_dir / f.pattern.format(lang=language), f) for f in part]
            for part in resolve_split(task, split, language).parts]


def read_split(task: ClassificationTask, data_dir: str | os.PathLike, split: str,
               language: str | None = None) -> ReadResult:
    """The examples of ``task``'s ``split`` in ``language`` (default: the training language):
    of each part of the split, the first candidate file present under ``data_dir`` is read,
    and the parts are concatenated in order (see the module docstring). ``translate_train``
    in the training language is the training data (split ``train``)."""
    language = task.train_language if language is None else language
    parts = split_files(task, data_dir, split, language)
    read_as = resolve_split(task, split, language).name
    chosen = []
    for k, candidates in enumerate(parts, 1):
        found = next(((p, f) for p, f in candidates if p.is_file()), None)
        if found is None:
            which = f" for part {k} of {len(parts)}" if len(parts) > 1 else ""
            expected = " or ".join(str(p) for p, _ in candidates)
            alias = (f" (in {language!r} it is split {read_as!r}, the data it translates)"
                     if read_as != split else "")
            raise DataError(f"task {task.name!r} split {split!r} ({language}){alias}: no data "
                            f"file{which}; expected {expected}")
        chosen.append(found)
    results = []
    for path, data_file in chosen:
        log.info("%s %s (%s): reading %s", task.name, split, language, path)
        guid_prefix = path.relative_to(data_dir).as_posix()
        results.append(read_file(path, data_file.format, labels=task.labels, language=language,
                                 guid_prefix=guid_prefix))
    if len(results) > 1:
        log.info("%s %s (%s): %s", task.name, split, language,
                 " + ".join(f"{len(r)} ({r.path.relative_to(data_dir).as_posix()})"
                            for r in results))
    return combine_results(results)


# --------------------------------------------------------------------------- tasks

def _mnli_files(split: str) -> tuple[DataFile, ...]:
    return (DataFile(f"mnli/{split}.tsv", "glue_tsv"),
            DataFile(f"mnli/multinli_1.0_{split}.jsonl", "multinli_jsonl"))


def _translated_mnli_split() -> Split:
    """Machine translations of MultiNLI train (see the module docstring): XNLI-MT 1.0 first,
    then XTREME's translate-train (a copy of its bucket, then the folder XTREME's
    ``XnliProcessor.get_translate_train_examples`` reads)."""
    name = "en-{lang}-translated.tsv"
    return _split("translate_train",
                  DataFile("XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv", "xnli_mt_tsv"),
                  DataFile(f"xtreme_translations/XNLI/translate-train/{name}",
                           "xtreme_translated_tsv"),
                  DataFile(f"xnli/XNLI-Translated/{name}", "xtreme_translated_tsv"),
                  languages=XNLI_TRANSLATION_LANGUAGES, translates="train")


def _glue_files(folders: Sequence[str], split: str, format: str) -> tuple[DataFile, ...]:
    return tuple(DataFile(f"{folder}/{split}.tsv", format) for folder in folders)


def _snli_files(split: str) -> tuple[DataFile, ...]:
    return tuple(DataFile(f"{folder}/snli_1.0_{split}.{ext}", format)
                 for folder in ("snli", "snli_1.0")
                 for ext, format in (("jsonl", "multinli_jsonl"), ("txt", "snli_txt")))


def _anli_parts(split: str) -> tuple[tuple[DataFile, ...], ...]:
    return tuple((DataFile(f"anli_v1.0/{r}/{split}.jsonl", "anli_jsonl"),) for r in ANLI_ROUNDS)


MNLI = ClassificationTask(
    name="mnli",
    labels=NLI_LABELS,
    languages=("en",),
    splits=(*(_split(s, *_mnli_files(s)) for s in ("train", "dev_matched", "dev_mismatched")),
            _translated_mnli_split()),
    dev_split="dev_matched",
    test_split=None,
)

XNLI = ClassificationTask(
    name="xnli",
    labels=NLI_LABELS,
    languages=XNLI_LANGUAGES,
    splits=(
        # XTREME trains XNLI on MultiNLI train: its own train-en.tsv, else the MNLI files.
        _split("train", DataFile("xnli/train-en.tsv", "xtreme_tsv"), *_mnli_files("train")),
        _split("dev", DataFile("xnli/dev-{lang}.tsv", "xtreme_tsv")),
        _split("test", DataFile("xnli/test-{lang}.tsv", "xtreme_tsv")),
        # XNLI's training data is MultiNLI train: the same translations as MNLI's.
        _translated_mnli_split(),
    ),
    dev_split="dev",
    test_split="test",
)

PAWSX = ClassificationTask(
    name="pawsx",
    labels=PAWSX_LABELS,
    languages=PAWSX_LANGUAGES,
    splits=(
        _split("train", DataFile("pawsx/train-en.tsv", "pawsx_xtreme_tsv"),
               DataFile("x-final/en/train.tsv", "pawsx_tsv")),
        _split("dev", DataFile("pawsx/dev-{lang}.tsv", "pawsx_xtreme_tsv"),
               DataFile("x-final/{lang}/dev_2k.tsv", "pawsx_tsv")),
        # The release first: XTREME's download strips the test labels.
        _split("test", DataFile("x-final/{lang}/test_2k.tsv", "pawsx_tsv"),
               DataFile("pawsx/test-{lang}.tsv", "pawsx_xtreme_tsv")),
        # Machine translations of the English training set (the release has none for en: in
        # en the split is "train" itself); not part of XTREME's zero-shot setting.
        _split("translate_train", DataFile("x-final/{lang}/translated_train.tsv", "pawsx_tsv"),
               languages=PAWSX_TRANSLATION_LANGUAGES, translates="train"),
    ),
    dev_split="dev",
    test_split="test",
)

QQP = ClassificationTask(
    name="qqp",
    labels=QQP_LABELS,
    languages=("en",),
    splits=tuple(_split(s, *_glue_files(("qqp", "QQP"), s, "qqp_tsv")) for s in ("train", "dev")),
    dev_split="dev",
    test_split=None,
)

SST2 = ClassificationTask(
    name="sst2",
    labels=SST2_LABELS,
    languages=("en",),
    splits=tuple(_split(s, *_glue_files(("sst2", "SST-2"), s, "sst2_tsv"))
                 for s in ("train", "dev")),
    dev_split="dev",
    test_split=None,
)

SNLI = ClassificationTask(
    name="snli",
    labels=NLI_LABELS,
    languages=("en",),
    splits=tuple(_split(s, *_snli_files(s)) for s in ("train", "dev", "test")),
    dev_split="dev",
    test_split=None,
)

ANLI = ClassificationTask(
    name="anli",
    labels=NLI_LABELS,
    languages=("en",),
    splits=tuple(Split(s, _anli_parts(s)) for s in ("train", "dev", "test")),
    dev_split="dev",
    test_split=None,
)

# X-STILTs' ANLI+: ANLI R1-R3 + MNLI + SNLI train (1,104,934 examples), ANLI R1-R3 dev.
ANLI_PLUS = ClassificationTask(
    name="anli_plus",
    labels=NLI_LABELS,
    languages=("en",),
    splits=(
        Split("train", _anli_parts("train") + (_mnli_files("train"), _snli_files("train"))),
        Split("dev", _anli_parts("dev")),
    ),
    dev_split="dev",
    test_split=None,
)

TASKS = (MNLI, XNLI, PAWSX, QQP, SST2, SNLI, ANLI, ANLI_PLUS)


def translate_train_languages(data_task: str) -> tuple[str, ...]:
    """The languages with machine translations of ``data_task``'s training data, for every
    task (classification or not): :func:`xstilts_jax.tasks.layout.translate_train_languages`."""
    from xstilts_jax.tasks import layout  # layout imports this module

    return layout.translate_train_languages(data_task)


# --------------------------------------------------------------------------- features


@dataclasses.dataclass(frozen=True)
class PairFeatures:
    """Token ids of (text_a, text_b) pairs, or of single sentences, with special tokens,
    unpadded, one row per example."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]  # the tokenizer's segment ids, or zeros where it has none
    labels: np.ndarray  # int32 [n]
    guids: list[str]
    num_truncated: int  # examples cut to max_length (longest_first)

    def __len__(self) -> int:
        return len(self.input_ids)


def featurize_pairs(tokenizer, examples: Sequence[PairExample], max_length: int, *,
                    chunk_size: int = 8192) -> PairFeatures:
    """Tokenize pairs with the fast tokenizer's batch call: ``<s> A </s></s> B </s>`` for
    XLM-R, truncated ``longest_first`` to ``max_length`` tokens (specials included). Examples
    whose ``text_b`` is None (single-sentence tasks: SST-2) are tokenized alone, ``<s> A </s>``;
    one call takes either pairs or single sentences, not a mix (a ``ValueError``).

    ``chunk_size`` examples go to the tokenizer at a time, which bounds the memory its
    per-example Encoding objects take. An example counts as truncated when its encoding has
    overflowing tokens (what truncation removed).
    """
    singles = sum(e.text_b is None for e in examples)
    if 0 < singles < len(examples):
        raise ValueError(f"{singles} of {len(examples)} examples are single sentences (text_b "
                         f"None) and the others pairs: featurize one kind at a time")
    pairs = singles == 0
    minimum = tokenizer.num_special_tokens_to_add(pair=pairs) + (2 if pairs else 1)
    if max_length < minimum:
        what = ("a pair: it needs at least {m} (special tokens plus one token of each text)"
                if pairs else "a sentence: it needs at least {m} (special tokens plus one "
                "token)").format(m=minimum)
        raise ValueError(f"max_length {max_length} leaves no room for {what}")
    with_types = "token_type_ids" in tokenizer.model_input_names
    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    num_truncated = 0
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start:start + chunk_size]
        text_a = [e.text_a for e in chunk]
        texts = (text_a, [e.text_b for e in chunk]) if pairs else (text_a,)
        encoded = tokenizer(*texts, truncation="longest_first", max_length=max_length,
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
        log.info("%d of %d %s truncated to %d tokens", num_truncated, len(examples),
                 "pairs" if pairs else "sentences", max_length)
    labels = np.fromiter((e.label for e in examples), dtype=np.int32, count=len(examples))
    return PairFeatures(input_ids, token_type_ids, labels, [e.guid for e in examples],
                        num_truncated)
