"""Where the files of XTREME's tagging, QA and retrieval tasks are, and reading them by name.

For a (task, split, language) there is a list of candidate locations under ``data_dir``;
the first one present is read (all of its files must exist; a glob must match at least one
file). ``data_dir`` is XTREME's ``download/`` folder (what ``scripts/download_data.sh``
fills), into which the original releases can also be unpacked. Candidates (``<lang>``:
XTREME's ISO 639-1 code, ``<split>``: train, dev or test, ``{a,b}``: each of)::

    udpos    udpos/<split>-<lang>.tsv                        XTREME: word<TAB>tag
             ud-treebanks-v2.5/UD_*/<lang>_*-ud-<split>.conllu   UD v2.5: every treebank of the
                                                             language, in file-name order
    panx     panx/<split>-<lang>.tsv                         XTREME: word<TAB>tag
             panx_dataset/<lang>/<split>                     Rahimi et al.'s <lang>.tar.gz
             panx_dataset/<lang>-<split>                     the same, as XTREME renames them
    squad    squad/{train,dev}-v1.1.json                     (XTREME and the release)
             translate_train: squad/translate-train/squad.translate.train.en-<lang>.json
                   xtreme_translations/SQuAD/translate-train/squad.translate.train.en-<lang>.json
                   (XTREME's machine translations of SQuAD v1.1 train; en: train-v1.1.json)
    xquad    test: xquad/xquad.<lang>.json; train, dev: SQuAD v1.1 train, dev (en)
    mlqa     mlqa/MLQA_V1/<split>/<split>-context-<lang>-question-<lang>.json   XTREME
             MLQA_V1/<split>/<split>-context-<lang>-question-<lang>.json        release
             train: SQuAD v1.1 train (en)
    tydiqa   train (en): tydiqa/tydiqa-goldp-v1.1-train/tydiqa-goldp-v1.1-train.json
                         (the release file, which XTREME moves there; its English questions)
                         tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json  XTREME
                         tydiqa/tydiqa-goldp-v1.1-train/tydiqa.en.train.json  (train_qa.sh)
                         tydiqa/tydiqa-goldp-v1.1-train.json                   release
             test: tydiqa/tydiqa-goldp-v1.1-dev/tydiqa-goldp-dev-<name>.json   release
                   tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.<lang>.dev.json    XTREME
                   (<name>: readers.TYDIQA_LANGUAGE_NAMES, e.g. arabic)
             dev (en): the English test file, what XTREME's train_qa.sh evaluates on
    bucc2018 bucc2018/<lang>-en.{dev,test}.{<lang>,en,gold}                  XTREME
             bucc2018/<lang>-en/<lang>-en.{sample,training}.{<lang>,en,gold}  release
    squad_v2     squad/{train,dev}-v2.0.json                 SQuAD 2.0 release
    ccg          ccgbank_1_1/data/AUTO/<SS>/wsj_<SS><NN>.auto   CCGbank (LDC2005T13) as unpacked;
                 ccgbank/data/AUTO/..., ccgbank/AUTO/...      sections 02-21 train, 00 dev, 23 test
                 ccg/<split>.tsv                             a word<TAB>supertag export
    hellaswag    hellaswag/hellaswag_{train,val}.jsonl       release (rowanz/hellaswag; dev = val)
    cosmosqa     cosmosqa/{train,valid}.{csv,jsonl}          release (csv first; dev = valid)
    commonsenseqa  commonsenseqa/{train,dev}_rand_split.jsonl   release (its test file is
                 unlabelled: not read)
    tatoeba  tatoeba/tatoeba.<xxx>-eng.{<xxx>,eng}           LASER's files (<xxx>: ISO 639-3)
             LASER/data/tatoeba/v1/tatoeba.<xxx>-eng.{<xxx>,eng}   a LASER checkout
             tatoeba/<lang>-en.{<lang>,en}                   XTREME (unusable, see below)

Order: XTREME's files first, except for ``test``: XTREME's download removes the test labels
(``utils_preprocess.py``: tagging test files keep the words only, ``remove_qa_test_annotations``
blanks the QA answers, ``tatoeba_preprocess`` sorts the English side, ``download_bucc18``
deletes ``*.test.gold``), so for ``test`` the releases come first and XTREME's label-less
files, when they are what is found, are refused with a message saying so.

Splits (what XTREME uses; training is English only, its zero-shot setting): udpos and panx
train/dev/test; squad train/dev; xquad test, with SQuAD train/dev as its train/dev (XTREME's
``train_qa.sh`` trains and evaluates on them); mlqa dev/test and SQuAD train (MLQA's own dev
set is read per language; XTREME's zero-shot runs select on SQuAD dev instead); tydiqa train,
test (TyDiQA-GoldP's dev set: its test set is not public) and dev = the English test file;
bucc2018 dev/test (BUCC's sample/training data, XTREME's names); tatoeba test.

Translate-train SQuAD (split ``translate_train`` of ``squad``, the XQuAD languages other than
English; :func:`translate_train_languages`): the files of ``gs://xtreme_translations/SQuAD/
translate-train/``, SQuAD v1.1 JSON named ``squad.translate.train.en-<lang>.json`` (the
bucket's names as TFDS's and others' download code spells them; forks of XTREME's
``third_party/processors/squad.py`` read them from ``<data_dir>/squad/translate-train/``, the
first candidate; a copy of the bucket's folder is the second). XTREME's own
``download_data.sh`` (the revisions checked) does not fetch them. Translated answers need not
match their offset in the translated context (``answer_start`` -1 where the translation lost
the answer): read with ``mismatches="skip"``, such answers are dropped and counted, as XTREME's
training code drops answers it cannot find. In English the split is SQuAD train itself.

Sources checked (google-research/xtreme): ``scripts/download_data.sh`` (file names, renames,
deletions, UD v2.5 language list), ``utils_preprocess.py`` (``panx_preprocess``,
``udpos_preprocess``, ``tydiqa_preprocess``, ``remove_qa_test_annotations``,
``tatoeba_preprocess``), ``scripts/train_qa.sh`` / ``predict_qa.sh`` (QA train/dev/test files
and languages), ``scripts/run_bucc2018.sh``, ``scripts/preprocess_panx.sh`` and
``mock_test_data/`` (the language list of every task).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Callable

from xstilts_jax.tasks import ccg, classification, multiple_choice
from xstilts_jax.tasks.classification import DataError
from xstilts_jax.tasks.readers import (BUCC_LANGUAGES, MLQA_LANGUAGES, PANX_LABELS,
                                       PANX_LANGUAGES, TATOEBA_LANGUAGES, TYDIQA_LANGUAGE_NAMES,
                                       TYDIQA_LANGUAGES, UDPOS_LANGUAGES, UPOS_TAGS,
                                       XQUAD_LANGUAGES, BuccData, ReadResult, bucc_candidates,
                                       read_bucc_files, read_conllu_files, read_panx_raw,
                                       read_squad, read_tagging_tsv, read_tatoeba_files)

log = logging.getLogger(__name__)

TRAIN_LANGUAGE = "en"
_EN = (TRAIN_LANGUAGE,)

# task -> split -> the languages it exists in.
SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "udpos": {"train": _EN, "dev": UDPOS_LANGUAGES, "test": UDPOS_LANGUAGES},
    "panx": {"train": _EN, "dev": PANX_LANGUAGES, "test": PANX_LANGUAGES},
    # translate_train: XTREME's machine translations of SQuAD v1.1 train (en: train itself)
    "squad": {"train": _EN, "dev": _EN, "translate_train": XQUAD_LANGUAGES},
    "xquad": {"train": _EN, "dev": _EN, "test": XQUAD_LANGUAGES},
    "mlqa": {"train": _EN, "dev": MLQA_LANGUAGES, "test": MLQA_LANGUAGES},
    "tydiqa": {"train": _EN, "dev": _EN, "test": TYDIQA_LANGUAGES},
    "bucc2018": {"dev": BUCC_LANGUAGES, "test": BUCC_LANGUAGES},
    "tatoeba": {"test": tuple(TATOEBA_LANGUAGES)},
    # English intermediate tasks (train and dev only: their test sets are unlabelled)
    "squad_v2": {"train": _EN, "dev": _EN},
    "ccg": {"train": _EN, "dev": _EN, "test": _EN},
    "hellaswag": {"train": _EN, "dev": _EN},
    "cosmosqa": {"train": _EN, "dev": _EN},
    "commonsenseqa": {"train": _EN, "dev": _EN},
}
# task -> XTREME's languages (those it is evaluated in).
LANGUAGES: dict[str, tuple[str, ...]] = {
    task: splits["test"] if "test" in splits else splits["dev"] for task, splits in SPLITS.items()}

XTREME = "XTREME's download"


@dataclasses.dataclass(frozen=True)
class Location:
    """A candidate: paths relative to data_dir, all of which must exist (one with ``*`` is a
    glob that must match at least one file), read with ``format``; ``origin`` says whose
    layout it is and ``note`` what to know when it is only partly there."""

    patterns: tuple[str, ...]
    format: str
    origin: str
    note: str = ""


def _squad(split: str) -> tuple[Location, ...]:
    return (Location((f"squad/{split}-v1.1.json",), "squad", "SQuAD v1.1 (as XTREME keeps it)"),)


def _squad_translated(language: str) -> tuple[Location, ...]:
    """XTREME's translate-train SQuAD (see the module docstring); in English SQuAD train."""
    if language == TRAIN_LANGUAGE:
        return _squad("train")
    name = f"squad.translate.train.en-{language}.json"
    return (Location((f"squad/translate-train/{name}",), "squad_translated",
                     "XTREME's translate-train SQuAD, beside SQuAD"),
            Location((f"xtreme_translations/SQuAD/translate-train/{name}",), "squad_translated",
                     "a copy of gs://xtreme_translations"))


