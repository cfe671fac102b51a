"""The report's figure: the gain of each intermediate task over direct fine-tuning against
model size, one panel per target and one for the average over targets.

matplotlib (the ``report`` extra) is imported inside the function, with the Agg backend, so
that the tables and ``report.json`` need nothing beyond NumPy.
"""

from __future__ import annotations


import numpy as np
from etils import epath

from xstilts_jax.report.study import AVERAGE, DIRECT, Study
from xstilts_jax.report.tables import parameters_label
from xstilts_jax.storage import as_path

__all__ = ["GAIN_FIGURE", "gain_vs_parameters"]

GAIN_FIGURE = "gain_vs_parameters.png"
_CHOSEN = {"all": "all of each target's", "seen": "seen by every model", "custom": "chosen"}


def _panels(study: Study) -> list[tuple[str, dict[str, list]]]:
    """(panel title, intermediate -> [(parameters, estimate)] over sized models)."""
    sized = study.sized_models
    panels = []
    for target in [*study.targets, AVERAGE]:
        lines = {}
        for inter in study.intermediates:
            if inter == DIRECT:
                continue
            points = []
            for m in sized:
                est = (study.averages.get((m.name, inter)) if target == AVERAGE
                       else study.gain(m.name, target, inter))
                if est is not None:
                    points.append((m.parameters, est))
            if points:
                lines[inter] = points
        if lines:
            panels.append((target, lines))
    return panels


def gain_vs_parameters(study: Study, out_dir) -> epath.Path | None:
    """Write ``gain_vs_parameters.png`` (log x: parameters; y: gain in points; a band per
    intermediate for its interval, its trend dashed); None when no model has a size."""
    panels = _panels(study)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    entries = max(len(lines) for _, lines in panels) * 2  # a line and a trend each
    # Legends sit under their panels (they carry each panel's slopes) so no data is hidden.
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, (3.6 + 0.2 * entries) * rows),
                             squeeze=False, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {inter: colors[i % len(colors)]
             for i, inter in enumerate(i for i in study.intermediates if i != DIRECT)}
    sizes = sorted({m.parameters for m in study.sized_models})
    for ax, (target, lines) in zip(axes.flat, panels):
        for inter, points in lines.items():
            x = np.array([p for p, _ in points], dtype=np.float64)
            mean = np.array([e.mean for _, e in points])
            low = np.array([e.low for _, e in points])
            high = np.array([e.high for _, e in points])
            ax.plot(x, mean, "o-", color=color[inter], label=inter)
            ax.fill_between(x, low, high, color=color[inter], alpha=0.15, linewidth=0)
            fit = study.trends.get((target, inter))
            if fit is not None:
                grid, values = fit.line()
                ax.plot(grid, values, "--", color=color[inter],
                        label=f"{inter}: slope per decade = {fit.slope:+.2f} "
                              f"[{fit.low:+.2f}, {fit.high:+.2f}]")
        ax.axhline(0.0, color="0.4", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [parameters_label(int(p)) for p in sizes])
        ax.minorticks_off()
        ax.set_xlabel("parameters")
        ax.set_ylabel("gain over direct (points)")
        metric = study.metrics.get(target)
        ax.set_title(target if target == AVERAGE or metric is None else f"{target} ({metric})")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18),
                  frameon=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"X-STILTs − direct fine-tuning, {100 * study.settings['level']:.0f} % "
                 f"bootstrap intervals; languages: {_CHOSEN[study.chosen]}")
    out = as_path(out_dir) / GAIN_FIGURE
    with out.open("wb") as f:  # a local file or a bucket's (gs://)
        fig.savefig(f, dpi=120, format="png")
    plt.close(fig)
    return out
