"""The report's tables, built from a :class:`~xstilts_jax.report.study.Study`: the paper's
table per target and model, XTREME's score per arm, the gains with their intervals, the gains
per language, the average over targets and the trends. A :class:`Table` is cells as text;
``render.py`` writes it as Markdown, plain text or HTML.
"""

from __future__ import annotations

import dataclasses

from xstilts_jax.metrics import GROUP2TASK
from xstilts_jax.report.stats import Estimate
from xstilts_jax.report.study import AVERAGE, DIRECT, Study

__all__ = ["DAGGER", "Table", "all_tables", "average_table", "gain_language_tables",
           "gain_tables", "headline_table", "language_label", "score_tables", "shown_sets",
           "trend_table", "xtreme_tables"]

DAGGER = "†"
DEGENERATE_NOTE = (f"{DAGGER} a phase of a cell counted here was flagged degenerate (its dev "
                   f"curve stayed at chance); the cell is included")


@dataclasses.dataclass(frozen=True)
class Table:
    """A titled grid of text cells; ``notes`` are its footnotes; ``section`` groups tables
    under one heading in the summary."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    section: str = ""


# --------------------------------------------------------------------------- formatting

def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _ci(e: Estimate | None, signed: bool = False) -> str:
    if e is None:
        return "–"
    mean = f"{e.mean:+.1f}" if signed else f"{e.mean:.1f}"
    return f"{mean} [{e.low:.1f}, {e.high:.1f}]"


def parameters_label(p: int | None) -> str:
    """560M, 3.5B: what a reader calls a model's size."""
    if p is None:
        return "?"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if p >= scale:
            return f"{p / scale:.3g}{suffix}"
    return str(p)


def arm_label(intermediate: str) -> str:
    return "direct" if intermediate == DIRECT else intermediate


def language_label(study: Study, target: str, key: str) -> str:
    """The heading of an average, saying what it is over."""
    n = len(study.language_sets[target][key])
    return {"all": f"avg (all {n})", "seen": f"avg (seen by every model: {n})",
            "custom": f"avg (chosen: {n})"}[key]


def shown_sets(study: Study, target: str) -> list[str]:
    """The language sets worth a column for a target: all, and the others where they are
    not empty and differ from every set before them."""
    sets = study.language_sets[target]
    keys: list[str] = []
    for key in ("all", "seen", "custom"):
        langs = sets.get(key)
        if langs and all(langs != sets[k] for k in keys):
            keys.append(key)
    return keys


def _flag(text: str, flagged) -> str:
    return f"{text} {DAGGER}" if flagged else text


def _seeds(arm) -> str:
    inter = {i for i, _ in arm.seeds if i is not None}
    target = {t for _, t in arm.seeds}
    if len(inter) > 1:
        return f"{len(arm.seeds)} ({len(inter)}×{len(target)})"
    return str(len(arm.seeds))


# --------------------------------------------------------------------------- tables

def score_tables(study: Study) -> list[Table]:
    """The paper's table per target task and model: rows direct and each intermediate,
    columns the languages and the averages, values the mean over seeds."""
    tables = []
    for target in study.targets:
        langs = study.language_sets[target]["all"]
        keys = shown_sets(study, target)
        section = ("Scores: XTREME tasks" if target in study.xtreme_targets
                   else "Scores: tasks outside XTREME (not in the XTREME score)")
        for model in study.models:
            rows, flagged = [], False
            for inter in study.intermediates:
                arm = study.arms.get((model.name, target, inter))
                if arm is None:
                    continue
                flagged |= bool(arm.degenerate)
                means = dict(zip(arm.estimate.languages, arm.estimate.language_means))
                rows.append((_flag(arm_label(inter), arm.degenerate), _seeds(arm),
                             *(_num(means[lang]) for lang in langs),
                             *(_ci(arm.estimate.over(study.language_sets[target][k]))
                               for k in keys)))
            if not rows:
                continue
            notes = [f"mean over seeds of {study.metrics[target]} (%); averages with their "
                     f"{_level(study)} bootstrap interval over seeds and test examples"]
            if flagged:
                notes.append(DEGENERATE_NOTE)
            tables.append(Table(
                title=f"{target} — {model.name} ({parameters_label(model.parameters)} parameters)",
                columns=("intermediate", "seeds", *langs,
                         *(language_label(study, target, k) for k in keys)),
                rows=tuple(rows), notes=tuple(notes), section=section))
    return tables


