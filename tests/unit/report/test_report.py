"""The report end to end on a synthetic store (three model sizes, direct + one intermediate,
an XTREME task and the demo's task, three target seeds) with a built-in gain that grows with
size; the tables' language sets and XTREME score; the store's errors."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest

from xstilts_jax.report import ReportError, write_report
from xstilts_jax.report import render, tables
from xstilts_jax.report.study import build_study, load_store

from store_fixtures import INTERMEDIATE, LANGUAGES, MODELS, synthetic_cells, write_store


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sweep")
    write_store(run_dir, synthetic_cells())
    return write_report(run_dir, bootstrap=200, seed=0)


def test_writes_every_file(report):
    assert report.out_dir == report.summary.parent
    for path in (report.summary, report.html, report.json, *report.figures):
        assert path.is_file(), path
    assert [f.name for f in report.figures] == ["gain_vs_parameters.png"]
    png = report.figures[0].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    page = report.html.read_text()
    assert "data:image/png;base64," + base64.b64encode(png).decode() in page
    assert page.count("<table>") >= 5


def test_gains_are_positive_and_grow_with_size(report):
    data = json.loads(report.json.read_text())
    assert [m["name"] for m in data["models"]] == ["synthetic-s", "synthetic-m", "synthetic-l"]
    for target in LANGUAGES:
        gains = [g for g in data["gains"] if g["target"] == target]
        assert [g["model"] for g in gains] == ["synthetic-s", "synthetic-m", "synthetic-l"]
        means = [g["average"]["all"]["mean"] for g in gains]
        # The built-in gains: the model's, +10/3 for the one language of three with 10 more.
        np.testing.assert_allclose(means, [g + 10 / 3 for *_, g in MODELS], atol=1e-9)
        for g in gains:
            assert 0 < g["average"]["all"]["low"] < g["average"]["all"]["mean"] \
                < g["average"]["all"]["high"]
            assert g["n_pairs"] == 3 and g["unpaired"] == 0
    trends = {t["target"]: t for t in data["trends"]}
    assert set(trends) == {*LANGUAGES, "average over targets"}
    for t in trends.values():
        assert t["slope_per_decade"] == pytest.approx(8.0)
        assert 0 < t["low"] < 8.0 < t["high"]
    average = [a for a in data["average_over_targets"]]
    assert [a["targets"] for a in average] == [list(LANGUAGES)] * 3


def test_seen_languages_average_differs_from_all(report):
    data = json.loads(report.json.read_text())
    assert data["seen_by_every_model"] == ["de", "en", "xa"]
    assert data["language_sets"]["pawsx"] == {"all": ["en", "de", "fr"], "seen": ["en", "de"]}
    assert data["language_sets"]["synthetic_paraphrase"]["seen"] == ["en", "xa"]
    for g in data["gains"]:
        seen, every = g["average"]["seen"]["mean"], g["average"]["all"]["mean"]
        assert every - seen == pytest.approx(10 / 3)  # fr / xb, unseen by the small model
    summary = report.summary.read_text()
    assert "avg (all 3)" in summary and "avg (seen by every model: 2)" in summary


def test_summary_tables_and_flags(report):
    summary = report.summary.read_text()
    assert "B = 200" in summary and "seed 0" in summary
    assert "tasks included: pawsx" in summary
    assert "outside XTREME, not in this score: synthetic_paraphrase" in summary
    assert "Scores: tasks outside XTREME" in summary
    # The degenerate cell is in, and flagged, in the large model's synthetic_paraphrase gain.
    assert "†" in summary and "flagged degenerate" in summary
    data = json.loads(report.json.read_text())
    flagged = [(g["model"], g["target"]) for g in data["gains"] if g["degenerate"]]
    assert flagged == [("synthetic-l", "pawsx"), ("synthetic-l", "synthetic_paraphrase")]
    xtreme = [x for x in data["xtreme"] if x["languages"] == "all"]
    assert {tuple(x["tasks"]) for x in xtreme} == {("pawsx",)}
    assert all(x["groups"] == {} for x in xtreme)  # classification also needs xnli
    arm = next(a for a in data["arms"] if a["model"] == "synthetic-s"
               and a["target"] == "pawsx" and a["intermediate"] == "none")
    assert arm["per_language"] == {"en": 61.0, "de": 61.0, "fr": 61.0}  # seeds 60, 61, 62
    assert [s["target_seed"] for s in arm["seeds"]] == [0, 1, 2]
    assert "gain" in report.text and "synthetic-l" in report.text
    assert "slope per decade" in report.text


def test_markdown_pipe_table():
    t = tables.Table(title="T", columns=("a", "b|c"), rows=(("x", "1.5"), ("y", "–")),
                     notes=("n",))
    md = render.markdown(t)
    assert "| a | b\\|c |" in md and "|---|---:|" in md and "| x | 1.5 |" in md
    assert "_n_" in md
    assert render.text(t).splitlines()[0] == "T"


def _rows(tmp_path, models, **kw):
    write_store(tmp_path, synthetic_cells(models))
    rows, example_stats = load_store(tmp_path)
    return build_study(rows, example_stats, bootstrap=50, **kw)


def test_a_model_without_a_size_is_in_the_tables_not_the_trend(tmp_path):
    models = [MODELS[0], ("mystery", None, None, 5.0)]
    study = _rows(tmp_path, models)
    assert any("no parameter count for mystery" in n for n in study.notes)
    assert study.gain("mystery", "pawsx", INTERMEDIATE).mean > 0
    # One model with a size: no slope, no crash.
    assert study.trends[("pawsx", INTERMEDIATE)] is None
    assert any("fewer than two" in r[2] for t in tables.trend_table(study) for r in t.rows)


def test_lora_cells_are_models_of_their_own_kept_out_of_the_trend(tmp_path):
    """A model fine-tuned with LoRA next to the same model fully fine-tuned: its own rows in
    the tables ("<model> [lora-r8-a8]"), its gain against its own direct cells, and no point
    in the plots and trends, which run through the fully fine-tuned models."""
    full = synthetic_cells(MODELS[:2])
    lora_cells = [{**c, "cell": c["cell"] + "-lora", "finetuning": "lora-r8-a8"}
                  for c in synthetic_cells(MODELS[1:2])]
    for c in lora_cells:  # LoRA gains a point less than full fine-tuning here
        if c["intermediate"] != "none":
            c["stats"] = {k: np.where(np.arange(len(a))[:, None] < len(a) // 100, 0.0, a)
                          for k, a in c["stats"].items()}
    write_store(tmp_path, full + lora_cells)
    rows, example_stats = load_store(tmp_path)
    study = build_study(rows, example_stats, bootstrap=50)
    name = f"{MODELS[1][0]} [lora-r8-a8]"
    assert [m.name for m in study.models] == [MODELS[0][0], MODELS[1][0], name]
    assert [m.name for m in study.sized_models] == [MODELS[0][0], MODELS[1][0]]
    lora_gain = study.gain(name, "pawsx", INTERMEDIATE).mean
    full_gain = study.gain(MODELS[1][0], "pawsx", INTERMEDIATE).mean
    assert 0 < lora_gain < full_gain
    assert any(n.startswith(f"{name}: fine-tuned another way") for n in study.notes)
    trend = study.trends[("pawsx", INTERMEDIATE)]
    assert trend is not None  # the two fully fine-tuned sizes, not three points
    report = write_report(tmp_path, bootstrap=50)
    assert name in report.summary.read_text()
    models = json.loads(report.json.read_text())["models"]
    assert [m["finetuning"] for m in models] == ["full", "full", "lora-r8-a8"]


def test_chosen_languages_drive_the_headline(tmp_path):
    study = _rows(tmp_path, MODELS[:2], languages=["en"])
    assert study.language_sets["pawsx"]["custom"] == ("en",)
    gain = study.gain("synthetic-s", "pawsx", INTERMEDIATE)
    assert gain.languages == ("en",) and gain.mean == pytest.approx(4.0)
    assert "chosen languages (en)" in tables.headline_table(study).notes[0]
    with pytest.raises(ValueError, match="languages must be"):
        build_study([{}], lambda *a: None, languages="some")


def test_unpaired_cells_are_noted(tmp_path):
    cells = [c for c in synthetic_cells(MODELS[:1])
             if not (c["intermediate"] == "none" and c["target_seed"] == 2)]
    write_store(tmp_path, cells)
    rows, example_stats = load_store(tmp_path)
    study = build_study(rows, example_stats, bootstrap=50)
    g = study.gains[("synthetic-s", "pawsx", INTERMEDIATE)].estimate
    assert (g.n_pairs, g.unpaired) == (2, 1)
    assert any("without a direct cell" in n for n in study.notes)


def test_missing_or_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="store/rows: no results store"):
        write_report(tmp_path)
    (tmp_path / "store" / "rows").mkdir(parents=True)
    (tmp_path / "store" / "rows" / "c.jsonl").write_text("")
    with pytest.raises(ReportError, match="store is empty"):
        write_report(tmp_path)
    assert issubclass(ReportError, ValueError)


def test_missing_statistics_are_a_clear_error(tmp_path):
    write_store(tmp_path, synthetic_cells(MODELS[:1]))
    (tmp_path / "store" / "examples" / "synthetic-s-none-t0.npz").unlink()
    with pytest.raises(ReportError, match="synthetic-s-none-t0.npz: no per-example statistics"):
        write_report(tmp_path, bootstrap=10)


def test_a_score_that_its_examples_do_not_give_is_an_error(tmp_path):
    write_store(tmp_path, synthetic_cells(MODELS[:1]))
    path = tmp_path / "store" / "rows" / "synthetic-s-none-t0.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["score"] += 1.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ReportError, match="examples' statistics give"):
        write_report(tmp_path, bootstrap=10)


def test_importing_the_report_needs_no_matplotlib():
    code = ("import sys, xstilts_jax.report, xstilts_jax.report.tables; "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