def _locations(task: str, split: str, language: str) -> tuple[Location, ...]:
    """The candidates of a valid (task, split, language), in the order they are tried."""
    test = split == "test"
    if task == "squad" and split == "translate_train":
        return _squad_translated(language)
    if task == "udpos":
        xtreme = Location((f"udpos/{split}-{language}.tsv",), "udpos_tsv", XTREME)
        release = Location((f"ud-treebanks-v2.5/UD_*/{language}_*-ud-{split}.conllu",),
                           "conllu", "UD v2.5 release")
        return (release, xtreme) if test else (xtreme, release)
    if task == "panx":
        xtreme = Location((f"panx/{split}-{language}.tsv",), "panx_tsv", XTREME)
        release = (Location((f"panx_dataset/{language}/{split}",), "panx_raw",
                            f"PAN-X release ({language}.tar.gz unpacked)"),
                   Location((f"panx_dataset/{language}-{split}",), "panx_raw",
                            "PAN-X release as download_data.sh renames it"))
        return (*release, xtreme) if test else (xtreme, *release)
    if task == "squad" or (task in ("xquad", "mlqa") and split == "train"):
        return _squad(split)
    if task == "xquad":
        return _squad(split) if split == "dev" else (
            Location((f"xquad/xquad.{language}.json",), "squad", "XQuAD release / " + XTREME),)
    if task == "mlqa":
        name = f"MLQA_V1/{split}/{split}-context-{language}-question-{language}.json"
        xtreme = Location((f"mlqa/{name}",), "squad", XTREME)
        release = Location((name,), "squad", "MLQA release")
        return (release, xtreme) if test else (xtreme, release)
    if task == "tydiqa":
        if split == "train":
            folder = "tydiqa/tydiqa-goldp-v1.1-train"
            return (Location((f"{folder}/tydiqa-goldp-v1.1-train.json",), "tydiqa_multilingual",
                             XTREME + " (the release file, moved)"),
                    Location((f"{folder}/tydiqa.goldp.{language}.train.json",), "squad_short_ids",
                             XTREME),
                    Location((f"{folder}/tydiqa.{language}.train.json",), "squad_short_ids",
                             XTREME + " (the name scripts/train_qa.sh reads)"),
                    Location(("tydiqa/tydiqa-goldp-v1.1-train.json",), "tydiqa_multilingual",
                             "TyDiQA-GoldP release"))
        folder = "tydiqa/tydiqa-goldp-v1.1-dev"
        return (Location((f"{folder}/tydiqa-goldp-dev-{TYDIQA_LANGUAGE_NAMES[language]}.json",),
                         "squad", "TyDiQA-GoldP release"),
                Location((f"{folder}/tydiqa.goldp.{language}.dev.json",), "squad", XTREME))
    if task == "bucc2018":
        # readers.bucc_candidates knows both layouts; for test the release comes first.
        release = ("BUCC 2018 release", "")
        xtreme = (XTREME, "download_data.sh deletes XTREME's test gold" if test else "")
        origins = (release, xtreme) if test else (xtreme, release)
        candidates = bucc_candidates("bucc2018", language, split)
        return tuple(Location(tuple(f.as_posix() for f in files), "bucc", origin, note)
                     for files, (origin, note) in zip(candidates, origins))
    if task == "tatoeba":
        code = TATOEBA_LANGUAGES[language]
        laser = tuple(f"tatoeba.{code}-eng.{ext}" for ext in (code, "eng"))
        return (Location(tuple(f"tatoeba/{n}" for n in laser), "tatoeba", "LASER's files"),
                Location(tuple(f"LASER/data/tatoeba/v1/{n}" for n in laser), "tatoeba",
                         "LASER checkout"),
                Location((f"tatoeba/{language}-en.{language}", f"tatoeba/{language}-en.en"),
                         "tatoeba_xtreme", XTREME))
    if task == "squad_v2":
        return (Location((f"squad/{split}-v2.0.json",), "squad_v2", "SQuAD 2.0 release"),)
    if task == "ccg":
        first = ccg.CCGBANK_SECTIONS[split][0]
        return (*(Location((f"{root}/{first:02d}/wsj_*.auto",), f"ccgbank_{split}",
                           "CCGbank release") for root in _CCGBANK_ROOTS),
                Location((f"ccg/{split}.tsv",), "ccg_tsv", "word<TAB>supertag export"))
    if task == "hellaswag":
        name = {"train": "train", "dev": "val"}[split]
        return (Location((f"hellaswag/hellaswag_{name}.jsonl",), "hellaswag", "HellaSwag release"),)
    if task == "cosmosqa":
        name = {"train": "train", "dev": "valid"}[split]
        return tuple(Location((f"cosmosqa/{name}.{ext}",), "cosmosqa", "CosmosQA release")
                     for ext in ("csv", "jsonl"))
    if task == "commonsenseqa":
        return (Location((f"commonsenseqa/{split}_rand_split.jsonl",), "commonsenseqa",
                         "CommonsenseQA release"),)
    raise AssertionError(task)


