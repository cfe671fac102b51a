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
    mnli      multi_nli, else glue/mnli      "train"                (dev_matched, dev_mismatched ->
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

English intermediate tasks (English only; no test split unless given)::

    qqp       glue/qqp                       "train"                "validation"    -
    sst2      glue/sst2                      "train"                "validation"    -
    snli      snli                           "train"                "validation"    "test"
    anli      anli/r1 + anli/r2 + anli/r3    "train"                "validation"    "test"
    anli_plus anli/r1..r3 + mnli + snli      "train" (all five)     anli "validation" (r1..r3)
    squad_v2  squad/v2.0                     "train"                "validation"    -
    hellaswag hellaswag                      "train"                "validation"    -
    cosmosqa  cosmos_qa                      "train"                "validation"    -

A task may read several TFDS datasets (parts, concatenated in order: ANLI's three rounds,
ANLI+'s five sources; ``guid`` names each record's dataset) and a part may have candidates,
the first one prepared being read: MultiNLI (mnli, xnli train, anli_plus) is ``multi_nli``,
else ``glue/mnli`` (same split names; GLUE's copy has no ``-`` labels, TFDS's ``multi_nli``
drops them). The combined :class:`classification.ReadResult` lists every dataset folder in
``files`` and has their deepest common folder as ``path``.

XNLI's premise is a ``Translation`` (every language), its hypothesis a
``TranslationVariableLanguages``; the requested language is picked out of both. XNLI's
training data is MultiNLI, as in :data:`classification.XNLI`.

Notes on the builders:

- Labels are mapped BY NAME from the prepared dataset's own ``ClassLabel`` names: TFDS's XNLI
  / MultiNLI / SNLI / glue/mnli order is (entailment, neutral, contradiction), ours is
  :data:`classification.NLI_LABELS`; ANLI's names are (e, n, c), read as entailment, neutral,
  contradiction; PAWS-X's TFDS names are (different_meaning, paraphrase), glue/qqp's
  (not_duplicate, duplicate), glue/sst2's (negative, positive), ours ("0", "1") for all
  three; cosmos_qa's are ("0", "1", "2", "3"), the index of the right answer. Tagging tags are
  returned as strings.
- Builder quirks of the intermediate tasks (TFDS 4.9.10 sources read): ``snli`` keeps the
  ``-`` (no gold label) pairs with label -1: skipped here and counted under
  ``classification.SKIP_NO_GOLD_LABEL``, as the file reader does. ``glue/qqp`` drops GLUE's
  malformed QQP rows when it prepares (``csv.DictReader`` gives None for missing fields and
  such rows are filtered), so nothing is counted here. ``glue/sst2``'s single sentence gives
  ``PairExample.text_b = None``. ``anli`` is built from the ANLI v0.1 release (``anli_v0.1/
  R<n>/{train,dev,test}.jsonl``, the same keys as v1.0). ``squad/v2.0`` unanswerable questions
  (``is_impossible``) become ``QAExample(answers=(), is_impossible=True)``; their
  ``plausible_answers`` are not used.
- Multiple choice (:class:`MCExample`, as :mod:`xstilts_jax.tasks.multiple_choice` builds
  them): cosmos_qa prompt = ``context + " " + question``, choices ``answer0..3``, exactly as
  the file reader. ``hellaswag`` keeps only the release's ``ctx`` (``= ctx_a + " " + ctx_b``)
  as ``context``, not ``ctx_a`` and ``ctx_b``, so the file reader's split (prompt ``ctx_a``,
  choices ``ctx_b + " " + ending``) cannot be rebuilt: here prompt = ``context`` (all of
  ``ctx``), choices = the endings. The words are the same, only the segment boundary moves
  (``ctx_b``, usually one or two words and empty for most WikiHow items, is in the prompt):
  scores from this source are close to, not identical with, the file reader's. Unlabelled
  test splits (hellaswag, cosmos_qa, glue) are not offered.
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
  mlqa, tydi_qa, paws_x_wiki, glue, snli, anli, hellaswag and cosmos_qa prepare without
  TensorFlow (their generators read with ``etils.epath``):
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
from xstilts_jax.tasks.multiple_choice import MCExample
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
# TFDS ClassLabel names -> ours, where they differ; keyed by "builder/config", else builder.
_LABEL_RENAMES = {
    "paws_x_wiki": {"different_meaning": "0", "paraphrase": "1"},
    "glue/qqp": {"not_duplicate": "0", "duplicate": "1"},
    "glue/sst2": {"negative": "0", "positive": "1"},
    "anli": classification.ANLI_LABEL_NAMES,
}
# The (text_a, text_b) features of the pair builders (xnli is picked apart separately);
# text_b None: a single sentence.
_PAIR_FIELDS = {
    "multi_nli": ("premise", "hypothesis"), "glue/mnli": ("premise", "hypothesis"),
    "snli": ("premise", "hypothesis"), "anli": ("context", "hypothesis"),
    "glue/qqp": ("question1", "question2"), "glue/sst2": ("sentence", None),
    "paws_x_wiki": ("sentence1", "sentence2"),
}
_CLASSIFICATION_LABELS = {t.name: t.labels for t in classification.TASKS}
_NUM_CHOICES = {"hellaswag": 4, "cosmosqa": 4}

