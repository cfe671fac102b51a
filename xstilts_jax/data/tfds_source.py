"""``data.source = "tfds"``: XTREME tasks read from TFDS-prepared datasets, without TensorFlow.

:func:`read_tfds` returns the same example types as our own file readers
(:mod:`xstilts_jax.tasks.classification`, :mod:`xstilts_jax.tasks.readers`), read with
``tfds.data_source(..., download=False)``: random access to ArrayRecord files, decoded with
TFDS's numpy feature decoding. Nothing is downloaded here and TensorFlow is never imported;
the dataset must already be prepared in ``data_dir`` in a random-access format
(``file_format="array_record"``), else :class:`DataError` says which builder / config /
split is missing and how to prepare it.

Mapping (TFDS 4.9.10 builders, read from their source; our split -> TFDS split)::

    task      builder[/config]               train                  dev             test
    xnli      xnli (one config, 15 langs)    multi_nli "train" (en) "validation"    "test"
    mnli      multi_nli                      "train"                (dev_matched, dev_mismatched ->
                                                      "validation_matched", "validation_mismatched")
    pawsx     paws_x_wiki/<lang>             "train" (en)           "validation"    "test"
    squad     squad/v1.1 (en)                "train"                "validation"    -
    xquad     xquad/<lang>                   squad/v1.1 "train"     -               "test"
    mlqa      mlqa/<lang>                    squad/v1.1 "train"     "validation"    "test"
    tydiqa    tydi_qa/goldp                  "train" (id prefix)    -               "validation-<l>"
    panx      wikiann/<lang>                 "train"                "validation"    "test"
    udpos     xtreme_pos/xtreme_pos_<code>   "train"                "dev"           "test"
    tatoeba   tatoeba/tatoeba_<lang>         -                      -               "train" (only)
    bucc2018  bucc/bucc_<lang>               -                      "validation"    "test"

XNLI's premise is a ``Translation`` (every language), its hypothesis a
``TranslationVariableLanguages``; the requested language is picked out of both. XNLI's
training data is MultiNLI, as in :data:`classification.XNLI`.

Notes on the builders:

- Labels are mapped BY NAME from the prepared dataset's own ``ClassLabel`` names: TFDS's XNLI
  / MultiNLI order is (entailment, neutral, contradiction), ours is
  :data:`classification.NLI_LABELS`; PAWS-X's TFDS names are (different_meaning,
  paraphrase), ours ("0", "1"). Tagging tags are returned as strings.
- Order. TFDS writes the examples of a split in a deterministic order shuffled by a hash of
  each example's key, so records are NOT in the order of the original files. Pairs stay
  aligned (Tatoeba sentences, BUCC ids, QA ids), ``guid`` is
  ``"<builder>[/<config>]:<split>:<record index>"`` and ``QAExample.paragraph`` numbers the
  distinct (title, context) pairs in record order (questions sharing a context share it).
- TyDiQA-GoldP "train" holds every language; as XTREME's ``tydiqa_preprocess`` does, a
  language's training examples are those whose id starts with its English name
  (``english-...``). TyDiQA has no dev split in XTREME (its GoldP dev files are the test).
- UDPOS: ``xtreme_pos`` groups all UD v2.5 treebanks of a language as XTREME does, and drops
  tokens whose form or UPOS is ``_``; sentences left empty are skipped (counted). In TFDS
  4.9.10 its config names for Tamil and Tagalog are swapped (``_LANGS`` maps "ta" to
  Tagalog, "tl" to Tamil); the config is chosen by the treebank language name, so our "ta"
  reads Tamil.
- Tatoeba: TFDS keeps each raw line, line ending included; it is stripped here.
- BUCC: TFDS's ``bucc`` builder stores only the gold pairs (one example per line of the
  ``.gold`` file, with both sentences), not the full monolingual sentence pools XTREME mines
  from, so :class:`BuccGold` is what it can give: mining over these sentences alone is much
  easier than BUCC 2018 and its F1 is not comparable to XTREME's.
- Preparing (not reading) some builders needs more than TFDS: the ``tfds`` CLI needs
  TensorFlow, and the generators of multi_nli, wikiann, tatoeba, bucc and xtreme_pos read their
  raw files with ``tf.io.gfile`` (xtreme_pos also needs ``conllu``). xnli, squad, xquad,
  mlqa, tydi_qa and paws_x_wiki prepare without TensorFlow:
  ``tfds.builder(name, data_dir=...).download_and_prepare(file_format="array_record")``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import pathlib
from typing import Any, Literal, Sequence

from xstilts_jax.tasks import classification, readers
from xstilts_jax.tasks.classification import DataError, PairExample
from xstilts_jax.tasks.readers import QAExample, TaggedSentence

log = logging.getLogger(__name__)

from xstilts_jax.tasks.classification import PAWSX_LABELS, PAWSX_LANGUAGES  # noqa: E402
from xstilts_jax.tasks.readers import (BUCC_LANGUAGES, MLQA_LANGUAGES,  # noqa: E402
                                       PANX_LABELS as PANX_TAGS, TYDIQA_LANGUAGE_NAMES,
                                       XQUAD_LANGUAGES)

TYDIQA_LANGUAGES = TYDIQA_LANGUAGE_NAMES  # the English names TyDiQA's question ids start with
# XTREME's 33 UDPOS languages -> the UD language name xtreme_pos globs treebanks by.
UDPOS_LANGUAGES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}
# TFDS ClassLabel names -> ours, where they differ.
_LABEL_RENAMES = {"pawsx": {"different_meaning": "0", "paraphrase": "1"}}

# Builders defined in TFDS's legacy packages: not found by name until their module is
# imported (TFDS's own lazy import of all legacy packages stops at the first one that needs
# TensorFlow). The others live in tensorflow_datasets/datasets/ and are found by name.
_LEGACY_MODULES = {
    "xnli": "tensorflow_datasets.text.xnli",
    "multi_nli": "tensorflow_datasets.text.multi_nli",
    "xquad": "tensorflow_datasets.question_answering.xquad",
    "tydi_qa": "tensorflow_datasets.question_answering.tydi_qa",
    "wikiann": "tensorflow_datasets.text.wikiann",
}
# Builders whose generators need TensorFlow (tf.io.gfile) or another package to PREPARE.
_PREPARE_NEEDS = {
    "multi_nli": "TensorFlow", "wikiann": "TensorFlow", "tatoeba": "TensorFlow",
    "bucc": "TensorFlow", "xtreme_pos": "TensorFlow and conllu",
}

SKIP_EMPTY_SENTENCE = "sentence with no tokens left (every form or UPOS was '_')"
SKIP_NO_TRANSLATION = "pair with no hypothesis in the language"

TASKS = ("xnli", "mnli", "pawsx", "squad", "xquad", "mlqa", "tydiqa", "panx", "udpos",
         "tatoeba", "bucc2018")


@dataclasses.dataclass(frozen=True)
class TfdsSplit:
    """Where a (task, split, language) lives in TFDS."""

    builder: str  # registered builder name
    config: str | None
    split: str  # TFDS split name
    language: str

    @property
    def name(self) -> str:
        """The name ``tfds.data_source`` takes: ``builder[/config]``."""
        return self.builder if self.config is None else f"{self.builder}/{self.config}"


@dataclasses.dataclass(frozen=True)
class BuccGold:
    """The gold pairs of a BUCC 2018 split as TFDS stores them: the sentences that take part
    in a gold pair (id -> sentence) and the pairs (source id, English id). The non-parallel
    sentences of the BUCC corpora are not in TFDS (see the module docstring)."""

    path: pathlib.Path
    language: str
    source: dict[str, str]
    target: dict[str, str]  # English
    gold: tuple[tuple[str, str], ...]

    def __len__(self) -> int:
        return len(self.gold)


# --------------------------------------------------------------------------- mapping


def _check_language(task: str, language: str, languages) -> None:
    if language not in languages:
        raise DataError(f"task {task!r} has no language {language!r} in TFDS; its languages: "
                        f"{' '.join(sorted(languages))}")


def _check_split(task: str, split: str, table: dict[str, Any]) -> None:
    if split not in table:
        raise DataError(f"task {task!r} has no split {split!r} in TFDS; its splits: "
                        f"{', '.join(table)}")


def _english_only(task: str, split: str, language: str, what: str) -> None:
    if language != "en":
        raise DataError(f"task {task!r} split {split!r} is {what}, English only; "
                        f"not {language!r} (XTREME trains zero-shot on English)")


def _udpos_config(language: str) -> str:
    """xtreme_pos's config for an XTREME language, found by the UD language name its
    builder globs treebanks by (TFDS 4.9.10 swaps the codes of Tamil and Tagalog)."""
    wanted = UDPOS_LANGUAGES[language]
    try:
        module = importlib.import_module(
            "tensorflow_datasets.datasets.xtreme_pos.xtreme_pos_dataset_builder")
        names = dict(getattr(module, "_LANGS"))
    except (ImportError, AttributeError, TypeError):
        names = {}
    codes = [code for code, name in names.items() if name == wanted]
    return f"xtreme_pos_{codes[0] if len(codes) == 1 else language}"


def tfds_split(task: str, split: str, language: str) -> TfdsSplit:
    """The TFDS builder, config and split holding ``task``'s ``split`` in ``language``
    (see the table in the module docstring); :class:`DataError` when there is none."""
    if task == "xnli":
        _check_language(task, language, classification.XNLI_LANGUAGES)
        table = {"train": "train", "dev": "validation", "test": "test"}
        _check_split(task, split, table)
        if split == "train":
            _english_only(task, split, language, "MultiNLI (TFDS multi_nli)")
            return TfdsSplit("multi_nli", None, "train", language)
        return TfdsSplit("xnli", None, table[split], language)
    if task == "mnli":
        _check_language(task, language, ("en",))
        table = {"train": "train", "dev_matched": "validation_matched",
                 "dev_mismatched": "validation_mismatched"}
        _check_split(task, split, table)
        return TfdsSplit("multi_nli", None, table[split], language)
    if task == "pawsx":
        _check_language(task, language, PAWSX_LANGUAGES)
        table = {"train": "train", "dev": "validation", "test": "test"}
        _check_split(task, split, table)
        if split == "train":
            _english_only(task, split, language, "PAWS (the TFDS split of other languages is "
                                                 "machine-translated)")
        return TfdsSplit("paws_x_wiki", language, table[split], language)
    if task == "squad":
        _check_language(task, language, ("en",))
        table = {"train": "train", "dev": "validation"}
        _check_split(task, split, table)
        return TfdsSplit("squad", "v1.1", table[split], language)
    if task in ("xquad", "mlqa"):
        _check_language(task, language, XQUAD_LANGUAGES if task == "xquad" else MLQA_LANGUAGES)
        table = ({"train": "train", "test": "test"} if task == "xquad"
                 else {"train": "train", "dev": "validation", "test": "test"})
        if task == "xquad" and split == "dev":
            raise DataError("task 'xquad' has only a test split (its English training and dev "
                            "data are SQuAD v1.1: task 'squad'); splits: train, test")
        _check_split(task, split, table)
        if split == "train":
            _english_only(task, split, language, "SQuAD v1.1 (TFDS squad/v1.1)")
            return TfdsSplit("squad", "v1.1", "train", language)
        return TfdsSplit(task, language, table[split], language)
    if task == "tydiqa":
        _check_language(task, language, TYDIQA_LANGUAGES)
        if split == "dev":
            raise DataError("task 'tydiqa' has no dev split: XTREME evaluates on the "
                            "TyDiQA-GoldP dev files as its test split (split 'test')")
        table = {"train": "train", "test": f"validation-{language}"}
        _check_split(task, split, table)
        return TfdsSplit("tydi_qa", "goldp", table[split], language)
    if task == "panx":
        _check_language(task, language, _builder_configs("wikiann"))
        table = {"train": "train", "dev": "validation", "test": "test"}
        _check_split(task, split, table)
        return TfdsSplit("wikiann", language, table[split], language)
    if task == "udpos":
        _check_language(task, language, UDPOS_LANGUAGES)
        table = {"train": "train", "dev": "dev", "test": "test"}
        _check_split(task, split, table)
        return TfdsSplit("xtreme_pos", _udpos_config(language), table[split], language)
    if task == "tatoeba":
        _check_language(task, language, readers.TATOEBA_LANGUAGES)
        if split != "test":
            raise DataError(f"task 'tatoeba' has only a test split (TFDS names it 'train'), "
                            f"not {split!r}")
        return TfdsSplit("tatoeba", f"tatoeba_{language}", "train", language)
    if task == "bucc2018":
        _check_language(task, language, BUCC_LANGUAGES)
        table = {"dev": "validation", "test": "test"}
        _check_split(task, split, table)
        return TfdsSplit("bucc", f"bucc_{language}", table[split], language)
    raise DataError(f"unknown task {task!r} for data.source 'tfds'; known: {', '.join(TASKS)}")


# --------------------------------------------------------------------------- TFDS access


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise DataError(f"data.source 'tfds' needs tensorflow-datasets ({e})") from None
    return tfds


def _builder_cls(builder: str):
    tfds = _tfds()
    module = _LEGACY_MODULES.get(builder)
    if module is not None:
        importlib.import_module(module)
    return tfds.builder_cls(builder)


def _builder_configs(builder: str) -> tuple[str, ...]:
    return tuple(_builder_cls(builder).builder_configs)


def prepare_hint(where: TfdsSplit, data_dir: str | os.PathLike | None) -> str:
    """How to prepare ``where``'s dataset in a random-access format."""
    d = f"'{data_dir}'" if data_dir is not None else "None"
    module = _LEGACY_MODULES.get(where.builder)
    imports = "import tensorflow_datasets as tfds" + (f"; import {module}" if module else "")
    hint = (f"prepare it (this downloads the raw data) with `tfds build {where.name} "
            f"--file_format=array_record" + (f" --data_dir={data_dir}" if data_dir else "")
            + "` (the tfds CLI needs TensorFlow) or, in Python, `" + imports
            + f"; tfds.builder('{where.name}', data_dir={d})"
            f".download_and_prepare(file_format='array_record')`")
    needs = _PREPARE_NEEDS.get(where.builder)
    if needs:
        hint += f"; TFDS's {where.builder} generator needs {needs} to prepare (not to read)"
    return hint