def locations(task: str, split: str, language: str) -> tuple[Location, ...]:
    """The candidate locations of ``task``'s ``split`` in ``language``, in the order tried;
    an unknown task, split or language is a DataError listing the valid ones."""
    if task not in SPLITS:
        raise DataError(f"no layout for task {task!r}; tasks with one: {', '.join(SPLITS)}")
    splits = SPLITS[task]
    if split not in splits:
        raise DataError(f"task {task!r} has no split {split!r}; its splits: "
                        f"{', '.join(splits)}")
    if language not in splits[split]:
        if splits[split] == _EN:
            raise DataError(f"task {task!r} split {split!r} exists only in {TRAIN_LANGUAGE!r} "
                            f"(XTREME trains in English), not {language!r}")
        raise DataError(f"task {task!r} split {split!r} has no language {language!r}; its "
                        f"languages: {' '.join(splits[split])}")
    return _locations(task, split, language)


def _match(data_dir: pathlib.Path, pattern: str) -> list[pathlib.Path]:
    if "*" in pattern:
        return sorted((p for p in data_dir.glob(pattern) if p.is_file()), key=lambda p: p.name)
    path = data_dir / pattern
    return [path] if path.is_file() else []


def find_files(task: str, data_dir: str | os.PathLike, split: str,
               language: str) -> tuple[str, list[pathlib.Path]]:
    """(format, files) of the first candidate present; a DataError listing every location
    tried (and which files of a partly present one are missing) when none is."""
    data_dir = pathlib.Path(data_dir)
    tried = []
    for location in locations(task, split, language):
        matches = [_match(data_dir, pattern) for pattern in location.patterns]
        if all(matches):
            return location.format, [path for found in matches for path in found]
        where = " + ".join(str(data_dir / pattern) for pattern in location.patterns)
        missing = [p for p, found in zip(location.patterns, matches) if not found]
        partly = (f" [missing: {', '.join(missing)}{'; ' + location.note if location.note else ''}]"
                  if len(missing) < len(location.patterns) else "")
        tried.append(f"{where} ({location.origin}){partly}")
    raise DataError(f"task {task!r} split {split!r} ({language}): no data files; tried "
                    + "; ".join(tried))