def _level(study: Study) -> str:
    return f"{100 * study.settings['level']:.0f} %"


def xtreme_tables(study: Study) -> list[Table]:
    """XTREME's score per (model, intermediate) over the XTREME targets present: the tasks,
    the groups whose tasks are all present and the overall mean over the tasks included."""
    targets = study.xtreme_targets
    if not targets:
        return []
    groups = [g for g, members in GROUP2TASK.items() if all(t in targets for t in members)]
    missing = {g: [t for t in members if t not in targets] for g, members in GROUP2TASK.items()
               if g not in groups}
    tables = []
    keys = ["all"] + (["seen"] if any(study.language_sets[t]["seen"] != study.language_sets[t]["all"]
                                      for t in targets) else [])
    for key in keys:
        rows = []
        for model in study.models:
            for inter in study.intermediates:
                score = study.xtreme_score(model.name, inter, key)
                if score is None:
                    continue
                rows.append((model.name, arm_label(inter),
                             *(_num(score["tasks"].get(t)) for t in targets),
                             *(_num(score["groups"].get(g)) for g in groups),
                             _num(score["overall"])))
        over = ("all of each task's languages" if key == "all"
                else "each task's languages seen by every model")
        notes = [f"tasks included: {', '.join(targets)}; overall = mean over the tasks "
                 f"included (as metrics.score_all)"]
        if missing:
            notes.append("groups left out (not all their tasks present): " + "; ".join(
                f"{g} (needs {', '.join(ts)})" for g, ts in missing.items()))
        if study.other_targets:
            notes.append(f"outside XTREME, not in this score: {', '.join(study.other_targets)}")
        tables.append(Table(title=f"XTREME score (over {over})",
                            columns=("model", "intermediate", *targets, *groups, "overall"),
                            rows=tuple(rows), notes=tuple(notes), section="XTREME score"))
    return tables


def gain_tables(study: Study) -> list[Table]:
    """Per target: the gain of each intermediate over direct fine-tuning per model, with its
    bootstrap interval, the pairs it rests on and whether a degenerate phase is in it."""
    tables = []
    for target in study.targets:
        keys = shown_sets(study, target)
        rows, flagged = [], False
        for inter in study.intermediates:
            for model in study.models:
                g = study.gains.get((model.name, target, inter))
                if g is None:
                    continue
                flagged |= bool(g.degenerate)
                est = g.estimate
                rows.append((_flag(arm_label(inter), g.degenerate), model.name,
                             parameters_label(model.parameters),
                             *(_ci(study.gain(model.name, target, inter, k), signed=True)
                               for k in keys),
                             str(est.n_pairs) if est else "0",
                             str(est.unpaired) if est else g.reason))
        if not rows:
            continue
        notes = [f"X-STILTs − direct, {study.metrics[target]} points: the mean over pairs of "
                 f"the same target seed, [{_level(study)} percentile bootstrap interval over "
                 f"pairs and test examples]"]
        if flagged:
            notes.append(DEGENERATE_NOTE)
        tables.append(Table(
            title=f"Gain over direct fine-tuning: {target}",
            columns=("intermediate", "model", "parameters",
                     *(f"gain, {language_label(study, target, k)}" for k in keys),
                     "pairs", "unpaired"),
            rows=tuple(rows), notes=tuple(notes), section="Gains"))
    return tables