def open_split(where: TfdsSplit, data_dir: str | os.PathLike | None = None):
    """``tfds.data_source`` of ``where`` (random access, no TensorFlow), after checking that
    the config exists and the split is prepared in a random-access format."""
    tfds = _tfds()
    cls = _builder_cls(where.builder)
    if where.config is not None and where.config not in cls.builder_configs:
        raise DataError(f"TFDS builder {where.builder!r} has no config {where.config!r} "
                        f"(language {where.language!r})")
    root = None if data_dir is None else os.fspath(data_dir)
    builder = tfds.builder(where.name, data_dir=root, try_gcs=False)
    if not builder.is_prepared():
        raise DataError(f"TFDS dataset {where.name!r} (builder {where.builder!r}, config "
                        f"{where.config!r}, version {builder.version}; wanted: split "
                        f"{where.split!r}, language {where.language!r}) is not prepared in "
                        f"{builder.data_dir}; {prepare_hint(where, root)}")
    info = builder.info
    file_format = getattr(info.file_format, "value", info.file_format)
    if file_format not in ("array_record", "parquet"):
        raise DataError(f"TFDS dataset {where.name!r} in {builder.data_dir} is prepared as "
                        f"{file_format!r}, which has no random access without TensorFlow; "
                        f"prepare it again in another data_dir with "
                        f"file_format='array_record'")
    if where.split not in info.splits:
        raise DataError(f"TFDS dataset {where.name!r} in {builder.data_dir} has no split "
                        f"{where.split!r}; its splits: {', '.join(sorted(info.splits))}")
    return tfds.data_source(where.name, split=where.split, data_dir=root, download=False,
                            try_gcs=False)


