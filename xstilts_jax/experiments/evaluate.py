"""Zero-shot evaluation: a trained phase predicts the target's test set in every language, the
predictions are written in XTREME's submission format and scored by the official metric."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from xstilts_jax.sharding import is_primary_host
from xstilts_jax.storage import as_path
from xstilts_jax.tasks.families import Featurized
from xstilts_jax.train.loop import PhaseConfig, PhaseResult, predict_logits


def evaluate_zero_shot(result: PhaseResult, test_sets: Mapping[str, Featurized], *,
                       cfg: PhaseConfig, pad_id: int, predictions_dir, stats_dir=None) -> dict:
    """Predict every language's test set, write ``<predictions_dir>/<task>/test-<lang>.<tsv|json>``
    and score it with the official metric; with ``stats_dir``, also each example's statistics
    (``<stats_dir>/<task>/test-<lang>.npy``, float64 [examples, k]: sums give the score), for
    bootstrap confidence intervals over test examples.

    Returns ``{"metric", "per_language": {lang: XTREME task score}, "average",
    "metrics": {lang: every metric}}`` (+ ``"stats_kind"``, ``"examples": {lang: n}``).
    """
    metrics, per_language, metric_name = {}, {}, None
    stats_kind, examples = None, {}
    for language, test in test_sets.items():
        family = test.family
        logits = predict_logits(result.eval_step, result.params, test.inputs(),
                                batch_size=result.eval_batch_size, pad_id=pad_id,
                                max_length=cfg.max_length, buckets=cfg.buckets, feed=result.feed)
        predictions = test.predict(logits, cfg)
        if is_primary_host():
            out_dir = as_path(predictions_dir) / test.task.name
            out_dir.mkdir(parents=True, exist_ok=True)
            family.write(out_dir / f"test-{language}.{family.suffix}", predictions)
        metrics[language] = test.score(predictions)
        if stats_dir is not None:
            stats_kind, rows = test.example_stats(predictions)
            examples[language] = len(rows)
            if is_primary_host():
                out_dir = as_path(stats_dir) / test.task.name
                out_dir.mkdir(parents=True, exist_ok=True)
                with (out_dir / f"test-{language}.npy").open("wb") as f:
                    np.save(f, np.asarray(rows, dtype=np.float64))
        per_language[language] = family.task_score(metrics[language])
        metric_name = ("(exact_match + f1) / 2" if "exact_match" in metrics[language]
                       else family.metric)
    record = {"metric": metric_name, "per_language": dict(per_language),
              "average": float(np.mean(list(per_language.values()))) if per_language
              else float("nan"), "metrics": metrics}
    if stats_dir is not None:
        record.update(stats_kind=stats_kind, examples=examples)
    return record


__all__ = ["evaluate_zero_shot"]