# Builders defined in TFDS's legacy packages: not found by name until their module is
# imported (TFDS's own lazy import of all legacy packages stops at the first one that needs
# TensorFlow). The others live in tensorflow_datasets/datasets/ and are found by name.
_LEGACY_MODULES = {
    "xnli": "tensorflow_datasets.text.xnli",
    "multi_nli": "tensorflow_datasets.text.multi_nli",
    "xquad": "tensorflow_datasets.question_answering.xquad",
    "tydi_qa": "tensorflow_datasets.question_answering.tydi_qa",
    "wikiann": "tensorflow_datasets.text.wikiann",
    "glue": "tensorflow_datasets.text.glue",
    "hellaswag": "tensorflow_datasets.text.hellaswag",
    "cosmos_qa": "tensorflow_datasets.question_answering.cosmos_qa",
}
# Builders whose generators need TensorFlow (tf.io.gfile) or another package to PREPARE.
_PREPARE_NEEDS = {
    "multi_nli": "TensorFlow", "wikiann": "TensorFlow", "tatoeba": "TensorFlow",
    "bucc": "TensorFlow", "xtreme_pos": "TensorFlow and conllu",
}

SKIP_EMPTY_SENTENCE = "sentence with no tokens left (every form or UPOS was '_')"
SKIP_NO_TRANSLATION = "pair with no hypothesis in the language"

PAIR_TASKS = ("xnli", "mnli", "pawsx", "qqp", "sst2", "snli", "anli", "anli_plus")
QA_TASKS = ("squad", "squad_v2", "xquad", "mlqa", "tydiqa")
CHOICE_TASKS = ("hellaswag", "cosmosqa")
TASKS = PAIR_TASKS + QA_TASKS + ("panx", "udpos", "tatoeba", "bucc2018") + CHOICE_TASKS


class NotPreparedError(DataError):
    """A TFDS dataset that is not prepared in the data_dir; the message says how to."""


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


def _mnli(split: str, language: str) -> tuple[TfdsSplit, ...]:
    """MultiNLI's candidates: TFDS's multi_nli, else GLUE's copy (same split names)."""
    return (TfdsSplit("multi_nli", None, split, language),
            TfdsSplit("glue", "mnli", split, language))


def _anli(split: str, language: str) -> tuple[tuple[TfdsSplit, ...], ...]:
    """ANLI's three rounds, in order (one part each)."""
    return tuple((TfdsSplit("anli", r, split, language),) for r in ("r1", "r2", "r3"))


_TRAIN_DEV = {"train": "train", "dev": "validation"}
_TRAIN_DEV_TEST = {"train": "train", "dev": "validation", "test": "test"}