def _tydiqa_multilingual(paths: list[pathlib.Path], language: str) -> ReadResult:
    """The questions of one language from a TyDiQA-GoldP file holding all nine: its question
    ids start with the language's name ("english-...")."""
    result = read_squad(paths[0], language)
    prefix = TYDIQA_LANGUAGE_NAMES[language] + "-"
    mine = tuple(e for e in result if e.id.startswith(prefix))
    if not mine:
        raise DataError(f"{paths[0]}: no question id starts with {prefix!r}")
    log.info("%s: %d of %d questions are %s (ids %s...)", paths[0], len(mine), len(result),
             language, prefix)
    return ReadResult(result.path, language, mine, result.skipped)


def _tatoeba_xtreme(paths: list[pathlib.Path], language: str) -> ReadResult:
    raise DataError(f"{paths[1]}: XTREME's tatoeba_preprocess sorts the English side, so line "
                    f"i no longer translates line i of {paths[0]} and the gold alignment is not "
                    f"in XTREME's layout; use LASER's tatoeba.{TATOEBA_LANGUAGES[language]}-eng.* "
                    f"files (data/tatoeba/v1 in facebookresearch/LASER)")


_CCGBANK_ROOTS = ("ccgbank_1_1/data/AUTO", "ccgbank/data/AUTO", "ccgbank/AUTO")