def _records(source, chunk: int = 4096):
    """(index, decoded example) of every record, read in batches."""
    for start in range(0, len(source), chunk):
        indices = list(range(start, min(start + chunk, len(source))))
        for offset, example in enumerate(source.__getitems__(indices)):
            yield start + offset, example


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _text(value.item())
    raise DataError(f"expected text, got {type(value).__name__}")


def _label_map(source, key: str, labels: Sequence[str], renames: dict[str, str],
               where: str, sequence: bool = False) -> list[int | str]:
    """TFDS ClassLabel index -> our label index (``labels`` given) or name (``labels`` empty),
    by the prepared dataset's own label names."""
    feature = source.dataset_info.features[key]
    if sequence:
        feature = feature.feature
    names = [renames.get(n, n) for n in feature.names]
    if not labels:
        return names
    missing = [n for n in names if n not in labels]
    if missing:
        raise DataError(f"{where}: ClassLabel {key!r} names {feature.names} include "
                        f"{missing}, not among {', '.join(labels)}")
    return [labels.index(n) for n in names]


def _path(source) -> pathlib.Path:
    return pathlib.Path(str(source.dataset_info.data_dir))


def _empty(result_len: int, where: TfdsSplit, source) -> None:
    if not result_len:
        raise DataError(f"TFDS dataset {where.name!r} split {where.split!r} in "
                        f"{_path(source)}: no examples for {where.language!r}")


