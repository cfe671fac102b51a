"""``xstilts sweep`` on tiny models: phases shared (one intermediate phase per model x task x
seed), the store filled and rebuilt, failures recorded while the rest finishes, and a sweep
killed mid-phase that resumes to the store of an uninterrupted one."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import textwrap

import pytest

from conftest import run_xstilts, save_tiny_checkpoint, write_nli_data
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.experiments.store import Store
from xstilts_jax.experiments.launch import run_sweep
from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec, status_table

# One bucket: each phase compiles one train and one eval program.
TINY_OVERRIDES = {"intermediate.num_steps": 6, "intermediate.eval_every": 3,
                  "intermediate.buckets": (64,), "target.num_steps": 6, "target.eval_every": 3,
                  "target.buckets": (64,), "eval.languages": ("de",)}


def tiny_sweep(models, data, *, intermediates=("none", "mnli"), target_seeds=(0, 1),
               extra=None) -> SweepSpec:
    return SweepSpec(
        name="tiny", models=[ModelSpec(name, str(path), parameters=p)
                             for name, path, p in models],
        intermediates=list(intermediates), targets=["xnli"], intermediate_seeds=[0],
        target_seeds=list(target_seeds),
        overrides={"data.dir": str(data), **TINY_OVERRIDES, **(extra or {})},
        base=lambda i, t: cell_config(i, t, tiny=True))


def intermediate_phase_dirs(run_dir: pathlib.Path) -> list[pathlib.Path]:
    """The phases some other phase starts from."""
    previous = {json.loads((p / "phase.json").read_text())["previous"]
                for p in (run_dir / "phases").iterdir()}
    return [p for p in (run_dir / "phases").iterdir() if p.name in previous]


def comparable(rows):
    """Store rows without what differs between two run directories."""
    return sorted((r["cell"], r["language"], r["score"], tuple(sorted(r["phase_keys"].items())))
                  for r in rows)


@pytest.mark.slow
def test_sweep_shares_intermediate_phases_and_fills_the_store(tmp_path, tiny_checkpoints):
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    other = save_tiny_checkpoint("xlmr", tmp_path / "other", seed=1)
    models = [("small", tiny_checkpoints("xlmr"), 1000), ("large", other, 2000)]
    spec = tiny_sweep(models, data)
    run_dir = tmp_path / "sweep"
    summary = run_sweep(spec, run_dir, progress=False)
    # 2 models x {none, mnli} x 2 target seeds; one intermediate phase per model (x 1 task x
    # 1 seed), trained once for both target seeds.
    assert summary.done == summary.cells == 8 and not summary.failed
    assert len(intermediate_phase_dirs(run_dir)) == 2
    assert summary.trained_phases == 2 + 8
    rows = Store(run_dir).rows()
    assert len(rows) == 8 and {r["language"] for r in rows} == {"de"}
    xstilts = [r for r in rows if r["intermediate"] == "mnli"]
    assert {r["intermediate_seed"] for r in xstilts} == {0}
    assert {(r["model"], r["parameters"]) for r in rows} == {("small", 1000), ("large", 2000)}
    for row in rows:  # the per-example statistics give the score back
        stats = Store(run_dir).example_stats(row["cell"], "xnli", "de")
        assert stats.shape == (row["examples"], 1)
        assert 100 * stats.mean() == pytest.approx(row["score"], abs=1e-9)
    # Every cell points at its phases; the sweep's plan is written.
    plan = json.loads((run_dir / "sweep.json").read_text())
    assert len(plan["cells"]) == 8 and len(plan["phases"]) == 2 + 8
    # Running it again trains nothing and adds nothing.
    again = run_sweep(spec, run_dir, progress=False)
    assert (again.already_done, again.trained_phases) == (8, 0)
    assert len(Store(run_dir).rows()) == 8
    # The store is rebuilt from the cells alone.
    shutil.rmtree(run_dir / "store")
    assert Store(run_dir).reindex() == 8
    assert comparable(Store(run_dir).rows()) == comparable(rows)
    table = status_table(run_dir)
    assert table.splitlines()[-1] == "8 done, 0 running, 0 failed, 0 pending"


@pytest.mark.slow
def test_broken_data_fails_its_cells_with_file_and_line_and_the_rest_finish(tmp_path,
                                                                           tiny_checkpoints):
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    train = data / "mnli" / "dev_matched.tsv"  # the intermediate's alone (XNLI trains on MNLI)
    lines = train.read_text().splitlines()
    lines[5] = "only\tthree\tcolumns"
    train.write_text("\n".join(lines) + "\n")
    spec = tiny_sweep([("tiny", tiny_checkpoints("xlmr"), None)], data, target_seeds=(0,))
    run_dir = tmp_path / "sweep"
    summary = run_sweep(spec, run_dir, progress=False)
    assert summary.done == 1 and len(summary.failed) == 1
    (failed, error), = summary.failed.items()
    assert "--mnli--" in failed and f"{train}:6" in error
    table = status_table(run_dir)
    assert "1 done, 0 running, 1 failed, 0 pending" in table and f"{train}:6" in table
    assert len(Store(run_dir).rows()) == 1


SWEEP_FILE = '''
import os
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec

def get_sweep(arg):
    kill = {{"debug.phase": "target", "debug.kill_at_step": 4}} if os.environ.get("KILL") else {{}}
    return SweepSpec(name="kill", models=[ModelSpec("tiny", {model!r})],
                     intermediates=["mnli"], targets=["xnli"], intermediate_seeds=[0],
                     target_seeds=[0, 1], overrides={{"data.dir": {data!r}, **{tiny!r}, **kill}},
                     base=lambda i, t: cell_config(i, t, tiny=True))
'''


@pytest.mark.slow
def test_sweep_killed_in_a_target_phase_resumes_to_the_uninterrupted_store(tmp_path,
                                                                          tiny_checkpoints):
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    config_file = tmp_path / "sweep_config.py"
    config_file.write_text(textwrap.dedent(SWEEP_FILE.format(
        model=str(tiny_checkpoints("xlmr")), data=str(data), tiny=TINY_OVERRIDES)))
    args = ["sweep", "--config", f"{config_file}:x", "--workdir", str(tmp_path / "killed"), "-q"]
    os.environ["KILL"] = "1"
    try:
        killed = run_xstilts(args, tmp_path / "cache")
    finally:
        del os.environ["KILL"]
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = tmp_path / "killed"
    (intermediate,) = intermediate_phase_dirs(run_dir)
    trained_lines = (intermediate / "metrics.jsonl").read_text()
    assert (intermediate / "record.json").is_file()  # finished before the kill
    assert "running" in status_table(run_dir) or "pending" in status_table(run_dir)
    resumed = run_xstilts(args, tmp_path / "cache")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The finished intermediate phase was not retrained; both target phases were finished.
    assert (intermediate / "metrics.jsonl").read_text() == trained_lines
    assert "2 phases trained by this run" in resumed.stdout
    # The same store as a sweep that was never interrupted.
    from xstilts_jax.experiments.sweep import load_sweep

    uninterrupted = tmp_path / "uninterrupted"
    run_sweep(load_sweep(f"{config_file}:x"), uninterrupted, progress=False)
    assert comparable(Store(run_dir).rows()) == comparable(Store(uninterrupted).rows())



@pytest.mark.slow
def test_a_preempted_sweep_stops_saved_and_the_next_run_finishes(tmp_path, tiny_checkpoints):
    """SIGTERM in a target phase (a preemptible VM's notice): the phase saves, the sweep
    stops with the cell pending, and the same sweep again finishes it from that checkpoint."""
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    model = [("tiny", tiny_checkpoints("xlmr"), None)]
    notice = {"debug.phase": "target", "debug.sigterm_at_step": 4}
    run_dir = tmp_path / "sweep"
    stopped = run_sweep(tiny_sweep(model, data, intermediates=("none",), target_seeds=(0,),
                                   extra=notice), run_dir, progress=False)
    assert stopped.preempted and stopped.done == 0 and not stopped.failed
    assert "preempted" in stopped.format()
    (cell,) = (run_dir / "cells").iterdir()
    assert json.loads((cell / "cell.json").read_text())["state"] == "pending"
    assert "0 done, 0 running, 0 failed, 1 pending" in status_table(run_dir)
    finished = run_sweep(tiny_sweep(model, data, intermediates=("none",), target_seeds=(0,)),
                         run_dir, progress=False)
    assert (finished.done, finished.preempted) == (1, False)
    evals = [json.loads(line)["step"] for line in
             (run_dir / "phases").glob("*/metrics.jsonl").__next__().read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    assert evals == [3, 6]  # resumed after update 4's checkpoint: no evaluation repeated


@pytest.mark.slow
def test_a_sweep_in_a_bucket_survives_preemption_and_equals_a_local_one(tmp_path, gcs,
                                                                        tiny_checkpoints):
    """The run directory on gs:// (the fake GCS of tests/fake_gcs.py): phases, checkpoints
    (TensorStore's GCS driver), logs, the store and the report all live in the bucket; a
    sweep preempted in a target phase resumes there and ends with the store of the same sweep
    run uninterrupted on a local disk."""
    from xstilts_jax.report import write_report

    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    model = [("tiny", tiny_checkpoints("xlmr"), None)]
    run_dir = "gs://xstilts-test/sweeps/tiny"
    notice = {"debug.phase": "target", "debug.sigterm_at_step": 4}
    spec = dict(intermediates=("none", "mnli"), target_seeds=(0,))
    stopped = run_sweep(tiny_sweep(model, data, extra=notice, **spec), run_dir, progress=False)
    assert stopped.preempted and stopped.done == 0 and not stopped.failed
    finished = run_sweep(tiny_sweep(model, data, **spec), run_dir, progress=False)
    assert (finished.done, finished.preempted) == (2, False) and not finished.failed
    assert "2 done, 0 running, 0 failed, 0 pending" in status_table(run_dir)
    local = tmp_path / "local"
    run_sweep(tiny_sweep(model, data, **spec), local, progress=False)
    assert comparable(Store(run_dir).rows()) == comparable(Store(local).rows())
    # Everything is in the bucket: nothing was written to a local "gs:" directory.
    bucket = gcs / "xstilts-test" / "sweeps" / "tiny"
    assert not pathlib.Path("gs:").exists()
    assert len(list((bucket / "store" / "rows").iterdir())) == 2
    logs = sorted(bucket.glob("phases/*/metrics.jsonl"))
    assert len(logs) == 3  # the shared intermediate phase and two target phases
    report = write_report(run_dir, bootstrap=50)
    assert str(report.out_dir) == f"{run_dir}/report"
    assert {p.name for p in (bucket / "report").iterdir()} >= {
        "summary.md", "index.html", "report.json"}