def _ccgbank(split: str) -> Callable[[list[pathlib.Path], str], ReadResult]:
    """Reader of a CCGbank split: every section of it under the AUTO folder the first
    section's files were found in."""
    return lambda paths, lang: ccg.read_ccgbank(paths[0].parents[1], split)


_READERS: dict[str, Callable[[list[pathlib.Path], str], ReadResult | BuccData]] = {
    "udpos_tsv": lambda paths, lang: read_tagging_tsv(paths[0], lang, labels=UPOS_TAGS),
    "conllu": lambda paths, lang: read_conllu_files(paths, lang, drop_textless=True),
    "panx_tsv": lambda paths, lang: read_tagging_tsv(paths[0], lang, labels=PANX_LABELS),
    "panx_raw": lambda paths, lang: read_panx_raw(paths[0], lang),
    "squad": lambda paths, lang: read_squad(paths[0], lang),
    # Translated answers XTREME could not place in the translated context: dropped, counted.
    "squad_translated": lambda paths, lang: read_squad(paths[0], lang, mismatches="skip"),
    "squad_short_ids": lambda paths, lang: read_squad(paths[0], lang, duplicate_ids="suffix"),
    "tydiqa_multilingual": _tydiqa_multilingual,
    "bucc": lambda paths, lang: read_bucc_files(*paths, lang),
    "tatoeba": lambda paths, lang: read_tatoeba_files(*paths, lang),
    "tatoeba_xtreme": _tatoeba_xtreme,
    "squad_v2": lambda paths, lang: read_squad(paths[0], lang, version="2.0"),
    **{f"ccgbank_{split}": _ccgbank(split) for split in ("train", "dev", "test")},
    "ccg_tsv": lambda paths, lang: ccg.read_ccg_tsv(paths[0], lang),
    "hellaswag": lambda paths, lang: multiple_choice.read_hellaswag(paths[0], language=lang),
    "cosmosqa": lambda paths, lang: multiple_choice.read_cosmosqa(paths[0], language=lang),
    "commonsenseqa": lambda paths, lang: multiple_choice.read_commonsenseqa(paths[0],
                                                                           language=lang),
}


def read(task: str, data_dir: str | os.PathLike, split: str,
         language: str = TRAIN_LANGUAGE) -> ReadResult | BuccData:
    """The examples of ``task``'s ``split`` in ``language`` from the first candidate present
    (:func:`find_files`): a :class:`ReadResult` of ``TaggedSentence`` (udpos, panx),
    ``QAExample`` (squad, xquad, mlqa, tydiqa) or ``TranslationPair`` (tatoeba), or a
    :class:`BuccData` (bucc2018). QA answers must match their contexts (read the file with
    :func:`read_squad` to choose otherwise)."""
    format, paths = find_files(task, data_dir, split, language)
    log.info("%s %s (%s): reading %s", task, split, language, ", ".join(map(str, paths)))
    result = _READERS[format](paths, language)
    if isinstance(result, ReadResult):
        keys = [getattr(e, "guid", None) or getattr(e, "id") for e in result]
        if len(set(keys)) != len(keys):
            raise DataError(f"task {task!r} split {split!r} ({language}): example ids repeat "
                            f"across {', '.join(map(str, paths))}")
    return result


def translate_train_languages(data_task: str) -> tuple[str, ...]:
    """The languages that ``data_task`` (a data task: ``mnli``, ``squad``, ... as
    ``read_data`` takes) has machine translations of its training data in, for split
    ``translate_train``; () for a task without. The training language is not one of them
    (``translate_train`` in it is the training data itself). Classification tasks (see
    :attr:`ClassificationTask.translate_train_languages`) and this module's tasks alike; an
    unknown task is a DataError."""
    spec = _CLASSIFICATION_TASKS.get(data_task)
    if spec is not None:
        return spec.translate_train_languages
    if data_task not in SPLITS:
        raise DataError(f"unknown data task {data_task!r}; known: "
                        f"{', '.join((*_CLASSIFICATION_TASKS, *SPLITS))}")
    return tuple(lang for lang in SPLITS[data_task].get("translate_train", ())
                 if lang != TRAIN_LANGUAGE)


_CLASSIFICATION_TASKS = {t.name: t for t in classification.TASKS}


__all__ = ["LANGUAGES", "SPLITS", "TRAIN_LANGUAGE", "Location", "find_files", "locations",
           "read", "translate_train_languages"]
