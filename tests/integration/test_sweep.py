"""``xstilts sweep`` on tiny models: phases shared (one intermediate phase per model x task x
seed), the store filled and rebuilt, failures recorded while the rest finishes, a sweep killed
mid-phase and one preempted in a bucket that resume to the store of the uninterrupted
reference sweep (``reference_runs.reference_sweep``)."""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import textwrap

import pytest

from conftest import run_xstilts, write_nli_data
from faults import SigtermAfter
from reference_runs import (TINY_OVERRIDES, assert_same_store, comparable,
                            intermediate_phase_dirs, tiny_sweep)
from xstilts_jax.cli import main
from xstilts_jax.experiments.store import Store
from xstilts_jax.experiments.launch import run_sweep
from xstilts_jax.experiments.sweep import load_sweep, status_table
from xstilts_jax.train import hooks


@pytest.mark.slow
def test_sweep_shares_intermediate_phases_and_fills_the_store(tmp_path, reference_sweep):
    spec, reference, summary = reference_sweep
    # 2 models x {none, mnli} x 2 target seeds; one intermediate phase per model (x 1 task x
    # 1 seed), trained once for both target seeds.
    assert summary.done == summary.cells == 8 and not summary.failed
    assert len(intermediate_phase_dirs(reference)) == 2
    assert summary.trained_phases == 2 + 8
    rows = Store(reference).rows()
    assert len(rows) == 8 and {r["language"] for r in rows} == {"de"}
    xstilts = [r for r in rows if r["intermediate"] == "mnli"]
    assert {r["intermediate_seed"] for r in xstilts} == {0}
    assert {(r["model"], r["parameters"]) for r in rows} == {("tiny", 1000), ("large", 2000)}
    for row in rows:  # the per-example statistics give the score back
        stats = Store(reference).example_stats(row["cell"], "xnli", "de")
        assert stats.shape == (row["examples"], 1)
        assert 100 * stats.mean() == pytest.approx(row["score"], abs=1e-9)
    # Every cell points at its phases; the sweep's plan is written.
    plan = json.loads((reference / "sweep.json").read_text())
    assert len(plan["cells"]) == 8 and len(plan["phases"]) == 2 + 8
    # Running it again (on a copy: the reference stays as it is) trains nothing, adds nothing.
    run_dir = tmp_path / "sweep"
    shutil.copytree(reference, run_dir)
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
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec

def get_sweep(arg):
    return SweepSpec(name="kill", models=[ModelSpec("tiny", {model!r})],
                     intermediates=["mnli"], targets=["xnli"], intermediate_seeds=[0],
                     target_seeds=[0, 1], overrides={{"data.dir": {data!r}, **{tiny!r}}},
                     base=lambda i, t: cell_config(i, t, tiny=True))
'''


@pytest.mark.slow
def test_sweep_killed_in_a_target_phase_resumes_to_the_uninterrupted_store(
        tmp_path, tiny_checkpoints, nli_data, reference_sweep, capsys):
    config_file = tmp_path / "sweep_config.py"
    config_file.write_text(textwrap.dedent(SWEEP_FILE.format(
        model=str(tiny_checkpoints("xlmr")), data=str(nli_data), tiny=TINY_OVERRIDES)))
    args = ["sweep", "--config", f"{config_file}:x", "--workdir", str(tmp_path / "killed"), "-q"]
    killed = run_xstilts(args, faults=["kill:target:4"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = tmp_path / "killed"
    (intermediate,) = intermediate_phase_dirs(run_dir)
    trained_lines = (intermediate / "metrics.jsonl").read_text()
    assert (intermediate / "record.json").is_file()  # finished before the kill
    assert "running" in status_table(run_dir) or "pending" in status_table(run_dir)
    capsys.readouterr()
    assert main(args) == 0
    # The finished intermediate phase was not retrained; both target phases were finished.
    assert (intermediate / "metrics.jsonl").read_text() == trained_lines
    assert "2 phases trained by this run" in capsys.readouterr().out
    # The same store as the sweep that was never interrupted.
    assert_same_store(run_dir, reference_sweep[1], load_sweep(f"{config_file}:x"))


@pytest.mark.slow
def test_a_sweep_in_a_bucket_survives_preemption_and_equals_the_uninterrupted(
        tmp_path, gcs, tiny_checkpoints, nli_data, reference_sweep):
    """SIGTERM in a target phase (a preemptible VM's notice), the run directory on gs:// (the
    fake GCS of tests/fake_gcs.py): the phase saves, the sweep stops with its cells pending,
    and the same sweep again finishes them from that checkpoint, with no evaluation repeated
    and the store of the uninterrupted reference sweep. Phases, checkpoints (TensorStore's
    GCS driver), logs, the store and the report all live in the bucket."""
    from xstilts_jax.report import write_report

    model = [("tiny", tiny_checkpoints("xlmr"), None)]
    run_dir = "gs://xstilts-test/sweeps/tiny"
    spec = dict(intermediates=("none", "mnli"), target_seeds=(0,))
    with hooks.installed(SigtermAfter("target", 4)):
        stopped = run_sweep(tiny_sweep(model, nli_data, **spec), run_dir, progress=False)
    assert stopped.preempted and stopped.done == 0 and not stopped.failed
    assert "preempted" in stopped.format()
    bucket = gcs / "xstilts-test" / "sweeps" / "tiny"
    records = [cell / "cell.json" for cell in (bucket / "cells").iterdir()]
    states = {json.loads(r.read_text())["state"] for r in records if r.is_file()}
    assert states == {"pending"}  # the preempted cell's record, at least
    assert "0 done, 0 running, 0 failed, 2 pending" in status_table(run_dir)
    finished = run_sweep(tiny_sweep(model, nli_data, **spec), run_dir, progress=False)
    assert (finished.done, finished.preempted) == (2, False) and not finished.failed
    assert "2 done, 0 running, 0 failed, 0 pending" in status_table(run_dir)
    assert_same_store(run_dir, reference_sweep[1], tiny_sweep(model, nli_data, **spec))
    # Everything is in the bucket: nothing was written to a local "gs:" directory.
    assert not pathlib.Path("gs:").exists()
    assert len(list((bucket / "store" / "rows").iterdir())) == 2
    logs = sorted(bucket.glob("phases/*/metrics.jsonl"))
    assert len(logs) == 3  # the shared intermediate phase and two target phases
    for log in logs:  # the preempted phase resumed after update 4's checkpoint
        evals = [json.loads(line)["step"] for line in log.read_text().splitlines()
                 if json.loads(line)["kind"] == "eval"]
        assert evals == [3, 6], log
    report = write_report(run_dir, bootstrap=50)
    assert str(report.out_dir) == f"{run_dir}/report"
    assert {p.name for p in (bucket / "report").iterdir()} >= {
        "summary.md", "index.html", "report.json"}