# --------------------------------------------------------------------------- readers


def _read_pairs(task: str, where: TfdsSplit, source) -> classification.ReadResult:
    labels = PAWSX_LABELS if task == "pawsx" else classification.NLI_LABELS
    where_s = f"{where.name}:{where.split}"
    label_of = _label_map(source, "label", labels, _LABEL_RENAMES.get(task, {}), where_s)
    examples: list[PairExample] = []
    skipped: dict[str, int] = {}
    for i, record in _records(source):
        guid = f"{where_s}:{i}"
        if where.builder == "xnli":
            premise = _text(record["premise"][where.language])
            hyp = record["hypothesis"]
            langs = [_text(x) for x in hyp["language"]]
            if where.language not in langs:
                skipped[SKIP_NO_TRANSLATION] = skipped.get(SKIP_NO_TRANSLATION, 0) + 1
                continue
            hypothesis = _text(hyp["translation"][langs.index(where.language)])
        elif where.builder == "multi_nli":
            premise, hypothesis = _text(record["premise"]), _text(record["hypothesis"])
        else:
            premise, hypothesis = _text(record["sentence1"]), _text(record["sentence2"])
        examples.append(PairExample(guid, premise.strip(), hypothesis.strip(),
                                    label_of[int(record["label"])], where.language))
    for reason, count in skipped.items():
        log.warning("%s: skipped %d: %s", where_s, count, reason)
    _empty(len(examples), where, source)
    return classification.ReadResult(_path(source), examples, skipped)