def tfds_parts(task: str, split: str, language: str) -> tuple[tuple[TfdsSplit, ...], ...]:
    """Where ``task``'s ``split`` in ``language`` lives in TFDS: its parts, read in order and
    concatenated, each a tuple of candidates of which the first prepared one is read (see the
    module docstring); :class:`DataError` when there is none."""
    if task == "xnli":
        _check_language(task, language, classification.XNLI_LANGUAGES)
        _check_split(task, split, _TRAIN_DEV_TEST)
        if split == "train":
            _english_only(task, split, language, "MultiNLI (TFDS multi_nli or glue/mnli)")
            return (_mnli("train", language),)
        return ((TfdsSplit("xnli", None, _TRAIN_DEV_TEST[split], language),),)
    if task == "mnli":
        _check_language(task, language, ("en",))
        table = {"train": "train", "dev_matched": "validation_matched",
                 "dev_mismatched": "validation_mismatched"}
        _check_split(task, split, table)
        return (_mnli(table[split], language),)
    if task in ("qqp", "sst2"):
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV)
        return ((TfdsSplit("glue", task, _TRAIN_DEV[split], language),),)
    if task == "snli":
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV_TEST)
        return ((TfdsSplit("snli", None, _TRAIN_DEV_TEST[split], language),),)
    if task == "anli":
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV_TEST)
        return _anli(_TRAIN_DEV_TEST[split], language)
    if task == "anli_plus":
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV)
        if split == "dev":
            return _anli("validation", language)
        return _anli("train", language) + (_mnli("train", language),
                                           (TfdsSplit("snli", None, "train", language),))
    if task == "squad_v2":
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV)
        return ((TfdsSplit("squad", "v2.0", _TRAIN_DEV[split], language),),)
    if task in CHOICE_TASKS:
        _check_language(task, language, ("en",))
        _check_split(task, split, _TRAIN_DEV)
        builder = "cosmos_qa" if task == "cosmosqa" else task
        return ((TfdsSplit(builder, None, _TRAIN_DEV[split], language),),)
    return ((_single_split(task, split, language),),)


def tfds_split(task: str, split: str, language: str) -> TfdsSplit:
    """The TFDS builder, config and split holding ``task``'s ``split`` in ``language`` (the
    first candidate, for MultiNLI), for a split read from one dataset; :class:`DataError`
    when there is none or the split combines several (:func:`tfds_parts`)."""
    parts = tfds_parts(task, split, language)
    if len(parts) != 1:
        raise DataError(f"task {task!r} split {split!r} combines {len(parts)} TFDS datasets "
                        f"({', '.join(p[0].name for p in parts)}): see tfds_parts")
    return parts[0][0]


