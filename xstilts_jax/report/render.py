"""Tables as Markdown (pipe tables), plain text for a terminal and HTML, and the report's
two documents: ``summary.md`` and a standalone ``index.html`` with its figures embedded."""

from __future__ import annotations

import base64
import html
from typing import Sequence

from etils import epath

from xstilts_jax.report.study import Study
from xstilts_jax.report.tables import Table

__all__ = ["html_table", "index_html", "markdown", "summary_markdown", "text"]


def _is_number(cell: str) -> bool:
    head = cell.split(" ")[0].lstrip("+-–")
    return bool(head) and head.replace(".", "", 1).isdigit()


def markdown(table: Table) -> str:
    """A Markdown pipe table under a bold title, footnotes below."""
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---:" if table.rows and all(_is_number(r[i]) or r[i] in ("–", "")
                                          for r in table.rows) else "---"
             for i in range(len(table.columns))]
    out = [f"**{table.title}**", "", line(table.columns), "|" + "|".join(align) + "|"]
    out += [line(r) for r in table.rows]
    out += [""] + [f"_{n}_  " for n in table.notes] if table.notes else []
    return "\n".join(out) + "\n"


def text(table: Table) -> str:
    """Columns padded to their widest cell, for a terminal."""
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
              for i, c in enumerate(table.columns)]

    def line(cells):
        return "  ".join(c.rjust(w) if _is_number(c) else c.ljust(w)
                         for c, w in zip(cells, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [table.title, line(table.columns), rule, *(line(r) for r in table.rows)]
    out += [f"  {n}" for n in table.notes]
    return "\n".join(out) + "\n"


def html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if _is_number(c) else ""}">{e(c)}</td>'
                         for c in r) + "</tr>" for r in table.rows)
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in table.notes)
    return (f"<h3>{e(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}")


def _sections(tables: Sequence[Table]) -> list[tuple[str, list[Table]]]:
    out: list[tuple[str, list[Table]]] = []
    for t in tables:
        if not out or out[-1][0] != t.section:
            out.append((t.section, []))
        out[-1][1].append(t)
    return out


def _settings(study: Study) -> list[str]:
    s = study.settings
    chosen = s["languages"] if isinstance(s["languages"], str) else ", ".join(s["languages"])
    seen = ("every language (no model's pretraining languages are known)" if study.seen is None
            else ", ".join(study.seen) or "none")
    lines = [
        f"Store: `{s['store']}`",
        "Models: " + ", ".join(
            f"{m.name} ({f'{m.parameters:,}' if m.parameters is not None else 'unknown number of'}"
            f" parameters)" for m in study.models),
        f"Targets: {', '.join(study.targets)}; intermediates: "
        f"{', '.join(i for i in study.intermediates)} (`none` = direct fine-tuning)",
        f"Languages seen by every model in pretraining: {seen}",
        f"Headline gains, figure and trends average over: {chosen}",
        f"Bootstrap: B = {s['bootstrap']} replicates, seed {s['seed']}, "
        f"{100 * s['level']:.0f} % percentile intervals. A replicate resamples the seed pairs "
        f"(X-STILTs and direct cells of one target seed) with replacement and, per language, "
        f"the test examples with replacement (the same indices for every cell: the test set is "
        f"shared), rescoring each cell from its summed per-example statistics; a cell's score "
        f"is the mean over the languages of its per-language scores.",
        "Trend: OLS of the gain on log10(parameters); its interval refits each replicate "
        "(each model resampled on its own).",
    ]
    for target in study.targets:
        sets = study.language_sets[target]
        lines.append(f"{target}: all = {', '.join(sets['all']) or 'none'}; seen by every "
                     f"model = {', '.join(sets['seen']) or 'none'}")
    return lines


def summary_markdown(study: Study, tables: Sequence[Table], figures: Sequence[epath.Path],
                     extra_notes: Sequence[str] = ()) -> str:
    """``summary.md``: what was averaged and how, the notes, every table, the figures."""
    out = ["# X-STILTs: the gain of intermediate training with model size", ""]
    out += ["## Settings", ""] + [f"- {line}" for line in _settings(study)] + [""]
    notes = [*study.notes, *extra_notes]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    for section, group in _sections(tables):
        out += [f"## {section}", ""]
        for t in group:
            out += [markdown(t)]
        if section == "Trends":
            out += [f"![{f.stem}]({f.name})" for f in figures] + [""]
    if figures and not any(t.section == "Trends" for t in tables):
        out += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 8px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
p.note{color:#555;font-size:90%;margin:.2em 0}img{max-width:100%}"""


def index_html(study: Study, tables: Sequence[Table], figures: Sequence[epath.Path],
               extra_notes: Sequence[str] = ()) -> str:
    """A standalone page: the tables as HTML and the figures embedded as base64 PNG."""
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           "<title>X-STILTs report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>X-STILTs: the gain of intermediate training with model size</h1>",
           "<h2>Settings</h2><ul>", *(f"<li>{e(line)}</li>" for line in _settings(study)),
           "</ul>"]
    notes = [*study.notes, *extra_notes]
    if notes:
        out += ["<h2>Notes</h2><ul>", *(f"<li>{e(n)}</li>" for n in notes), "</ul>"]
    for f in figures:
        data = base64.b64encode(f.read_bytes()).decode("ascii")
        out.append(f'<h2>{e(f.stem)}</h2><img alt="{e(f.stem)}" '
                   f'src="data:image/png;base64,{data}">')
    for section, group in _sections(tables):
        out.append(f"<h2>{e(section)}</h2>")
        out += [html_table(t) for t in group]
    out.append("</body></html>")
    return "\n".join(out)