def _read_qa(where: TfdsSplit, source, mismatches: str,
             allow_unanswered: bool) -> readers.ReadResult:
    if mismatches not in ("error", "skip"):
        raise ValueError(f"mismatches must be 'error' or 'skip', not {mismatches!r}")
    where_s = f"{where.name}:{where.split}"
    prefix = (TYDIQA_LANGUAGES[where.language] + "-"
              if where.builder == "tydi_qa" and where.split == "train" else None)
    examples: list[QAExample] = []
    skipped: dict[str, int] = {}
    paragraphs: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    for _, record in _records(source):
        qid = _text(record["id"])
        if prefix is not None and not qid.startswith(prefix):
            continue
        if qid in seen:
            raise DataError(f"{where_s}: question {qid!r}: duplicate question id")
        seen.add(qid)
        context, title = _text(record["context"]), _text(record["title"])
        raw = list(zip(record["answers"]["text"], record["answers"]["answer_start"]))
        if not raw and not allow_unanswered:
            raise DataError(f"{where_s}: question {qid!r}: no answers (pass "
                            f"allow_unanswered=True)")
        answers = []
        for k, (answer, start) in enumerate(raw):
            answer, start = _text(answer), int(start)
            found = context[start:start + len(answer)] if start >= 0 else None
            if found != answer:
                if mismatches == "error":
                    raise DataError(f"{where_s}: question {qid!r} answer {k}: text {answer!r} "
                                    f"but context[{start}:{start + len(answer)}] is {found!r}")
                skipped[readers.SKIP_ANSWER_MISMATCH] = (
                    skipped.get(readers.SKIP_ANSWER_MISMATCH, 0) + 1)
                continue
            answers.append((answer, start))
        if raw and not answers:
            skipped[readers.SKIP_NO_VALID_ANSWER] = skipped.get(readers.SKIP_NO_VALID_ANSWER,
                                                                0) + 1
            continue
        paragraph = paragraphs.setdefault((title, context), len(paragraphs))
        examples.append(QAExample(qid, _text(record["question"]), context, tuple(answers),
                                  title, paragraph))
    for reason, count in skipped.items():
        log.warning("%s: skipped %d: %s", where_s, count, reason)
    _empty(len(examples), where, source)
    return readers.ReadResult(_path(source), where.language, tuple(examples), skipped)


