"""The study read from a sweep's results store: its models, targets and arms, the language
sets averaged over, every arm's mean and every gain with bootstrap intervals, and the trends
with model size. Everything the tables, plots and ``report.json`` show is computed here, from
the store alone.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, Sequence

import numpy as np

from xstilts_jax.metrics import GROUP2TASK, TASKS
from xstilts_jax.report import stats

__all__ = ["AVERAGE", "DIRECT", "Arm", "Cell", "Gain", "Model", "ReportError", "Study", "build_study",
           "load_store", "study_json"]

DIRECT = "none"  # the intermediate "task" of direct fine-tuning
AVERAGE = "average over targets"  # the pseudo-target of the gains averaged over targets
_REQUIRED = ("cell", "model", "intermediate", "target", "target_seed", "language", "score",
             "stats_kind")
_SCORE_TOLERANCE = 1e-6  # percent: a row's score against its rescored examples


class ReportError(ValueError):
    """A store that cannot be reported on; the message names the path."""


# --------------------------------------------------------------------------- the store

def load_store(run_dir) -> tuple[list[dict], Callable[[str, str, str], np.ndarray]]:
    """The rows of ``run_dir/store/`` and a reader of their per-example
    statistics ``(cell, target, language) -> [examples, k]``, through the sweep's
    :class:`~xstilts_jax.experiments.store.Store` (imported here: it brings in the trainer)."""
    from xstilts_jax.experiments.store import Store

    store = Store(run_dir)
    if not store.exists():
        raise ReportError(f"{store.rows_dir}: no results store here (a sweep writes "
                          f"store/rows/ and store/examples/ under its run directory)")
    try:
        rows = store.rows()
    except ValueError as e:
        raise ReportError(str(e)) from None
    if not rows:
        raise ReportError(f"{store.rows_dir}: the results store is empty (no finished "
                          f"cell yet)")

    def example_stats(cell: str, target: str, language: str) -> np.ndarray:
        try:
            return store.example_stats(cell, target, language)
        except FileNotFoundError:
            raise ReportError(f"{store.dir / 'examples' / (cell + '.npz')}: no per-example "
                              f"statistics for cell {cell!r}") from None
        except KeyError as e:
            raise ReportError(str(e.args[0]) if e.args else str(e)) from None

    return rows, example_stats


# --------------------------------------------------------------------------- the study

@dataclasses.dataclass(frozen=True)
class Model:
    """One value of the model axis: its name, parameter count and pretraining languages
    (None: not known; taken to cover every language), and how it was fine-tuned (``full``,
    or LoRA's ``lora-r8-a8``...: a LoRA model is named ``<model> [<finetuning>]``)."""

    name: str
    parameters: int | None
    pretrain_languages: tuple[str, ...] | None
    finetuning: str = "full"


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    model: str
    intermediate: str
    target: str
    intermediate_seed: int | None
    target_seed: int
    degenerate: tuple[str, ...]
    scores: dict[str, float]  # language -> score


@dataclasses.dataclass(frozen=True)
class Arm:
    """The cells of one (model, target, intermediate) and their mean over seeds."""

    model: str
    target: str
    intermediate: str
    cells: tuple[Cell, ...]
    estimate: stats.Estimate  # over the target's languages (all of them)

    @property
    def degenerate(self) -> list[str]:
        return [f"{c.name}: {', '.join(c.degenerate)}" for c in self.cells if c.degenerate]

    @property
    def seeds(self) -> list[tuple[int | None, int]]:
        return [(c.intermediate_seed, c.target_seed) for c in self.cells]


@dataclasses.dataclass(frozen=True)
class Gain:
    """X-STILTs minus direct for one (model, target, intermediate); ``estimate`` is None
    when no X-STILTs cell has a direct partner (``reason`` says why)."""

    model: str
    target: str
    intermediate: str
    estimate: stats.Estimate | None
    degenerate: tuple[str, ...]
    reason: str = ""


@dataclasses.dataclass
class Study:
    """Everything the report shows. ``language_sets[target]``: ``{"all": ..., "seen": ...}``
    (and ``"custom"`` when the caller named languages); ``chosen``: the set the headline
    gains, the plots and the trends average over."""

    run_dir: str
    models: list[Model]
    targets: list[str]
    metrics: dict[str, str]  # target -> the metric of its score
    intermediates: list[str]
    seen: tuple[str, ...] | None  # languages every model was pretrained on; None: all
    language_sets: dict[str, dict[str, tuple[str, ...]]]
    chosen: str
    arms: dict[tuple[str, str, str], Arm]
    gains: dict[tuple[str, str, str], Gain]
    trends: dict[tuple[str, str], stats.Trend | None]  # (target or AVERAGE, intermediate)
    averages: dict[tuple[str, str], stats.Estimate]  # (model, intermediate): over targets
    average_targets: dict[str, tuple[str, ...]]  # intermediate -> the targets averaged
    notes: list[str]
    settings: dict[str, Any]

    @property
    def sized_models(self) -> list[Model]:
        """The models the plots and trends run through: those with a parameter count, of one
        way of fine-tuning (full fine-tuning when the study has it), so that a trend never
        mixes a model fully fine-tuned with the same model under LoRA."""
        modes = [m.finetuning for m in self.models]
        mode = "full" if "full" in modes else (modes[0] if modes else "full")
        return [m for m in self.models if m.parameters is not None and m.finetuning == mode]

    def languages(self, target: str, key: str | None = None) -> tuple[str, ...]:
        return self.language_sets[target][key or self.chosen]

    def gain(self, model: str, target: str, intermediate: str, key: str | None = None
             ) -> stats.Estimate | None:
        """The gain over the language set ``key`` (default: the chosen set); None when it
        has no estimate or the set is empty."""
        g = self.gains.get((model, target, intermediate))
        languages = self.languages(target, key) if target in self.language_sets else ()
        if g is None or g.estimate is None or not languages:
            return None
        return g.estimate.over(languages)

    @property
    def xtreme_targets(self) -> list[str]:
        return [t for t in self.targets if t in TASKS]

    @property
    def other_targets(self) -> list[str]:
        return [t for t in self.targets if t not in TASKS]

    def xtreme_score(self, model: str, intermediate: str, key: str = "all") -> dict | None:
        """XTREME's summary for one arm over the XTREME targets present: per task the mean
        over seeds of the language average, groups with all their tasks, and the overall
        mean over the tasks included (as ``metrics.score_all``)."""
        tasks = {}
        for target in self.xtreme_targets:
            arm = self.arms.get((model, target, intermediate))
            languages = self.language_sets[target][key]
            if arm is not None and languages:
                tasks[target] = arm.estimate.over(languages).mean
        if not tasks:
            return None
        groups = {g: float(np.mean([tasks[t] for t in members]))
                  for g, members in GROUP2TASK.items() if all(t in tasks for t in members)}
        return {"tasks": tasks, "groups": groups, "overall": float(np.mean(list(tasks.values())))}


def _order(values, first=()) -> list:
    out = [v for v in first if v in values]
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _seed(seed: int, *parts: str) -> list[int]:
    """A seed per comparison: the report's seed and a stable hash of what is compared, so
    models are resampled independently and adding a cell elsewhere changes nothing here."""
    return [seed, zlib.crc32("\0".join(parts).encode())]


def _models(rows: list[dict], notes: list[str]) -> list[Model]:
    by_name: dict[str, Model] = {}
    for row in rows:
        name = row["model"]
        if name in by_name:
            continue
        languages = row.get("pretrain_languages")
        by_name[name] = Model(name, row.get("parameters"),
                              tuple(languages) if languages is not None else None,
                              row.get("finetuning", "full"))
    for name, model in by_name.items():
        other = {r.get("parameters") for r in rows if r["model"] == name}
        if len(other) > 1:
            notes.append(f"model {name}: rows disagree on its parameter count "
                         f"({sorted(map(str, other))}); the first row's is used")
    missing = [m.name for m in by_name.values() if m.parameters is None]
    if missing:
        notes.append(f"no parameter count for {', '.join(missing)}: in the tables, left out "
                     f"of the plots and trends")
    return sorted(by_name.values(), key=lambda m: (m.parameters is None, m.parameters or 0,
                                                   m.finetuning != "full"))


def _cells(rows: list[dict], path_hint: str, notes: list[str]) -> dict[str, dict[str, Cell]]:
    """target -> cell name -> cell (the last row of a (cell, target, language) kept)."""
    seen_rows: dict[tuple[str, str, str], dict] = {}
    for i, row in enumerate(rows, start=1):
        missing = [f for f in _REQUIRED if row.get(f) is None]
        if missing:
            raise ReportError(f"{path_hint}: row {i} (cell {row.get('cell')!r}) lacks "
                              f"{', '.join(missing)}")
        seen_rows[(row["cell"], row["target"], row["language"])] = row
    if len(seen_rows) < len(rows):
        notes.append(f"{len(rows) - len(seen_rows)} repeated (cell, target, language) rows: "
                     f"the last of each kept")
    cells: dict[str, dict[str, Cell]] = {}
    for (name, target, language), row in seen_rows.items():
        cell = cells.setdefault(target, {}).get(name)
        if cell is None:
            cell = Cell(name=name, model=row["model"], intermediate=row["intermediate"],
                        target=target, intermediate_seed=row.get("intermediate_seed"),
                        target_seed=row["target_seed"],
                        degenerate=tuple(row.get("degenerate") or ()), scores={})
            cells[target][name] = cell
        cell.scores[language] = float(row["score"])
    return cells


def _language_sets(target: str, cells: dict[str, Cell], seen, languages, notes) -> dict:
    union = _order([lang for c in cells.values() for lang in c.scores])
    common = tuple(lang for lang in union if all(lang in c.scores for c in cells.values()))
    if len(common) < len(union):
        dropped = [lang for lang in union if lang not in common]
        notes.append(f"{target}: {', '.join(dropped)} left out (not scored in every cell)")
    sets = {"all": common,
            "seen": common if seen is None else tuple(lang for lang in common if lang in seen)}
    if not sets["seen"]:
        notes.append(f"{target}: no language of it was seen by every model in pretraining")
    if not isinstance(languages, str):
        sets["custom"] = tuple(lang for lang in common if lang in languages)
        if not sets["custom"]:
            notes.append(f"{target}: none of the chosen languages ({', '.join(languages)})")
    return sets


def build_study(rows: list[dict], example_stats: Callable[[str, str, str], np.ndarray], *,
                bootstrap: int = 2000, seed: int = 0, level: float = 0.95,
                languages: str | Sequence[str] = "all", run_dir: str = "",
                store_path: str = "store") -> Study:
    """The study of a store's rows: arms, gains, averages over targets and trends.

    ``languages``: the set the headline gains, plots and trends average over: ``"all"`` (each
    target's languages), ``"seen"`` (those every model was pretrained on) or a list of codes.
    """
    if isinstance(languages, str) and languages not in ("all", "seen"):
        raise ValueError(f"languages must be 'all', 'seen' or a list of codes, got {languages!r}")
    if not rows:
        raise ReportError(f"{store_path}: no rows")
    notes: list[str] = []
    # A model under LoRA is a model of its own in the tables: "<model> [lora-r8-a8]".
    rows = [row if row.get("finetuning", "full") == "full"
            else {**row, "model": f"{row['model']} [{row['finetuning']}]"} for row in rows]
    models = _models(rows, notes)
    known = [set(m.pretrain_languages) for m in models if m.pretrain_languages is not None]
    seen = None if not known else set.intersection(*known)
    cells = _cells(rows, store_path, notes)
    targets = _order(list(cells), first=TASKS)
    intermediates = _order([c.intermediate for t in targets for c in cells[t].values()],
                           first=(DIRECT,))
    language_sets = {t: _language_sets(t, cells[t], seen, languages, notes) for t in targets}
    seen_tuple = None if seen is None else tuple(sorted(seen))
    chosen = languages if isinstance(languages, str) else "custom"
    sweeps = sorted({str(r.get("sweep")) for r in rows if r.get("sweep") is not None})
    if len(sweeps) > 1:
        notes.append(f"rows of {len(sweeps)} sweeps: {', '.join(sweeps)}")
    retries = sorted({r["cell"] for r in rows if r.get("retry_of")})
    if retries:
        notes.append(f"{len(retries)} cell(s) retrain another with a new seed and are counted "
                     f"as cells of their own: {', '.join(retries)}")

    arms: dict[tuple[str, str, str], Arm] = {}
    gains: dict[tuple[str, str, str], Gain] = {}
    for target in targets:
        langs = language_sets[target]["all"]
        if not langs:
            continue
        kinds = {r["stats_kind"] for r in rows if r["target"] == target}
        if len(kinds) != 1:
            raise ReportError(f"{store_path}: {target} rows disagree on stats_kind "
                              f"({', '.join(sorted(kinds))})")
        kind = kinds.pop()
        for model in models:
            group = sorted((c for c in cells[target].values() if c.model == model.name),
                           key=lambda c: (c.intermediate_seed or 0, c.target_seed, c.name))
            if not group:
                continue
            arms_here, gains_here = _model_target(
                kind, model.name, target, group, langs, example_stats, intermediates,
                bootstrap=bootstrap, seed=seed, level=level, store_path=store_path)
            arms.update(arms_here)
            gains.update(gains_here)
    for g in gains.values():
        if g.estimate is None:
            notes.append(f"{g.target}, {g.model}, {g.intermediate}: no gain ({g.reason})")
        elif g.estimate.unpaired:
            notes.append(f"{g.target}, {g.model}, {g.intermediate}: {g.estimate.unpaired} "
                         f"X-STILTs cell(s) without a direct cell of their target seed, "
                         f"left out of the gain")
    degenerate = sorted({c.name for t in cells.values() for c in t.values() if c.degenerate})
    if degenerate:
        notes.append(f"{len(degenerate)} cell(s) have a phase flagged degenerate (its dev "
                     f"curve stayed at chance): included in every number, marked †")

    metrics = {t: str(next(r.get("metric") or r["stats_kind"] for r in rows if r["target"] == t))
               for t in targets}
    study = Study(run_dir=str(run_dir), models=models, targets=targets, metrics=metrics,
                  intermediates=intermediates, seen=seen_tuple, language_sets=language_sets,
                  chosen=chosen, arms=arms, gains=gains, trends={}, averages={},
                  average_targets={}, notes=notes,
                  settings={"bootstrap": bootstrap, "seed": seed, "level": level,
                            "languages": languages if isinstance(languages, str)
                            else list(languages),
                            "store": store_path})
    _fit_trends(study)
    others = [m.name for m in models if m.parameters is not None and m not in study.sized_models]
    if others:
        notes.append(f"{', '.join(others)}: fine-tuned another way than the models the plots "
                     f"and trends run through ({study.sized_models[0].finetuning}); in the "
                     f"tables only")
    return study


def _model_target(kind, model, target, group: list[Cell], langs, example_stats, intermediates,
                  *, bootstrap, seed, level, store_path):
    """One resampling of the test examples for every cell of (model, target), from which
    each arm's mean and each intermediate's gain are taken."""
    per_language = []
    for lang in langs:
        arrays = [np.asarray(example_stats(c.name, target, lang), dtype=np.float64)
                  for c in group]
        sizes = {a.shape for a in arrays}
        if len(sizes) != 1:
            raise ReportError(f"{store_path}: {target}/{lang} of {model}: the cells' test sets "
                              f"differ ({sorted(sizes)}); they cannot be resampled jointly")
        per_language.append(np.stack(arrays))
    examples_seed, *_ = np.random.SeedSequence(_seed(seed, model, target)).spawn(1)
    resampled = stats.resample_scores(kind, per_language, bootstrap=bootstrap,
                                      seed=examples_seed)
    for i, c in enumerate(group):
        for j, lang in enumerate(langs):
            if abs(resampled.point[j, i] - c.scores[lang]) > _SCORE_TOLERANCE:
                raise ReportError(
                    f"{store_path}: cell {c.name}, {target}/{lang}: score {c.scores[lang]!r} "
                    f"but its examples' statistics give {resampled.point[j, i]!r}")
    index = {c.name: i for i, c in enumerate(group)}
    arms, gains = {}, {}
    by_arm = {inter: [c for c in group if c.intermediate == inter] for inter in intermediates}
    for inter, members in by_arm.items():
        if members:
            est = stats.arm_mean(resampled, [index[c.name] for c in members], languages=langs,
                                 seed=_seed(seed, model, target, inter, "arm"), level=level)
            arms[(model, target, inter)] = Arm(model, target, inter, tuple(members), est)
    direct = by_arm.get(DIRECT, [])
    for inter, members in by_arm.items():
        if inter == DIRECT or not members:
            continue
        flagged = tuple(f"{c.name}: {', '.join(c.degenerate)}" for c in members + direct
                        if c.degenerate)
        pairs, unpaired = stats.pair_by_target_seed([c.target_seed for c in members],
                                                    [c.target_seed for c in direct])
        if not pairs:
            reason = ("no direct fine-tuning cell" if not direct
                      else "no direct cell shares a target seed with it")
            gains[(model, target, inter)] = Gain(model, target, inter, None, flagged, reason)
            continue
        est = stats.paired_gain(
            resampled, [(index[members[i].name], index[direct[j].name]) for i, j in pairs],
            unpaired=len(unpaired), languages=langs, seed=_seed(seed, model, target, inter),
            level=level)
        gains[(model, target, inter)] = Gain(model, target, inter, est, flagged)
    return arms, gains


def _fit_trends(study: Study) -> None:
    """Per target and intermediate, and for the average over targets: the trend of the
    chosen languages' gain with log10(parameters), over the models with a parameter count."""
    sized = study.sized_models
    level = study.settings["level"]
    for inter in study.intermediates:
        if inter == DIRECT:
            continue
        per_model: dict[str, dict[str, stats.Estimate]] = {m.name: {} for m in study.models}
        for target in study.targets:
            found = [(m, study.gain(m.name, target, inter)) for m in sized]
            found = [(m, e) for m, e in found if e is not None]
            if found:
                study.trends[(target, inter)] = stats.trend(
                    [m.parameters for m, _ in found], [e.replicates for _, e in found],
                    [e.mean for _, e in found], level=level)
            for m in study.models:
                e = study.gain(m.name, target, inter)
                if e is not None:
                    per_model[m.name][target] = e
        # Averaged over the targets every model (with a size) has a gain on, so that each
        # model's average is over the same tasks.
        having = [set(per_model[m.name]) for m in sized if per_model[m.name]]
        common = [t for t in study.targets if having and all(t in h for h in having)]
        if not common:
            continue
        study.average_targets[inter] = tuple(common)
        for m in study.models:
            if all(t in per_model[m.name] for t in common):
                study.averages[(m.name, inter)] = stats.combine(
                    [per_model[m.name][t] for t in common], common)
        found = [(m, study.averages[(m.name, inter)]) for m in sized
                 if (m.name, inter) in study.averages]
        study.trends[(AVERAGE, inter)] = stats.trend(
            [m.parameters for m, _ in found], [e.replicates for _, e in found],
            [e.mean for _, e in found], level=level) if found else None


def _per_target(record: dict) -> dict:
    record["per_target"] = record.pop("per_language")
    return record


def study_json(study: Study) -> dict:
    """Every number of the study, machine-readable (``report.json``)."""
    def arm_json(arm: Arm) -> dict:
        sets = {key: arm.estimate.over(langs).to_json()
                for key, langs in study.language_sets[arm.target].items() if langs}
        return {"model": arm.model, "target": arm.target, "intermediate": arm.intermediate,
                "seeds": [{"intermediate_seed": i, "target_seed": t} for i, t in arm.seeds],
                "cells": [c.name for c in arm.cells], "degenerate": arm.degenerate,
                "per_language": {lang: float(m) for lang, m in
                                 zip(arm.estimate.languages, arm.estimate.language_means)},
                "average": sets}

    def gain_json(g: Gain) -> dict:
        out = {"model": g.model, "target": g.target, "intermediate": g.intermediate,
               "degenerate": list(g.degenerate), "reason": g.reason or None, "average": {}}
        if g.estimate is not None:
            out["average"] = {key: g.estimate.over(langs).to_json()
                              for key, langs in study.language_sets[g.target].items() if langs}
            out["n_pairs"], out["unpaired"] = g.estimate.n_pairs, g.estimate.unpaired
        return out

    xtreme = []
    for m in study.models:
        for inter in study.intermediates:
            for key in ("all", "seen"):
                score = study.xtreme_score(m.name, inter, key)
                if score is not None:
                    xtreme.append({"model": m.name, "intermediate": inter, "languages": key,
                                   **score})
    return {
        "run_dir": study.run_dir,
        "settings": study.settings,
        "chosen_languages": study.chosen,
        "models": [{"name": m.name, "parameters": m.parameters, "finetuning": m.finetuning,
                    "pretrain_languages": list(m.pretrain_languages)
                    if m.pretrain_languages is not None else None} for m in study.models],
        "seen_by_every_model": list(study.seen) if study.seen is not None else None,
        "targets": study.targets,
        "metrics": study.metrics,
        "xtreme_targets": study.xtreme_targets,
        "intermediates": study.intermediates,
        "language_sets": {t: {k: list(v) for k, v in sets.items()}
                          for t, sets in study.language_sets.items()},
        "arms": [arm_json(a) for a in study.arms.values()],
        "gains": [gain_json(g) for g in study.gains.values()],
        "average_over_targets": [
            {"model": model, "intermediate": inter, "targets": list(study.average_targets[inter]),
             **_per_target(est.to_json())} for (model, inter), est in study.averages.items()],
        "trends": [{"target": target, "intermediate": inter,
                    **(t.to_json() if t is not None else {"slope_per_decade": None,
                                                          "reason": "fewer than two model sizes"})}
                   for (target, inter), t in study.trends.items()],
        "xtreme": xtreme,
        "notes": study.notes,
    }
