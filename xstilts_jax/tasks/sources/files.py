"""``data.source = "files"``: a task's splits read from files under ``data.dir``, where its spec
says they are.

For a (task, split, language), each part of the split has candidate locations (the spec's
:class:`~xstilts_jax.tasks.spec.Location` s, in order); the first present is read (all of its
files must exist; a glob must match at least one file) with its format's reader from
:data:`FORMATS`. Every part is located before any is read, so a missing part is reported at
once with every location tried. A split that is another task's (``same_as``) reads that one; a
split of translations in the language of what it translates reads the original.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Callable

from xstilts_jax.tasks.examples import BuccData
from xstilts_jax.tasks.formats import (bucc, ccg, choices, conllu, pairs, squad, tatoeba,
                                       word_tags)
from xstilts_jax.tasks.io import DataError, ReadResult, combine
from xstilts_jax.tasks.registry import as_task, get_task
from xstilts_jax.tasks.spec import Location, TaskSpec

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FileRequest:
    """What a format reader gets: the files of the location found, the task, its split (as
    the files hold it), the language, and ``data.dir`` (guids are paths relative to it)."""

    task: TaskSpec
    split: str
    language: str
    paths: list[pathlib.Path]
    data_dir: pathlib.Path

    @property
    def relative(self) -> str:
        return self.paths[0].relative_to(self.data_dir).as_posix()


def _tydiqa_multilingual(r: FileRequest) -> ReadResult:
    """The questions of one language from a TyDiQA-GoldP file holding all nine: its question
    ids start with the language's name ("english-...")."""
    result = squad.read_squad(r.paths[0], r.language)
    prefix = r.task.fill("{name}", r.language) + "-"
    mine = tuple(e for e in result if e.id.startswith(prefix))
    if not mine:
        raise DataError(f"{r.paths[0]}: no question id starts with {prefix!r}")
    log.info("%s: %d of %d questions are %s (ids %s...)", r.paths[0], len(mine), len(result),
             r.language, prefix)
    return dataclasses.replace(result, examples=mine)


def _tatoeba_xtreme(r: FileRequest) -> ReadResult:
    raise DataError(f"{r.paths[1]}: XTREME's tatoeba_preprocess sorts the English side, so line "
                    f"i no longer translates line i of {r.paths[0]} and the gold alignment is not "
                    f"in XTREME's layout; use LASER's {r.task.fill('tatoeba.{code3}-eng', r.language)}"
                    f".* files (data/tatoeba/v1 in facebookresearch/LASER)")


def _ccgbank(r: FileRequest) -> ReadResult:
    """Every section of the split under the AUTO folder its first section was found in."""
    return ccg.read_ccgbank(r.paths[0].parents[1], r.split, r.language)


def _pairs(format: str) -> Callable[[FileRequest], ReadResult]:
    return lambda r: pairs.read_file(r.paths[0], format, labels=r.task.labels,
                                     language=r.language, guid_prefix=r.relative)


def _choices(format: str) -> Callable[[FileRequest], ReadResult]:
    return lambda r: choices.read_file(r.paths[0], format, language=r.language)


# format name (a Location's ``format``) -> reader.
FORMATS: dict[str, Callable[[FileRequest], ReadResult | BuccData]] = {
    **{name: _pairs(name) for name in pairs.FORMATS},
    "udpos_tsv": lambda r: word_tags.read_tagging_tsv(r.paths[0], r.language,
                                                      labels=r.task.labels),
    "panx_tsv": lambda r: word_tags.read_tagging_tsv(r.paths[0], r.language,
                                                     labels=r.task.labels),
    "panx_raw": lambda r: word_tags.read_panx_raw(r.paths[0], r.language),
    "conllu": lambda r: conllu.read_conllu_files(r.paths, r.language, drop_textless=True),
    "squad": lambda r: squad.read_squad(r.paths[0], r.language),
    "squad_v2": lambda r: squad.read_squad(r.paths[0], r.language, version="2.0"),
    # Translated answers XTREME could not place in the translated context: dropped, counted.
    "squad_translated": lambda r: squad.read_squad(r.paths[0], r.language, mismatches="skip"),
    "squad_short_ids": lambda r: squad.read_squad(r.paths[0], r.language,
                                                  duplicate_ids="suffix"),
    "tydiqa_multilingual": _tydiqa_multilingual,
    "bucc": lambda r: bucc.read_bucc_files(*r.paths, r.language),
    "tatoeba": lambda r: tatoeba.read_tatoeba_files(*r.paths, r.language),
    "tatoeba_xtreme": _tatoeba_xtreme,
    **{f"ccgbank_{s}": _ccgbank for s in ("train", "dev", "test")},
    "ccg_tsv": lambda r: ccg.read_ccg_tsv(r.paths[0], r.language),
    "hellaswag": _choices("hellaswag_jsonl"),
    "cosmosqa": lambda r: choices.read_cosmosqa(r.paths[0], language=r.language),
    "commonsenseqa": _choices("commonsenseqa_jsonl"),
}


def resolve(task: TaskSpec | str, split: str, language: str) -> tuple[TaskSpec, str]:
    """(task, split) whose own files hold ``task``'s ``split`` in ``language``: another task's
    (``same_as``), the original of a split of translations in the original's languages, or
    the split itself. An unknown split, or a language the split is not in, is a DataError."""
    task = as_task(task)
    spec = task.split(split)
    languages = task.split_languages(split)
    if language not in languages:
        if split == task.train_split and languages == (task.train_language,):
            raise DataError(f"task {task.name!r} split {split!r} exists only in "
                            f"{task.train_language!r} (XTREME trains in English), not "
                            f"{language!r}")
        raise DataError(f"task {task.name!r} split {split!r} has no language {language!r}; its "
                        f"languages: {' '.join(languages)}")
    if spec.same_as is not None:
        return resolve(get_task(spec.same_as[0]), spec.same_as[1], language)
    if spec.translates is not None and language in task.split_languages(spec.translates):
        return resolve(task, spec.translates, language)
    return task, split


