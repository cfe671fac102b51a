"""``data.source = "tfds"``: tasks read from TFDS-prepared datasets, without TensorFlow.

Where each split lives in TFDS is the task's spec (``Split.tfds``: builder, config, split and
record reader; ``tasks/catalog``); this module knows the builders (their features, label
names, quirks) and reads their records. :func:`read_tfds` returns the same example types as
the file readers (``tasks/formats``), read with
``tfds.data_source(..., download=False)``: random access to ArrayRecord files, decoded with
TFDS's numpy feature decoding. Nothing is downloaded here and TensorFlow is never imported;
the dataset must already be prepared in ``data_dir`` in a random-access format
(``file_format="array_record"``), else :class:`DataError` says which builder / config /
split is missing and how to prepare it.

The specs map (TFDS 4.9.10 builders, read from their source): xnli (one config, 15
languages; its train is MultiNLI), multi_nli / glue/mnli, paws_x_wiki/<lang>, squad/v1.1,
squad/v2.0, xquad/<lang>, mlqa/<lang>, tydi_qa/goldp (train: every language, split by id
prefix; test and the English dev: "validation-<lang>"), wikiann/<lang>, xtreme_pos (by UD
language name), tatoeba/tatoeba_<lang> (its "train" is the test set), bucc/bucc_<lang>, glue/qqp,
glue/sst2, snli, anli/r1..r3, hellaswag, cosmos_qa. CCGbank and CommonsenseQA have no builder.

A task may read several TFDS datasets (parts, concatenated in order: ANLI's three rounds,
ANLI+'s five sources; ``guid`` names each record's dataset) and a part may have candidates,
the first one prepared being read: MultiNLI (mnli, xnli train, anli_plus) is ``multi_nli``,
else ``glue/mnli`` (same split names; GLUE's copy has no ``-`` labels, TFDS's ``multi_nli``
drops them). The combined :class:`~xstilts_jax.tasks.io.ReadResult` lists every dataset folder in
``files`` and has their deepest common folder as ``path``.

XNLI's premise is a ``Translation`` (every language), its hypothesis a
``TranslationVariableLanguages``; the requested language is picked out of both. XNLI's
training data is MultiNLI, as in the files layout.

Notes on the builders:

- Labels are mapped BY NAME from the prepared dataset's own ``ClassLabel`` names: TFDS's XNLI
  / MultiNLI / SNLI / glue/mnli order is (entailment, neutral, contradiction), ours is the
  spec's labels; ANLI's names are (e, n, c), read as entailment, neutral,
  contradiction; PAWS-X's TFDS names are (different_meaning, paraphrase), glue/qqp's
  (not_duplicate, duplicate), glue/sst2's (negative, positive), ours ("0", "1") for all
  three; cosmos_qa's are ("0", "1", "2", "3"), the index of the right answer. Tagging tags are
  returned as strings.
- Builder quirks of the intermediate tasks (TFDS 4.9.10 sources read): ``snli`` keeps the
  ``-`` (no gold label) pairs with label -1: skipped here and counted under
  ``formats.pairs.SKIP_NO_GOLD_LABEL``, as the file reader does. ``glue/qqp`` drops GLUE's
  malformed QQP rows when it prepares (``csv.DictReader`` gives None for missing fields and
  such rows are filtered), so nothing is counted here. ``glue/sst2``'s single sentence gives
  ``PairExample.text_b = None``. ``anli`` is built from the ANLI v0.1 release (``anli_v0.1/
  R<n>/{train,dev,test}.jsonl``, the same keys as v1.0). ``squad/v2.0`` unanswerable questions
  (``is_impossible``) become ``QAExample(answers=(), is_impossible=True)``; their
  ``plausible_answers`` are not used.
- Multiple choice (:class:`MCExample`, as ``formats/choices.py`` builds them): cosmos_qa
  prompt = ``context + " " + question``, choices ``answer0..3``, exactly as
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
  from, so the gold-paired sentences are all it can give: mining over these sentences alone is much
  easier than BUCC 2018 and its F1 is not comparable to XTREME's. It is read as a
  :class:`BuccData` with ``complete=False``, which retrieval reports.
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

from xstilts_jax.tasks.examples import (BuccData, MCExample, PairExample, QAExample,
                                        TaggedSentence, TranslationPair)
from xstilts_jax.tasks.formats.pairs import ANLI_LABEL_NAMES, SKIP_NO_GOLD_LABEL
from xstilts_jax.tasks.formats.squad import SKIP_ANSWER_MISMATCH, SKIP_NO_VALID_ANSWER
from xstilts_jax.tasks.io import DataError, ReadResult, Skips, combine
from xstilts_jax.tasks.registry import as_task
from xstilts_jax.tasks.sources.files import resolve
from xstilts_jax.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

# TFDS ClassLabel names -> ours, where they differ; keyed by "builder/config", else builder.
_LABEL_RENAMES = {
    "paws_x_wiki": {"different_meaning": "0", "paraphrase": "1"},
    "glue/qqp": {"not_duplicate": "0", "duplicate": "1"},
    "glue/sst2": {"negative": "0", "positive": "1"},
    "anli": ANLI_LABEL_NAMES,
}
# The (text_a, text_b) features of the pair builders (xnli is picked apart separately);
# text_b None: a single sentence.
_PAIR_FIELDS = {
    "multi_nli": ("premise", "hypothesis"), "glue/mnli": ("premise", "hypothesis"),
    "snli": ("premise", "hypothesis"), "anli": ("context", "hypothesis"),
    "glue/qqp": ("question1", "question2"), "glue/sst2": ("sentence", None),
    "paws_x_wiki": ("sentence1", "sentence2"),
}

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


class NotPreparedError(DataError):
    """A TFDS dataset that is not prepared in the data_dir; the message says how to."""


@dataclasses.dataclass(frozen=True)
class TfdsSplit:
    """Where a (task, split, language) lives in TFDS: a spec's :class:`TfdsDataset` with its
    placeholders filled for the language."""

    builder: str  # registered builder name
    config: str | None
    split: str  # TFDS split name
    language: str
    reader: str = ""  # the record reader (``_READERS``)

    @property
    def name(self) -> str:
        """The name ``tfds.data_source`` takes: ``builder[/config]``."""
        return self.builder if self.config is None else f"{self.builder}/{self.config}"


# --------------------------------------------------------------------------- mapping


def _xtreme_pos_config(ud_name: str, language: str) -> str:
    """xtreme_pos's config of a UD language name (the name its builder globs treebanks by:
    TFDS 4.9.10 swaps the codes of Tamil and Tagalog)."""
    try:
        module = importlib.import_module(
            "tensorflow_datasets.datasets.xtreme_pos.xtreme_pos_dataset_builder")
        names = dict(getattr(module, "_LANGS"))
    except (ImportError, AttributeError, TypeError):
        names = {}
    codes = [code for code, name in names.items() if name == ud_name]
    return f"xtreme_pos_{codes[0] if len(codes) == 1 else language}"


def tfds_parts(task: TaskSpec | str, split: str,
               language: str) -> tuple[tuple[TfdsSplit, ...], ...]:
    """Where ``task``'s ``split`` in ``language`` lives in TFDS: its parts, read in order and
    concatenated, each a tuple of candidates of which the first prepared one is read;
    :class:`DataError` when there is none (an unknown split or language, as in the files
    layout, or a split TFDS does not have)."""
    task = as_task(task)
    owner, name = resolve(task, split, language)
    spec = owner.split(name)
    if spec.tfds is None:
        why = f": {spec.tfds_note}" if spec.tfds_note else ""
        alias = f" (split {name!r} of {owner.name!r})" if (owner.name, name) != (task.name, split) else ""
        raise DataError(f"task {task.name!r} split {split!r}{alias} is not in TFDS{why}")

    def fill(text):
        return owner.fill(text, language)

    out = []
    for part in spec.tfds:
        candidates = []
        for d in part:
            config = None if d.config is None else fill(d.config)
            if d.builder == "xtreme_pos":
                config = _xtreme_pos_config(config, language)
            candidates.append(TfdsSplit(d.builder, config, fill(d.split), language, d.reader))
        out.append(tuple(candidates))
    return tuple(out)


def tfds_split(task: TaskSpec | str, split: str, language: str) -> TfdsSplit:
    """The TFDS builder, config and split holding ``task``'s ``split`` in ``language`` (the
    first candidate, for MultiNLI), for a split read from one dataset; :class:`DataError`
    when there is none or the split combines several (:func:`tfds_parts`)."""
    parts = tfds_parts(task, split, language)
    if len(parts) != 1:
        raise DataError(f"task {as_task(task).name!r} split {split!r} combines {len(parts)} TFDS "
                        f"datasets ({', '.join(p[0].name for p in parts)}): see tfds_parts")
    return parts[0][0]


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


def _finish(skips: Skips, examples: list, where: TfdsSplit, source) -> ReadResult:
    skips.log(f"{where.name}:{where.split}")
    _empty(len(examples), where, source)
    return ReadResult(path=_path(source), language=where.language, examples=examples,
                      skipped=dict(skips.counts))


def _read_pairs(task: TaskSpec, where: TfdsSplit, source, options) -> ReadResult[PairExample]:
    """Pair builders, and xnli (its premise a ``Translation`` of every language, its hypothesis
    a ``TranslationVariableLanguages``: the requested language is picked out of both)."""
    where_s = f"{where.name}:{where.split}"
    label_of = _label_map(source, "label", task.labels, _by_name(_LABEL_RENAMES, where, {}),
                          where_s)
    fields = _by_name(_PAIR_FIELDS, where)
    if fields is None and where.builder != "xnli":
        raise DataError(f"{where_s}: no pair features known for TFDS builder {where.name!r}")
    examples: list[PairExample] = []
    skips = Skips()
    for i, record in _records(source):
        guid = f"{where_s}:{i}"
        if where.builder == "xnli":
            premise = _text(record["premise"][where.language])
            hyp = record["hypothesis"]
            langs = [_text(x) for x in hyp["language"]]
            if where.language not in langs:
                skips.count(SKIP_NO_TRANSLATION)
                continue
            hypothesis = _text(hyp["translation"][langs.index(where.language)])
        else:
            premise = _text(record[fields[0]])
            hypothesis = None if fields[1] is None else _text(record[fields[1]])
        label = int(record["label"])
        if label < 0:
            if where.builder != "snli":
                raise DataError(f"{guid}: label {label} (an unlabelled record)")
            skips.count(SKIP_NO_GOLD_LABEL)  # snli keeps '-' as -1
            continue
        examples.append(PairExample(guid, premise.strip(),
                                    None if hypothesis is None else hypothesis.strip(),
                                    label_of[label], where.language))
    return _finish(skips, examples, where, source)


def _read_choices(task: TaskSpec, where: TfdsSplit, source, options) -> ReadResult[MCExample]:
    """HellaSwag / CosmosQA records -> :class:`MCExample` (see the module docstring)."""
    where_s = f"{where.name}:{where.split}"
    num_choices = task.num_choices
    if where.reader == "cosmosqa":
        names = _label_map(source, "label", (), {}, where_s)
        if names != [str(k) for k in range(num_choices)]:
            raise DataError(f"{where_s}: ClassLabel 'label' names {names}, expected "
                            f"{[str(k) for k in range(num_choices)]}")
    examples: list[MCExample] = []
    for i, record in _records(source):
        guid = f"{where_s}:{i}"
        if where.reader == "hellaswag":
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
    return _finish(Skips(), examples, where, source)


def _read_qa(task: TaskSpec, where: TfdsSplit, source, options) -> ReadResult[QAExample]:
    """SQuAD-like builders; ``tydiqa_train`` keeps the questions of the language (ids that
    start with its name, as XTREME's ``tydiqa_preprocess``)."""
    mismatches, allow_unanswered = options["mismatches"], options["allow_unanswered"]
    if mismatches not in ("error", "skip"):
        raise ValueError(f"mismatches must be 'error' or 'skip', not {mismatches!r}")
    where_s = f"{where.name}:{where.split}"
    prefix = (task.fill("{name}", where.language) + "-" if where.reader == "tydiqa_train"
              else None)
    examples: list[QAExample] = []
    skips = Skips()
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
                skips.count(SKIP_ANSWER_MISMATCH)
                continue
            answers.append((answer, start))
        if raw and not answers:
            skips.count(SKIP_NO_VALID_ANSWER)
            continue
        paragraph = paragraphs.setdefault((title, context), len(paragraphs))
        examples.append(QAExample(qid, _text(record["question"]), context, tuple(answers),
                                  title, paragraph, language=where.language))
    return _finish(skips, examples, where, source)


def _read_tagging(task: TaskSpec, where: TfdsSplit, source,
                  options) -> ReadResult[TaggedSentence]:
    """wikiann (PAN-X: ``tags``) and xtreme_pos (UDPOS: ``upos``); tags as strings, which must
    be the task's labels."""
    where_s = f"{where.name}:{where.split}"
    key = "tags" if where.reader == "wikiann" else "upos"
    names = _label_map(source, key, (), {}, where_s, sequence=True)
    unknown = [n for n in names if n not in task.labels and n != "_"]
    if unknown:
        raise DataError(f"{where_s}: tag names {unknown} are not among {' '.join(task.labels)}")
    examples: list[TaggedSentence] = []
    skips = Skips()
    for i, record in _records(source):
        words = tuple(_text(w) for w in record["tokens"])
        tags = tuple(names[int(t)] for t in record[key])
        if len(words) != len(tags):
            raise DataError(f"{where_s}:{i}: {len(words)} tokens but {len(tags)} tags")
        if "_" in tags:
            raise DataError(f"{where_s}:{i}: UPOS '_' (xtreme_pos drops such tokens)")
        if not words:
            skips.count(SKIP_EMPTY_SENTENCE)
            continue
        examples.append(TaggedSentence(words, tags, f"{where_s}:{i}"))
    return _finish(skips, examples, where, source)


def _read_tatoeba(task: TaskSpec, where: TfdsSplit, source,
                  options) -> ReadResult[TranslationPair]:
    where_s = f"{where.name}:{where.split}"
    pairs = []
    for i, record in _records(source):
        s = _text(record["source_sentence"]).rstrip("\r\n")
        e = _text(record["target_sentence"]).rstrip("\r\n")
        if not s.strip() or not e.strip():
            raise DataError(f"{where_s}:{i}: empty sentence")
        pairs.append(TranslationPair(s, e, f"{where_s}:{i}"))
    return _finish(Skips(), pairs, where, source)


def _read_bucc(task: TaskSpec, where: TfdsSplit, source, options) -> BuccData:
    """The gold pairs and the sentences in them: not BUCC's whole pools (``complete=False``)."""
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
    return BuccData(where.language, sides[0], sides[1], tuple(gold), (_path(source),),
                    complete=False)


_READERS = {"pairs": _read_pairs, "xnli": _read_pairs, "qa": _read_qa, "tydiqa_train": _read_qa,
            "hellaswag": _read_choices, "cosmosqa": _read_choices, "wikiann": _read_tagging,
            "xtreme_pos": _read_tagging, "tatoeba": _read_tatoeba, "bucc": _read_bucc}


def read_tfds(task: TaskSpec | str, split: str, language: str, *,
              data_dir: str | os.PathLike | None = None,
              mismatches: Literal["error", "skip"] = "error",
              allow_unanswered: bool = False) -> ReadResult | BuccData:
    """``task``'s ``split`` in ``language`` (an XTREME code), read from the TFDS dataset(s)
    prepared in ``data_dir`` (default: TFDS's, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

    Returns what the file readers return: a :class:`ReadResult` of the task family's examples
    (QA: ``mismatches`` and ``allow_unanswered`` as in ``formats.squad.read_squad``), or for
    bucc2018 a :class:`BuccData` of the gold pairs (``complete=False``). A split combined from
    several datasets (anli, anli_plus) is opened whole before any is read.
    """
    task = as_task(task)
    owner, _ = resolve(task, split, language)
    opened = [open_first(candidates, data_dir) for candidates in tfds_parts(task, split, language)]
    options = {"mismatches": mismatches, "allow_unanswered": allow_unanswered}
    results = [_READERS[where.reader](owner, where, source, options) for where, source in opened]
    return combine(results)


__all__ = ["NotPreparedError", "TfdsSplit", "open_first", "open_split", "prepare_hint",
           "read_tfds", "tfds_parts", "tfds_split"]