def _single_split(task: str, split: str, language: str) -> TfdsSplit:
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
        raise NotPreparedError(f"TFDS dataset {where.name!r} (builder {where.builder!r}, config "
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


def open_first(candidates: Sequence[TfdsSplit], data_dir: str | os.PathLike | None = None):
    """``(where, source)`` of the first of ``candidates`` that is prepared (:func:`open_split`);
    :class:`NotPreparedError` naming every candidate when none is."""
    errors: list[NotPreparedError] = []
    for where in candidates:
        try:
            return where, open_split(where, data_dir)
        except NotPreparedError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    names = ", ".join(repr(w.name) for w in candidates)
    raise NotPreparedError(f"none of the TFDS datasets {names} (tried in this order) is "
                           f"prepared: " + " | ".join(str(e) for e in errors))


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


def _by_name(table: dict[str, Any], where: TfdsSplit, default=None):
    """``table``'s entry for ``builder/config``, else for ``builder``."""
    return table.get(where.name, table.get(where.builder, default))


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _read_pairs(task: str, where: TfdsSplit, source) -> classification.ReadResult:
    labels = _CLASSIFICATION_LABELS[task]
    where_s = f"{where.name}:{where.split}"
    label_of = _label_map(source, "label", labels, _by_name(_LABEL_RENAMES, where, {}), where_s)
    fields = _by_name(_PAIR_FIELDS, where)
    if fields is None and where.builder != "xnli":
        raise DataError(f"{where_s}: no pair features known for TFDS builder {where.name!r}")
    examples: list[PairExample] = []
    skipped: dict[str, int] = {}
    for i, record in _records(source):
        guid = f"{where_s}:{i}"
        if where.builder == "xnli":
            premise = _text(record["premise"][where.language])
            hyp = record["hypothesis"]
            langs = [_text(x) for x in hyp["language"]]
            if where.language not in langs:
                _count(skipped, SKIP_NO_TRANSLATION)
                continue
            hypothesis = _text(hyp["translation"][langs.index(where.language)])
        else:
            premise = _text(record[fields[0]])
            hypothesis = None if fields[1] is None else _text(record[fields[1]])
        label = int(record["label"])
        if label < 0:
            if where.builder != "snli":
                raise DataError(f"{guid}: label {label} (an unlabelled record)")
            _count(skipped, classification.SKIP_NO_GOLD_LABEL)  # snli keeps '-' as -1
            continue
        examples.append(PairExample(guid, premise.strip(),
                                    None if hypothesis is None else hypothesis.strip(),
                                    label_of[label], where.language))
    for reason, count in skipped.items():
        log.warning("%s: skipped %d: %s", where_s, count, reason)
    _empty(len(examples), where, source)
    return classification.ReadResult(_path(source), examples, skipped)


def _read_choices(task: str, where: TfdsSplit, source) -> readers.ReadResult:
    """HellaSwag / CosmosQA records -> :class:`MCExample` (see the module docstring)."""
    where_s = f"{where.name}:{where.split}"
    num_choices = _NUM_CHOICES[task]
    if task == "cosmosqa":
        names = _label_map(source, "label", (), {}, where_s)
        if names != [str(k) for k in range(num_choices)]:
            raise DataError(f"{where_s}: ClassLabel 'label' names {names}, expected "
                            f"{[str(k) for k in range(num_choices)]}")
    examples: list[MCExample] = []
    for i, record in _records(source):
        guid = f"{where_s}:{i}"
        if task == "hellaswag":
            prompt = _text(record["context"]).strip()
            choices = tuple(_text(e).strip() for e in record["endings"])
        else:
            prompt = _text(record["context"]).strip() + " " + _text(record["question"]).strip()
            choices = tuple(_text(record[f"answer{k}"]).strip() for k in range(num_choices))
        label = int(record["label"])
        if len(choices) != num_choices:
            raise DataError(f"{guid}: {len(choices)} choices, expected {num_choices}")
        if not 0 <= label < num_choices:
            raise DataError(f"{guid}: label {label} is not a choice index 0 to "
                            f"{num_choices - 1} (an unlabelled record?)")
        examples.append(MCExample(guid, prompt, choices, label, where.language))
    _empty(len(examples), where, source)
    return readers.ReadResult(_path(source), where.language, tuple(examples), {})


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
        if "is_impossible" in record and bool(record["is_impossible"]):  # squad/v2.0
            if raw:
                raise DataError(f"{where_s}: question {qid!r}: is_impossible but has "
                                f"{len(raw)} answers")
            paragraph = paragraphs.setdefault((title, context), len(paragraphs))
            examples.append(QAExample(qid, _text(record["question"]), context, (), title,
                                      paragraph, is_impossible=True, language=where.language))
            continue
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
                                  title, paragraph, language=where.language))
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
    in ``language`` (an XTREME code), read from the TFDS dataset(s) prepared in ``data_dir``
    (default: TFDS's, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

    Returns what our file readers return: a :class:`classification.ReadResult` of
    :class:`PairExample` (xnli, mnli, pawsx, qqp, sst2, snli, anli, anli_plus), a
    :class:`readers.ReadResult` of :class:`QAExample` (squad, squad_v2, xquad, mlqa, tydiqa;
    ``mismatches`` and ``allow_unanswered`` as in :func:`readers.read_squad`), of
    :class:`MCExample` (hellaswag, cosmosqa) or of :class:`TaggedSentence` (panx, udpos), for
    tatoeba ``(source sentences, English sentences)``, for bucc2018 a :class:`BuccGold`.
    A split combined from several datasets (anli, anli_plus) is opened whole before any is read.
    """
    parts = tfds_parts(task, split, language)
    opened = [open_first(candidates, data_dir) for candidates in parts]
    if task in PAIR_TASKS:
        return classification.combine_results([_read_pairs(task, where, source)
                                               for where, source in opened])
    if len(opened) != 1:  # pragma: no cover - only pair tasks combine datasets
        raise AssertionError(f"task {task!r}: {len(opened)} parts")
    where, source = opened[0]
    if task in QA_TASKS:
        return _read_qa(where, source, mismatches, allow_unanswered)
    if task in CHOICE_TASKS:
        return _read_choices(task, where, source)
    if task in ("panx", "udpos"):
        return _read_tagging(task, where, source)
    if task == "tatoeba":
        return _read_tatoeba(where, source)
    return _read_bucc(where, source)


__all__ = ["BUCC_LANGUAGES", "CHOICE_TASKS", "MLQA_LANGUAGES", "PAIR_TASKS", "PANX_TAGS",
           "PAWSX_LABELS", "PAWSX_LANGUAGES", "QA_TASKS", "TASKS", "TYDIQA_LANGUAGES",
           "UDPOS_LANGUAGES", "XQUAD_LANGUAGES", "BuccGold", "DataError", "NotPreparedError",
           "TfdsSplit", "open_first", "open_split", "prepare_hint", "read_tfds", "tfds_parts",
           "tfds_split"]