def _filled_parts(owner: TaskSpec, name: str,
                  language: str) -> tuple[tuple[Location, ...], ...]:
    """The locations of each part of ``owner``'s own split ``name``, placeholders filled."""
    return tuple(tuple(Location(tuple(owner.fill(p, language) for p in loc.patterns), loc.format,
                                owner.fill(loc.origin, language), loc.note) for loc in part)
                 for part in owner.split(name).parts)


def parts(task: TaskSpec | str, split: str, language: str) -> tuple[tuple[Location, ...], ...]:
    """The candidate locations of each part of ``task``'s ``split`` in ``language``, in the
    order tried, placeholders filled in."""
    return _filled_parts(*resolve(task, split, language), language)


def locations(task: TaskSpec | str, split: str, language: str) -> tuple[Location, ...]:
    """The candidates of a split read from one place (most are); see :func:`parts`."""
    task = as_task(task)
    found = parts(task, split, language)
    if len(found) != 1:
        raise DataError(f"task {task.name!r} split {split!r} combines {len(found)} parts: see "
                        f"parts()")
    return found[0]


def _match(data_dir: pathlib.Path, pattern: str) -> list[pathlib.Path]:
    if "*" in pattern:
        return sorted((p for p in data_dir.glob(pattern) if p.is_file()), key=lambda p: p.name)
    path = data_dir / pattern
    return [path] if path.is_file() else []


def _first_present(candidates, data_dir: pathlib.Path) -> tuple[Location, list[pathlib.Path]] | list[str]:
    """(location, files) of the first candidate present, or what was tried."""
    tried = []
    for location in candidates:
        matches = [_match(data_dir, pattern) for pattern in location.patterns]
        if all(matches):
            return location, [path for found in matches for path in found]
        where = " + ".join(str(data_dir / pattern) for pattern in location.patterns)
        missing = [p for p, found in zip(location.patterns, matches) if not found]
        partly = (f" [missing: {', '.join(missing)}{'; ' + location.note if location.note else ''}]"
                  if len(missing) < len(location.patterns) else "")
        tried.append(f"{where} ({location.origin}){partly}")
    return tried


def find_parts(task: TaskSpec | str, data_dir: str | os.PathLike, split: str,
               language: str) -> list[tuple[Location, list[pathlib.Path]]]:
    """(location, files) of the first candidate present, for every part; a DataError listing
    every location tried (and which files of a partly present one are missing) when a part
    has none."""
    return _locate(as_task(task), pathlib.Path(data_dir), split, language)[2]


def _locate(task: TaskSpec, data_dir: pathlib.Path, split: str, language: str):
    """(owner spec, its split, (location, files) of every part): see :func:`find_parts`."""
    owner, read_as = resolve(task, split, language)
    all_parts = _filled_parts(owner, read_as, language)
    found = []
    for k, candidates in enumerate(all_parts, 1):
        result = _first_present(candidates, data_dir)
        if isinstance(result, list):
            which = f" for part {k} of {len(all_parts)}" if len(all_parts) > 1 else ""
            alias = (f" (in {language!r} it is split {read_as!r}"
                     + (f" of {owner.name!r}" if owner is not task else "")
                     + (", the data it translates)" if owner is task else ")")
                     if (owner.name, read_as) != (task.name, split) else "")
            raise DataError(f"task {task.name!r} split {split!r} ({language}){alias}: no data "
                            f"files{which}; tried " + "; ".join(result))
        found.append(result)
    return owner, read_as, found


def find_files(task: TaskSpec | str, data_dir: str | os.PathLike, split: str,
               language: str) -> tuple[str, list[pathlib.Path]]:
    """(format, files) of the first candidate present of a one-part split."""
    task = as_task(task)
    found = find_parts(task, data_dir, split, language)
    if len(found) != 1:
        raise DataError(f"task {task.name!r} split {split!r} combines {len(found)} parts: see "
                        f"find_parts()")
    location, paths = found[0]
    return location.format, paths


def read_split(task: TaskSpec | str, data_dir: str | os.PathLike, split: str,
               language: str) -> ReadResult | BuccData:
    """The examples of ``task``'s ``split`` in ``language``: every part located first, then
    each read by its format's reader and the parts concatenated in order."""
    task = as_task(task)
    data_dir = pathlib.Path(data_dir)
    owner, read_as, found = _locate(task, data_dir, split, language)
    results = []
    for location, paths in found:
        log.info("%s %s (%s): reading %s", task.name, split, language,
                 ", ".join(map(str, paths)))
        reader = FORMATS.get(location.format)
        if reader is None:
            raise DataError(f"task {owner.name!r}: unknown file format {location.format!r}; "
                            f"known: {', '.join(sorted(FORMATS))}")
        results.append(reader(FileRequest(owner, read_as, language, paths, data_dir)))
    if len(results) > 1:
        log.info("%s %s (%s): %s", task.name, split, language,
                 " + ".join(f"{len(r)} ({r.path.relative_to(data_dir).as_posix()})"
                            for r in results))
    result = combine(results)
    if isinstance(result, ReadResult):
        keys = [getattr(e, "guid", None) or getattr(e, "id") for e in result]
        if len(set(keys)) != len(keys):
            raise DataError(f"task {task.name!r} split {split!r} ({language}): example ids repeat "
                            f"across {', '.join(map(str, result.files))}")
    return result


__all__ = ["FORMATS", "FileRequest", "find_files", "find_parts", "locations", "parts",
           "read_split", "resolve"]
