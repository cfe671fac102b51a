"""The sweep's expansion and plan (no training): the declared studies resolve, phases are
shared by content key, bad axes and overrides are refused by name; the store's file rules;
degenerate phases from their dev record."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import pytest

from conftest import REPO
from store_fixtures import score_row
from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.cell import PHASE_RECORD_FILE
from xstilts_jax.experiments.defaults import ALL_NINE, TARGETS
from xstilts_jax.experiments.store import Store
from xstilts_jax.experiments.sweep import (ModelSpec, SweepSpec, chance_level, degenerate_phase,
                                           expand, format_plan, load_sweep, make_plan)

SWEEPS = REPO / "configs" / "sweep.py"


def intermediate_keys(cells):
    return {c.phase_keys["intermediate"] for c in cells if "intermediate" in c.phase_keys}


def test_the_paper_grid_resolves_with_one_intermediate_phase_per_task(tmp_path):
    spec = load_sweep(f"{SWEEPS}:paper")
    cells = expand(spec)
    assert len(cells) == 1 * (1 + 9 + 1) * 7 * 3 == 231
    assert len({c.name for c in cells}) == 231
    # models x intermediate tasks x intermediate seeds, each shared by its 7 x 3 targets
    assert len(intermediate_keys(cells)) == 1 * 10 * 1
    assert len({c.phase_keys["target"] for c in cells}) == 231
    all9 = [c for c in cells if c.intermediate == "all9"]
    assert all9 and all(c.config.intermediate.task == "+".join(ALL_NINE) for c in all9)
    assert {c.target for c in cells} == set(TARGETS)
    direct = [c for c in cells if c.intermediate == "none"]
    assert len(direct) == 21 and all("intermediate" not in c.phase_keys for c in direct)
    plan = make_plan(spec, tmp_path / "nothing-yet")
    assert "10 intermediate (0 trained)" in format_plan(plan)
    assert not (tmp_path / "nothing-yet").exists()  # planning writes nothing


def test_the_scale_grid_resolves_across_xlmr_and_bloom_sizes():
    cells = expand(load_sweep(f"{SWEEPS}:scale"))
    models = {c.model.name: c.model.parameters for c in cells}
    assert list(models) == ["xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl", "bloom-560m",
                            "bloom-1b1", "bloom-1b7", "bloom-3b", "bloom-7b1", "bloom-176b"]
    assert models["xlmr-xxl"] > 30 * models["xlmr-base"] > 0
    assert models["bloom-176b"] > 150e9 > models["bloom-7b1"] > 7e9
    assert len(cells) == 10 * (1 + 3) * 7 * 3 == 840
    assert len(intermediate_keys(cells)) == 10 * 3 * 1
    assert all(c.config.model.remat == "dots_saveable" for c in cells)
    languages = {c.model.name: c.model.languages for c in cells}
    assert "de" in languages["xlmr-base"] and "de" not in languages["bloom-176b"]
    assert {c.config.model.name for c in cells if c.model.name == "bloom-176b"} == {
        "bigscience/bloom"}


def tiny_spec(**changes) -> SweepSpec:
    spec = SweepSpec(name="t", models=[ModelSpec("a", "/m/a"), ModelSpec("b", "/m/b")],
                     intermediates=["none", "mnli"], targets=["xnli", "pawsx"],
                     intermediate_seeds=[0, 1], target_seeds=[0, 1, 2])
    return dataclasses.replace(spec, **changes)


def test_seeds_and_models_reach_the_cells_and_their_keys():
    cells = expand(tiny_spec())
    assert len(cells) == 2 * (1 * 2 * 3 + 1 * 2 * 2 * 3) == 36
    assert len(intermediate_keys(cells)) == 2 * 1 * 2
    cell = next(c for c in cells if c.intermediate == "mnli" and c.intermediate_seed == 1)
    assert (cell.config.intermediate.seed, cell.config.model.name) == (1, "/m/a")
    # The same row's targets start from one intermediate phase; seeds change the key.
    row = [c for c in cells if c.model.name == "a" and c.intermediate_seed == 1]
    assert len({c.phase_keys["intermediate"] for c in row}) == 1
    assert len({c.phase_keys["target"] for c in row}) == len(row) == 6


def test_model_and_sweep_overrides_apply_and_unknown_keys_are_named():
    spec = tiny_spec(models=[ModelSpec("a", "/m/a", overrides={"data.dir": "/d"})],
                     overrides={"target.num_steps": 7})
    cell = expand(spec)[0]
    assert (cell.config.data.dir, cell.config.target.num_steps) == ("/d", 7)
    with pytest.raises(ConfigError, match="sweep 't' overrides: unknown config key 'target.nope'"):
        expand(tiny_spec(overrides={"target.nope": 1}))
    with pytest.raises(ConfigError, match="model 'a' overrides"):
        expand(tiny_spec(models=[ModelSpec("a", "/m/a", overrides={"nope": 1})]))


@pytest.mark.parametrize("changes, message", [
    (dict(targets=[]), "the targets axis is empty"),
    (dict(targets=["no_such_task"]), "no_such_task"),
    (dict(models=[ModelSpec("a", "/x"), ModelSpec("a", "/y")]), "model names repeat"),
])
def test_bad_axes_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        expand(tiny_spec(**changes))


def test_load_sweep_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such sweep config file"):
        load_sweep(f"{tmp_path / 'missing.py'}:x")
    with pytest.raises(ConfigError, match="unknown sweep 'nope'"):
        load_sweep(f"{SWEEPS}:nope")
    path = tmp_path / "bad.py"
    path.write_text("def get_sweep(arg):\n    return {}\n")
    with pytest.raises(ConfigError, match="expected a SweepSpec"):
        load_sweep(f"{path}:x")


def test_store_writes_a_cell_once_in_files_of_its_own(tmp_path):
    store = Store(tmp_path)
    stats = {"xnli/de": np.array([[1.0], [0.0], [1.0], [1.0]])}
    store.append([score_row("c1", "de", 75.0), score_row("c1", "fr", 50.0)], stats)
    store.append([score_row("c1", "de", 99.0)], stats)  # already there: not written again
    store.append([score_row("c0", "de", 25.0)], stats)
    assert [(r["cell"], r["language"]) for r in store.rows()] == [
        ("c0", "de"), ("c1", "de"), ("c1", "fr")]  # cells in name order
    assert store.cells() == {"c0", "c1"}
    assert sorted(p.name for p in (tmp_path / "store" / "rows").iterdir()) == [
        "c0.jsonl", "c1.jsonl"]  # no temporary file left behind
    np.testing.assert_array_equal(store.example_stats("c1", "xnli", "de"), stats["xnli/de"])
    (tmp_path / "store" / "rows" / "c2.jsonl").write_text('{"cell": "c2"}\nnot json\n')
    with pytest.raises(ValueError, match=r"rows/c2.jsonl:2: not a JSON row"):
        store.rows()


def test_chance_levels_and_degenerate_phases(tmp_path):
    assert chance_level("xnli") == pytest.approx(100 / 3)
    assert chance_level("pawsx") == 50.0
    assert chance_level("udpos") is None and chance_level("mnli+squad") is None
    for key, task, best in (("collapsed", "mnli", 34.0), ("fine", "mnli", 61.0),
                            ("tagging", "udpos", 1.0)):
        (tmp_path / "phases" / key).mkdir(parents=True)
        (tmp_path / "phases" / key / PHASE_RECORD_FILE).write_text(
            json.dumps({"task": task, "best_dev": best}))
    assert degenerate_phase(tmp_path, "collapsed", margin=2.0)
    assert not degenerate_phase(tmp_path, "fine", margin=2.0)
    assert not degenerate_phase(tmp_path, "tagging", margin=2.0)
    assert not degenerate_phase(tmp_path, "never-trained", margin=2.0)


@pytest.mark.parametrize("name, cells, intermediate_phases", [("paper", 231, 10),
                                                              ("scale", 840, 30)])
def test_the_studies_resolve_on_the_command_line_with_dry_run(name, cells, intermediate_phases,
                                                             tmp_path, capsys):
    from xstilts_jax.cli import main

    assert main(["sweep", "--config", f"{SWEEPS}:{name}", "--workdir", str(tmp_path / "w"),
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert f"sweep {name}: {cells} cells" in printed
    assert f"{intermediate_phases} intermediate (0 trained)" in printed
    assert not (tmp_path / "w").exists()


def test_stopping_after_a_phase_the_cell_lacks_is_refused(tmp_path):
    from xstilts_jax.experiments.cell import run_cell
    from xstilts_jax.experiments.defaults import cell_config

    with pytest.raises(ValueError, match=r"a phase the cell has \(target\)"):
        run_cell(cell_config("none", "xnli"), None, phases_dir=tmp_path, stop_after="intermediate")
    with pytest.raises(ValueError, match="needs a phases_dir"):
        run_cell(cell_config("mnli", "xnli"), None, stop_after="intermediate")
    assert not any(tmp_path.iterdir())


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path, monkeypatch):
    """``xstilts sweep ... --dry-run | head -1``: the reader is gone before the plan is
    printed; the command ends with 141 (128 + SIGPIPE), not a BrokenPipeError traceback."""
    from xstilts_jax.cli import BROKEN_PIPE_EXIT, main

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left
    stdout = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert main(["sweep", "--config", f"{SWEEPS}:paper", "--workdir",
                     str(tmp_path / "w"), "--dry-run"]) == BROKEN_PIPE_EXIT
    finally:
        monkeypatch.undo()
    stdout.close()  # as Python's flush at exit: the descriptor is /dev/null now, no error
