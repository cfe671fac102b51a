"""The study's report, computed from a sweep's results store alone: how the gain of English
intermediate training (X-STILTs) over direct fine-tuning changes with model size.

``write_report(run_dir)`` reads ``run_dir/store/`` and writes to ``run_dir/report/``:
``summary.md`` (every table, what was averaged over, the bootstrap settings), ``index.html``
(standalone, figures embedded), ``gain_vs_parameters.png`` and ``report.json`` (every number).
The numbers come from ``study.py`` (bootstrap in ``stats.py``), the tables from ``tables.py``,
their rendering from ``render.py`` and the figure from ``plots.py`` (matplotlib, imported only
there).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

from etils import epath

from xstilts_jax.report.study import ReportError, Study, build_study, load_store, study_json
from xstilts_jax.storage import PathLike, as_path

__all__ = ["Report", "ReportError", "write_report"]


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``write_report`` wrote; ``text``: the headline gain table for a terminal."""

    text: str
    out_dir: epath.Path
    summary: epath.Path
    html: epath.Path
    json: epath.Path
    figures: tuple[epath.Path, ...]
    study: Study


def _figures(study: Study, out_dir: epath.Path) -> tuple[list[epath.Path], list[str]]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return [], ["no figure: matplotlib is not installed (pip install 'xstilts_jax[report]')"]
    from xstilts_jax.report.plots import gain_vs_parameters

    path = gain_vs_parameters(study, out_dir)
    if path is None:
        return [], ["no figure: no gain for a model with a known parameter count"]
    return [path], []


def write_report(run_dir: PathLike, out_dir: PathLike | None = None, *,
                 bootstrap: int = 2000, seed: int = 0,
                 languages: str | Sequence[str] = "all", level: float = 0.95) -> Report:
    """Write the report of the sweep in ``run_dir`` to ``out_dir`` (default
    ``run_dir/report``). ``languages``: what the headline gains, figure and trends average
    over: ``"all"`` of each target's languages, ``"seen"`` (by every model in pretraining) or
    a list of codes; the tables show the all and seen averages either way. Raises
    :class:`ReportError` when the store is missing or empty."""
    from xstilts_jax.report import render, tables

    run_dir = as_path(run_dir)
    out_dir = as_path(out_dir) if out_dir is not None else run_dir / "report"
    rows, example_stats = load_store(run_dir)
    study = build_study(rows, example_stats, bootstrap=bootstrap, seed=seed, level=level,
                        languages=languages, run_dir=str(run_dir),
                        store_path=str(run_dir / "store"))
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, figure_notes = _figures(study, out_dir)
    every = tables.all_tables(study)
    summary = out_dir / "summary.md"
    summary.write_text(render.summary_markdown(study, every, figures, figure_notes),
                       encoding="utf-8")
    page = out_dir / "index.html"
    page.write_text(render.index_html(study, every, figures, figure_notes), encoding="utf-8")
    numbers = out_dir / "report.json"
    data = study_json(study)
    data["figures"] = [f.name for f in figures]
    data["notes"] = [*data["notes"], *figure_notes]
    numbers.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    text = "\n".join(render.text(t) for t in [tables.headline_table(study),
                                               *tables.trend_table(study)])
    text += "".join(f"  note: {n}\n" for n in [*study.notes,
                                                                        *figure_notes])
    return Report(text=text, out_dir=out_dir, summary=summary, html=page, json=numbers,
                  figures=tuple(figures), study=study)