def gain_language_tables(study: Study) -> list[Table]:
    """Per target: each language's gain (mean over pairs) per intermediate and model."""
    tables = []
    for target in study.targets:
        langs = study.language_sets[target]["all"]
        rows = []
        for inter in study.intermediates:
            for model in study.models:
                g = study.gains.get((model.name, target, inter))
                if g is None or g.estimate is None:
                    continue
                per = g.estimate.per_language
                rows.append((_flag(arm_label(inter), g.degenerate), model.name,
                             *(f"{per[lang][0]:+.1f}" for lang in langs)))
        if rows:
            tables.append(Table(title=f"Gain per language: {target}",
                                columns=("intermediate", "model", *langs), rows=tuple(rows),
                                notes=("intervals per language are in report.json",),
                                section="Gains per language"))
    return tables


def _chosen_label(study: Study) -> str:
    return {"all": "all of each target's languages",
            "seen": "the languages every model was pretrained on",
            "custom": f"the chosen languages ({', '.join(study.settings['languages'])})"
            }[study.chosen]


def average_table(study: Study) -> list[Table]:
    """The gain averaged over targets per intermediate and model (the chosen languages)."""
    rows = []
    for inter in study.intermediates:
        for model in study.models:
            est = study.averages.get((model.name, inter))
            if est is not None:
                rows.append((arm_label(inter), model.name, parameters_label(model.parameters),
                             _ci(est, signed=True), ", ".join(study.average_targets[inter])))
    if not rows:
        return []
    return [Table(title="Gain averaged over targets",
                  columns=("intermediate", "model", "parameters", "gain", "targets"),
                  rows=tuple(rows),
                  notes=(f"over {_chosen_label(study)}; each target resampled on its own "
                         f"(phases shared between targets are not resampled jointly)",),
                  section="Gains")]


def trend_table(study: Study) -> list[Table]:
    """The slope of the gain per tenfold more parameters, per target and intermediate."""
    rows = []
    order = [*study.targets, AVERAGE]
    for (target, inter), t in sorted(study.trends.items(), key=lambda kv: (
            order.index(kv[0][0]), study.intermediates.index(kv[0][1]))):
        if t is None:
            rows.append((target, arm_label(inter), "– (fewer than two model sizes)", "–", "–"))
        else:
            rows.append((target, arm_label(inter),
                         f"{t.slope:+.2f} [{t.low:+.2f}, {t.high:+.2f}]", f"{t.intercept:.2f}",
                         ", ".join(parameters_label(int(p)) for p in t.parameters)))
    if not rows:
        return []
    return [Table(title="Trend of the gain with model size",
                  columns=("target", "intermediate", "slope per decade", "intercept", "models"),
                  rows=tuple(rows),
                  notes=(f"OLS of the gain (over {_chosen_label(study)}) on "
                         f"log10(parameters); the interval refits every bootstrap replicate",),
                  section="Trends")]


def headline_table(study: Study) -> Table:
    """Every gain over the chosen languages on one page: what the terminal shows."""
    rows, flagged = [], False
    for target in [*study.targets, AVERAGE]:
        for inter in study.intermediates:
            for model in study.models:
                if target == AVERAGE:
                    est, g = study.averages.get((model.name, inter)), None
                    if est is None:
                        continue
                else:
                    g = study.gains.get((model.name, target, inter))
                    if g is None:
                        continue
                    est = study.gain(model.name, target, inter)
                mark = bool(g and g.degenerate)
                flagged |= mark
                rows.append((target, _flag(arm_label(inter), mark), model.name,
                             parameters_label(model.parameters), _ci(est, signed=True),
                             str(est.n_pairs) if est is not None and g else ""))
    notes = [f"X-STILTs − direct over {_chosen_label(study)}, [{_level(study)} bootstrap "
             f"interval], B = {study.settings['bootstrap']}"]
    if flagged:
        notes.append(DEGENERATE_NOTE)
    return Table(title="Gain of intermediate training over direct fine-tuning",
                 columns=("target", "intermediate", "model", "parameters", "gain", "pairs"),
                 rows=tuple(rows), notes=tuple(notes), section="Headline")


def all_tables(study: Study) -> list[Table]:
    """Every table of the summary, in its order."""
    return [headline_table(study), *gain_tables(study), *average_table(study),
            *trend_table(study), *xtreme_tables(study), *score_tables(study),
            *gain_language_tables(study)]
