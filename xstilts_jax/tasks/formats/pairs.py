"""Sentence(-pair) classification formats: GLUE/MultiNLI TSV and jsonl, QQP, SST-2, SNLI,
ANLI, XTREME's processed pair files, PAWS-X's release and XTREME's copy, and the machine
translations of MultiNLI (XNLI-MT 1.0, XTREME's translate-train).

``read_file(path, format, labels=..., language=...)`` reads one file into a
:class:`~xstilts_jax.tasks.io.ReadResult` of :class:`~xstilts_jax.tasks.examples.PairExample`.
Where each task keeps which file is declared by its spec (``tasks/catalog``); the layout
is described in ``docs/DATA.md``.

Every TSV here is split on tabs with no quote handling (``csv.QUOTE_NONE`` semantics) except
PAWS-X's XTREME files: GLUE's MNLI files contain unbalanced ``"`` characters that default csv
quoting would merge across lines. Examples whose gold label is ``-`` (no annotator consensus;
MultiNLI dev sets) are skipped, counted in ``ReadResult.skipped`` and logged; any other bad
input raises ``DataError`` naming the file and line.

Formats (``FORMATS``):

- ``glue_tsv``: GLUE / MultiNLI TSV, a header row, columns found by name (sentence1, sentence2,
  and gold_label, or label when the header has no gold_label); every row as wide as the header.
- ``multinli_jsonl``: the MultiNLI / SNLI release jsonl (``sentence1, sentence2, gold_label``).
- ``qqp_tsv``: GLUE QQP, header ``id qid1 qid2 question1 question2 is_duplicate``, labels
  ``"0"``/``"1"``. Some copies of GLUE's QQP train.tsv (the pre-2019 ``QQP.zip``) hold a few rows
  broken by a newline inside a question, e.g. a line ``"<TAB>Was Muhammad a real historical
  figure? ...<TAB>0`` with 3 columns instead of 6 (nyu-mll/GLUE-baselines issue 5). Such rows --
  fewer tab-separated columns than the header -- are skipped, counted under
  :data:`SKIP_QQP_MALFORMED` and their line numbers logged: the pieces of a broken row cannot be
  told apart from damage reliably, and HF transformers' ``QqpProcessor`` (``except IndexError:
  continue``) and TFDS's ``glue/qqp`` (rows with a missing field are dropped) drop them too. A
  row with MORE columns than the header is an error.
- ``sst2_tsv``: GLUE SST-2, header ``sentence label``, one sentence a row: examples with
  ``text_b=None`` (single sentences, featurized ``<s> A </s>``).
- ``snli_txt``: SNLI 1.0's TSV (header ``gold_label sentence1_binary_parse ... sentence1
  sentence2 captionID pairID label1 label2 label3 label4 label5``, columns found by name). A row
  may lack the trailing annotator columns ``label2``-``label5`` (only one annotator labelled most
  training pairs); any other width is an error. Gold label ``-`` (785 train, 158 dev, 176 test
  pairs) is skipped and counted: 549,367 / 9,842 / 9,824 examples.
- ``anli_jsonl``: ANLI v1.0, keys ``uid, context, hypothesis, label`` (and others, unused),
  ``label`` one of ``e``, ``n``, ``c`` mapped to entailment, neutral, contradiction.
- ``xtreme_tsv``: XTREME's processed XNLI files, no header, ``premise<TAB>hypothesis<TAB>label``
  (written by ``csv.writer(delimiter='\\t', quoting=csv.QUOTE_NONE)`` in ``utils_preprocess.py``,
  read by ``third_party/processors/xnli.py`` with plain tab splitting, as here). Older
  revisions wrote test files with no label column; those are refused, not given XTREME's dummy
  ``neutral``.
- ``pawsx_tsv``: the PAWS-X release (``x-final.tar.gz``), header ``id sentence1 sentence2
  label``, plain tab splitting.
- ``pawsx_xtreme_tsv``: XTREME's processed PAWS-X files (``pawsx_preprocess`` drops the
  release's header row and id column and writes with ``csv.writer(fout, delimiter='\\t')``:
  default quoting, so a sentence holding ``"`` is written ``"..."`` with its quotes doubled, and
  lines end in ``\\r\\n``). This reader undoes that quoting (XTREME's own processor reads the
  quotes as text); a field that is not a well-formed quoted field is taken as it is (files
  written with ``QUOTE_NONE``). Known oddities of the release, kept as they are (XTREME keeps
  them) and logged: translated rows whose sentence is the placeholder ``NS`` (failed
  translation; google-research-datasets/paws issue 15) and rows with empty sentences
  (machine-translated training data, issue 4). Labels other than ``0``/``1`` are errors naming
  the line.
- ``xnli_mt_tsv``: XNLI-MT 1.0 ``multinli.train.<lang>.tsv``, a header row ``premise<TAB>hypo
  <TAB>label`` (checked), then three columns; labels ``contradictory`` (= contradiction),
  ``entailment``, ``neutral``. Sources: XTREME's ``xnli_preprocess``, HF ``datasets``' xnli
  script (``csv.DictReader(delimiter='\\t', quoting=csv.QUOTE_NONE)``), google-research/bert's
  ``XnliProcessor``.
- ``xtreme_translated_tsv``: XTREME's translate-train (``gs://xtreme_translations/XNLI/
  translate-train/``): no header, five columns: English premise, English hypothesis,
  translated premise, translated hypothesis, label (names as XNLI-MT's). Source: TFDS's
  ``xtreme_xnli`` builder (``csv.reader(..., quoting=QUOTE_NONE)``, five values a row;
  google-research/xtreme issue 37: the English columns were added in September 2020). The
  earlier three-column files are not read (refused as another format).
- Both translation formats: plain tab splitting (quotes are text); a trailing ``\\r`` is
  dropped. Skipped and counted: blank lines, rows with another number of columns
  (:data:`SKIP_MALFORMED_TRANSLATION`, line numbers logged; more than 1% of the rows, and more
  than 10, is an error: the file is in another format), and pairs whose translated premise or
  hypothesis is empty (:data:`SKIP_EMPTY_TRANSLATION`: a failed translation is no training
  pair). Any other label is an error naming the line. Examples carry the file's language.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Callable, Iterator, Sequence

from xstilts_jax.tasks.examples import PairExample
from xstilts_jax.tasks.io import (SKIP_BLANK_LINE, DataError, ReadResult, Skips, check_file,
                                  read_lines)

log = logging.getLogger(__name__)

ANLI_LABEL_NAMES = {"e": "entailment", "n": "neutral", "c": "contradiction"}  # ANLI's labels
PAWSX_PLACEHOLDER = "NS"  # what PAWS-X's translated dev/test files hold for a failed translation
NO_GOLD_LABEL = "-"
SKIP_NO_GOLD_LABEL = "no gold label ('-')"
SKIP_QQP_MALFORMED = "malformed row (fewer tab-separated columns than the header; GLUE's QQP)"
# The annotator-label columns a SNLI 1.0 TSV row may lack (most training pairs have label1 only).
SNLI_OPTIONAL_COLUMNS = ("label2", "label3", "label4", "label5")
# The label names of the translated MultiNLI files -> NLI labels ("contradictory" is XNLI-MT's
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


class _Builder:
    """Collects examples of one file, mapping label strings to indices and counting skips."""

    def __init__(self, path: pathlib.Path, guid_prefix: str, labels: Sequence[str], language: str):
        self.path, self.guid_prefix, self.language = path, guid_prefix, language
        self.labels = tuple(labels)
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.examples: list[PairExample] = []
        self.skips = Skips()

    def skip(self, reason: str) -> None:
        self.skips.count(reason)

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



def _read_header_tsv(b: _Builder, texts: Sequence[str], labels: Sequence[str], *,
                     optional: Sequence[str] = (), short_rows: str | None = None) -> None:
    """A TSV with a header row, split on tabs only; columns found by name: ``texts`` (text_a,
    and text_b unless a single sentence) and the first of ``labels`` in the header. Every row
    is as wide as the header, except that trailing header columns named in ``optional`` may
    be absent. A narrower row is an error or, with ``short_rows`` (a skip reason), skipped,
    counted and its line number logged."""
    lines = read_lines(b.path)
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
    for lineno, line in read_lines(b.path):
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
    for lineno, line in read_lines(b.path):
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
    lines = read_lines(b.path)
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
              guid_prefix: str | None = None) -> ReadResult[PairExample]:
    """Every example of one file in a known format; an empty result is an error."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    path = check_file(path)
    builder = _Builder(path, guid_prefix or path.name, labels, language)
    FORMATS[format](builder)
    return builder.skips.finish(path, language, builder.examples, "examples")


__all__ = ["ANLI_LABEL_NAMES", "FORMATS", "SKIP_EMPTY_TRANSLATION", "SKIP_MALFORMED_TRANSLATION",
           "SKIP_NO_GOLD_LABEL", "SKIP_QQP_MALFORMED", "read_file"]