def _read_tagging(task: str, where: TfdsSplit, source) -> readers.ReadResult:
    where_s = f"{where.name}:{where.split}"
    key, known = ("tags", PANX_TAGS) if task == "panx" else ("upos", readers.UPOS_TAGS)
    names = _label_map(source, key, (), {}, where_s, sequence=True)
    unknown = [n for n in names if n not in known and n != "_"]
    if unknown:
        raise DataError(f"{where_s}: tag names {unknown} are not among {' '.join(known)}")
    examples: list[TaggedSentence] = []
    skipped: dict[str, int] = {}
    for i, record in _records(source):
        words = tuple(_text(w) for w in record["tokens"])
        tags = tuple(names[int(t)] for t in record[key])
        if len(words) != len(tags):
            raise DataError(f"{where_s}:{i}: {len(words)} tokens but {len(tags)} tags")
        if "_" in tags:
            raise DataError(f"{where_s}:{i}: UPOS '_' (xtreme_pos drops such tokens)")
        if not words:
            skipped[SKIP_EMPTY_SENTENCE] = skipped.get(SKIP_EMPTY_SENTENCE, 0) + 1
            continue
        examples.append(TaggedSentence(words, tags, f"{where_s}:{i}"))
    for reason, count in skipped.items():
        log.warning("%s: skipped %d: %s", where_s, count, reason)
    _empty(len(examples), where, source)
    return readers.ReadResult(_path(source), where.language, tuple(examples), skipped)


def _read_tatoeba(where: TfdsSplit, source) -> tuple[list[str], list[str]]:
    where_s = f"{where.name}:{where.split}"
    pairs = []
    for i, record in _records(source):
        s = _text(record["source_sentence"]).rstrip("\r\n")
        e = _text(record["target_sentence"]).rstrip("\r\n")
        if not s.strip() or not e.strip():
            raise DataError(f"{where_s}:{i}: empty sentence")
        pairs.append((s, e))
    _empty(len(pairs), where, source)
    return [s for s, _ in pairs], [e for _, e in pairs]


def _read_bucc(where: TfdsSplit, source) -> BuccGold:
    where_s = f"{where.name}:{where.split}"
    sides: tuple[dict[str, str], dict[str, str]] = ({}, {})
    gold = []
    for i, record in _records(source):
        ids = (_text(record["source_id"]), _text(record["target_id"]))
        sentences = (_text(record["source_sentence"]), _text(record["target_sentence"]))
        for side, sid, sentence in zip(sides, ids, sentences):
            if not sentence:
                raise DataError(f"{where_s}:{i}: id {sid!r} has no sentence (its gold "
                                f"pair names a sentence missing from the corpus)")
            if side.setdefault(sid, sentence) != sentence:
                raise DataError(f"{where_s}:{i}: id {sid!r} has two different sentences")
        gold.append(ids)
    _empty(len(gold), where, source)
    return BuccGold(_path(source), where.language, sides[0], sides[1], tuple(gold))


def read_tfds(task: str, split: str, language: str, *,
              data_dir: str | os.PathLike | None = None,
              mismatches: Literal["error", "skip"] = "error",
              allow_unanswered: bool = False):
    """``task``'s ``split`` ("train", "dev", "test"; mnli: "dev_matched"/"dev_mismatched")
    in ``language`` (an XTREME code), read from the TFDS dataset prepared in ``data_dir``
    (default: TFDS's, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

    Returns what our file readers return: a :class:`classification.ReadResult` of
    :class:`PairExample` (xnli, mnli, pawsx), a :class:`readers.ReadResult` of
    :class:`QAExample` (squad, xquad, mlqa, tydiqa; ``mismatches`` and ``allow_unanswered``
    as in :func:`readers.read_squad`) or of :class:`TaggedSentence` (panx, udpos), for
    tatoeba ``(source sentences, English sentences)``, for bucc2018 a :class:`BuccGold`.
    """
    where = tfds_split(task, split, language)
    source = open_split(where, data_dir)
    if task in ("xnli", "mnli", "pawsx"):
        return _read_pairs(task, where, source)
    if task in ("squad", "xquad", "mlqa", "tydiqa"):
        return _read_qa(where, source, mismatches, allow_unanswered)
    if task in ("panx", "udpos"):
        return _read_tagging(task, where, source)
    if task == "tatoeba":
        return _read_tatoeba(where, source)
    return _read_bucc(where, source)


__all__ = ["BUCC_LANGUAGES", "MLQA_LANGUAGES", "PANX_TAGS", "PAWSX_LABELS", "PAWSX_LANGUAGES",
           "TASKS", "TYDIQA_LANGUAGES", "UDPOS_LANGUAGES", "XQUAD_LANGUAGES", "BuccGold",
           "DataError", "TfdsSplit", "open_split", "prepare_hint", "read_tfds", "tfds_split"]
