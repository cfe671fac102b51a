"""Zero-shot sentence retrieval, XTREME's BUCC 2018 and Tatoeba, straight from an encoder.

No training data: sentences are embedded (``embed.py``: masked mean of one hidden layer;
many languages in one call, so that batches hold sentences of one length),
neighbours found by the exact blockwise kernel (``retrieval.knn``), and pairs mined or
retrieved as XTREME does (``mining.py``). Predictions are written in the XTREME submission
format (``predictions/<task>/test-<lang>.tsv``) and scored by ``metrics`` where gold exists.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Sequence

import numpy as np

from xstilts_jax import metrics, mining
from xstilts_jax.embed import embed_sentences
from xstilts_jax.tasks import DataError, get_task, read_split, task_names
from xstilts_jax.sharding import is_primary_host

log = logging.getLogger(__name__)

RETRIEVAL_TASKS = task_names(role="retrieval")  # from the catalog: bucc2018, tatoeba
# Sentences one embedding call may hold (their float32 vectors and token ids stay in memory).
EMBED_CALL_SENTENCES = 200_000


def _write(path: pathlib.Path, lines: Sequence[str]) -> None:
    if is_primary_host():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def retrieve(task: str, encoder, tokenizer, data_dir=None, *, languages: Sequence[str] = (),
             layer: int, pool: str = "mean", max_length: int = 512, batch_size: int = 32,
             mesh=None, direction: str = "en2xx", output_dir=None, progress: bool = False,
             knn=None, source: str = "files", tfds_dir: str | None = None) -> dict:
    """Embed, retrieve and score every language of ``task`` (tatoeba or bucc2018), read
    through the one read of every task (``source``: the files under ``data_dir`` or TFDS).

    Returns ``{"task", "per_language": {lang: metrics}, "average": {metric: mean}}``; for BUCC
    each language also gives the dev-chosen ``threshold`` and ``dev`` scores, and ``test`` is
    absent where the test split has no gold (XTREME's download deletes it).
    """
    if task not in RETRIEVAL_TASKS:
        raise DataError(f"unknown retrieval task {task!r}; use {' or '.join(RETRIEVAL_TASKS)}")
    spec = get_task(task)
    languages = tuple(languages) or spec.languages
    unknown = [lang for lang in languages if lang not in spec.languages]
    if unknown:
        raise DataError(f"{task} has no language(s) {', '.join(unknown)}; its languages: "
                        f"{' '.join(spec.languages)}")

    def read(split: str, lang: str):
        return read_split(spec, split, lang, data_dir=data_dir, source=source, tfds_dir=tfds_dir)

    def pools(lang: str):
        """(the language's data, the sentence lists to embed for it)."""
        if task == "tatoeba":
            pairs = read("test", lang)
            return pairs, [[p.source for p in pairs], [p.english for p in pairs]]
        # Both BUCC splits are evaluation data (the threshold is chosen on dev).
        dev, test = read("dev", lang), read("test", lang)
        if not (dev.complete and test.complete):
            log.warning("bucc2018 %s: the source has the gold pairs' sentences only, not "
                        "BUCC's whole pools (TFDS): mining them is easier than BUCC 2018 "
                        "and the F1 is not XTREME's", lang)
        return (dev, test), [list(dev.source.values()), list(dev.english.values()),
                             list(test.source.values()), list(test.english.values())]

    def score(lang: str, data, vectors: list[np.ndarray]) -> list[str]:
        if task == "tatoeba":
            predicted = mining.tatoeba_search(*vectors, direction=direction, knn=knn)
            lines = mining.tatoeba_lines(predicted)
            # LASER's files are line-aligned: the gold of line i is i (either direction).
            per_language[lang] = metrics.accuracy([str(i) for i in range(len(lines))], lines)
            return lines
        dev, test = data
        result = mining.evaluate_bucc(dev, vectors[0], vectors[1], test, vectors[2], vectors[3],
                                      knn=knn)
        per_language[lang] = {"threshold": result.threshold, "dev": result.dev,
                              **({"test": result.test} if result.test is not None else {}),
                              **({} if dev.complete and test.complete else
                                 {"complete_pools": False})}
        return list(result.test_predictions)

    out = pathlib.Path(output_dir) / task if output_dir is not None else None
    per_language: dict[str, dict] = {}
    def embed_and_score(group) -> None:
        lists = [p for _, _, language_lists in group for p in language_lists]
        vectors = embed_sentences(encoder, tokenizer, [s for p in lists for s in p],
                                  layer=layer, pool=pool, max_length=max_length,
                                  batch_size=batch_size, progress=progress, mesh=mesh)
        vectors = iter(np.split(vectors, np.cumsum([len(p) for p in lists])[:-1]))
        for lang, data, language_lists in group:
            lines = score(lang, data, [next(vectors) for _ in language_lists])
            if out is not None:
                _write(out / f"test-{lang}.tsv", lines)
            log.info("%s %s: %s", task, lang, per_language[lang])

    # Languages are embedded together, up to EMBED_CALL_SENTENCES sentences a call (all of
    # Tatoeba; one BUCC language): one sort by length over many sentences fills batches with
    # sentences of one length, so almost nothing is padding (embed.py).
    group, held = [], 0
    for i, lang in enumerate(languages):
        data, lists = pools(lang)
        group.append((lang, data, lists))
        held += sum(len(p) for p in lists)
        if held >= EMBED_CALL_SENTENCES or i + 1 == len(languages):
            embed_and_score(group)
            group, held = [], 0
    return {"task": task, "per_language": per_language, "average": _average(task, per_language)}


def _average(task: str, per_language: dict[str, dict]) -> dict[str, float]:
    if task == "tatoeba":
        return {"accuracy": float(np.mean([s["accuracy"] for s in per_language.values()]))}
    scored = {split: [s[split] for s in per_language.values() if split in s]
              for split in ("dev", "test")}
    return {f"{split}_{metric}": float(np.mean([s[metric] for s in scores]))
            for split, scores in scored.items() if scores
            for metric in ("f1", "precision", "recall")}


def format_retrieval(result: dict) -> str:
    """Per-language scores of :func:`retrieve` as a table."""
    task, rows = result["task"], result["per_language"]
    if task == "tatoeba":
        lines = ["tatoeba accuracy (%)"] + [f"  {lang:<4}{s['accuracy']:7.2f}"
                                           for lang, s in rows.items()]
        lines.append(f"  {'avg':<4}{result['average']['accuracy']:7.2f}")
        return "\n".join(lines)
    lines = ["bucc2018 (%): threshold chosen on dev, applied to test",
             f"  {'lang':<5}{'threshold':>10}{'dev P':>8}{'dev R':>8}{'dev F1':>8}"
             f"{'test P':>8}{'test R':>8}{'test F1':>8}"]
    for lang, s in rows.items():
        test = s.get("test")
        tail = (f"{test['precision']:8.2f}{test['recall']:8.2f}{test['f1']:8.2f}" if test
                else f"{'(no test gold)':>24}")
        lines.append(f"  {lang:<5}{s['threshold']:10.4f}{s['dev']['precision']:8.2f}"
                     f"{s['dev']['recall']:8.2f}{s['dev']['f1']:8.2f}{tail}")
    return "\n".join(lines)


__all__ = ["RETRIEVAL_TASKS", "format_retrieval", "retrieve"]
