"""``xstilts sweep --backend ray`` on a local Ray instance (2 CPUs): workers killed mid-phase
whose tasks are retried and resume from their checkpoints, the intermediate phase trained once,
and the store of the local backend. Without Ray: the module imports, the backend names the
extra to install. The store takes appends from several writers at once."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import signal
import sys
import threading
import types

import numpy as np
import pytest

import faults
from conftest import write_nli_data
from faults import KillAfter
from reference_runs import (TINY_OVERRIDES, assert_same_store, intermediate_phase_dirs,
                            tiny_sweep)
from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.ray_backend import INSTALL_HINT, MAX_RETRIES, task_options
from xstilts_jax.experiments.store import ScoreRow, Store
from xstilts_jax.experiments.launch import run_sweep
from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec, status_table
from xstilts_jax.train import hooks

# Killed right after the checkpoint of update 3 (eval_every = checkpoint_every = 3): the
# retried task resumes at update 4, so the kill is not met again.
KILL = KillAfter("target", 3)
assert TINY_OVERRIDES["target.eval_every"] == KILL.step


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """A local Ray instance, its session files under the test run's temporary directory; its
    tasks, fresh processes, load the programs that this process (and every other) compiled
    from the run's compilation cache (the environment they inherit, and
    ``ray_backend._driver_settings``). ``ray.init`` installs SIGTERM/SIGINT handlers that
    ``ray.shutdown`` leaves behind: the previous ones come back after."""
    ray = pytest.importorskip("ray")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                 _temp_dir=str(tmp_path_factory.mktemp("ray")))
        yield ray
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def events_files(phase_dir) -> int:
    """TensorBoard event files of a phase: one per process that ran it."""
    return len(list((phase_dir / "tb").glob("*/events.out.tfevents.*")))


def evals(phase_dir) -> list[int]:
    lines = [json.loads(line) for line in (phase_dir / "metrics.jsonl").open()]
    return [line["step"] for line in lines if line["kind"] == "eval"]


@pytest.mark.slow
def test_ray_backend_fills_the_local_store_through_a_killed_worker(ray_session, tmp_path,
                                                                   tiny_checkpoints, nli_data,
                                                                   reference_sweep):
    """One model, intermediate mnli, target seeds 0 and 1, on Ray with every target phase's
    worker killed after its checkpoint at update 3: the retried tasks resume, and the store is
    that of the local backend, run without kills (the reference sweep)."""
    models = [("tiny", tiny_checkpoints("xlmr"), None)]
    spec = tiny_sweep(models, nli_data, intermediates=("mnli",), target_seeds=(0, 1))
    run_dir = tmp_path / "ray"
    # The driver's hooks go with its tasks; the workers cannot import tests/faults.py.
    ray_session.cloudpickle.register_pickle_by_value(faults)
    with hooks.installed(KILL):
        summary = run_sweep(spec, run_dir, backend="ray")
    assert (summary.cells, summary.done, summary.failed) == (2, 2, {})
    assert summary.trained_phases == 1 + 2 and not summary.preempted
    (intermediate,) = intermediate_phase_dirs(run_dir)  # one task for both targets' phase
    targets = [p for p in (run_dir / "phases").iterdir() if p != intermediate]
    assert len(targets) == 2 and evals(intermediate) == [3, 6]
    # Each target phase ran in two processes (the killed worker's task, then its retry), and
    # the retry went on from the checkpoint (no evaluation logged twice).
    assert [events_files(p) for p in targets] == [2, 2]
    assert [evals(p) for p in targets] == [[3, 6], [3, 6]]
    assert status_table(run_dir).splitlines()[-1] == "2 done, 0 running, 0 failed, 0 pending"
    assert_same_store(run_dir, reference_sweep[1], spec)
    # Nothing to do the second time: no task is submitted.
    again = run_sweep(spec, run_dir, backend="ray")
    assert (again.already_done, again.done, again.trained_phases) == (2, 2, 0)
    assert len(Store(run_dir).rows()) == 2


@pytest.mark.slow
def test_ray_backend_fails_the_cells_of_a_failed_intermediate_phase_or_model(ray_session,
                                                                            tmp_path,
                                                                            tiny_checkpoints):
    """A failed task's dependents never run: their cells are recorded failed with its error,
    as the local backend records them."""
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    train = data / "mnli" / "train.tsv"
    lines = train.read_text().splitlines()
    lines[5] = "only\tthree\tcolumns"
    train.write_text("\n".join(lines) + "\n")

    def no_weights():
        raise RuntimeError("no weights")

    spec = tiny_sweep([("tiny", tiny_checkpoints("xlmr"), None)], data,
                      intermediates=("mnli",), target_seeds=(0,))
    spec.models.append(ModelSpec("unmade", str(tmp_path / "unmade"), prepare=no_weights))
    summary = run_sweep(spec, tmp_path / "ray", backend="ray")
    assert (summary.cells, summary.done, summary.trained_phases) == (2, 0, 0)
    errors = {name.split("--")[0]: error for name, error in summary.failed.items()}
    assert errors["unmade"] == "preparing model unmade: RuntimeError: no weights"
    assert errors["tiny"].startswith("its intermediate phase ") and f"{train}:6" in errors["tiny"]
    for name, error in summary.failed.items():
        record = json.loads((tmp_path / "ray" / "cells" / name / "cell.json").read_text())
        assert record["state"] == "failed" and record["error"].splitlines()[0] == error
    assert not Store(tmp_path / "ray").rows()


def test_without_ray_the_module_imports_and_the_backend_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    # A second copy of the module, imported without Ray.
    path = importlib.import_module("xstilts_jax.experiments.ray_backend").__file__
    module_spec = importlib.util.spec_from_file_location("ray_backend_without_ray", path)
    module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    spec = tiny_sweep([("tiny", tmp_path / "model", None)], tmp_path / "data",
                      intermediates=("mnli",), target_seeds=(0,))
    with pytest.raises(ConfigError, match=r"pip install 'xstilts_jax\[ray\]'"):
        run_sweep(spec, tmp_path / "run", backend="ray")
    assert INSTALL_HINT == "pip install 'xstilts_jax[ray]'"


class _Ref:
    """A fake ObjectRef: the task's value or the exception it raised."""

    def __init__(self, value=None, error=None):
        self.value, self.error = value, error


class _TaskError(Exception):
    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


def _fake_ray():
    """Ray's calls the backend makes, running each task at once in this process; a task whose
    argument failed fails with its error without running."""
    def remote(**options):
        def wrap(function):
            def submit(*args):
                failed = [a.error for a in args if isinstance(a, _Ref) and a.error is not None]
                if failed:
                    return _Ref(error=failed[0])
                try:
                    return _Ref(function(*[a.value if isinstance(a, _Ref) else a for a in args]))
                except Exception as e:  # noqa: BLE001 - raised again by get
                    return _Ref(error=e)
            return types.SimpleNamespace(remote=submit)
        return wrap

    def get(ref):
        if ref.error is not None:
            raise _TaskError(ref.error)
        return ref.value

    return types.SimpleNamespace(
        is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 2}, remote=remote,
        get=get, wait=lambda refs, num_returns: (refs[:num_returns], refs[num_returns:]),
        exceptions=types.SimpleNamespace(RayError=_TaskError))


def test_retry_degenerate_runs_waves_of_retries_counted_as_the_local_backend(monkeypatch,
                                                                             tmp_path):
    """Phases faked (model a's intermediate phase at seed 0 and its target phases at seed 1 are
    degenerate): the retries of two rounds, their seeds and the summary are the local
    backend's."""
    from xstilts_jax.experiments import sweep

    ray_backend = importlib.import_module("xstilts_jax.experiments.ray_backend")
    from xstilts_jax.experiments.cell import PHASE_RECORD_FILE
    from xstilts_jax.experiments.rundir import RESULTS_FILE, write_json_atomic
    from xstilts_jax.experiments.store import write_cell_record

    def trained(run_dir, key):
        write_json_atomic(run_dir / "phases" / key / PHASE_RECORD_FILE, {})

    def train_shared_phase(run_dir, cell, *, progress):
        trained(run_dir, cell.phase_keys["intermediate"])

    def run_one_cell(run_dir, cell, sweep_name, *, margin, progress):
        for key in cell.phase_keys.values():
            trained(run_dir, key)
        degenerate = []
        if cell.model.name == "a" and cell.intermediate_seed == 0:
            degenerate.append("intermediate")
        if cell.model.name == "a" and cell.target_seed == 1:
            degenerate.append("target")
        cell_dir = run_dir / "cells" / cell.name
        write_json_atomic(cell_dir / RESULTS_FILE, {})
        state = {**cell.describe(sweep_name), "state": "done", "degenerate": degenerate}
        write_cell_record(cell_dir, state)
        return state

    for module in (sweep, ray_backend):
        monkeypatch.setattr(module, "train_shared_phase", train_shared_phase)
        monkeypatch.setattr(module, "run_one_cell", run_one_cell)
    monkeypatch.setitem(sys.modules, "ray", _fake_ray())
    spec = tiny_sweep([("a", tmp_path / "a", None), ("b", tmp_path / "b", None)],
                      tmp_path / "data", intermediates=("mnli",), target_seeds=(0, 1))
    summaries = {}
    for backend in ("local", "ray"):
        summary = run_sweep(spec, tmp_path / backend, retry_degenerate=2, progress=False,
                            backend=backend)
        summary.degenerate.sort()
        summary.retries.sort()
        summaries[backend] = summary
    assert summaries["ray"] == summaries["local"]
    # a: (i0, t0) and (i0, t1) again with intermediate seed 1; then (i1, t1) with target seed 2.
    assert [name.split("--", 1)[1] for name in summaries["ray"].retries] == [
        "mnli--xnli--i1-t0--retry1", "mnli--xnli--i1-t1--retry1", "mnli--xnli--i1-t2--retry2"]
    assert (summaries["ray"].cells, summaries["ray"].done) == (7, 7)
    assert sorted(p.name for p in (tmp_path / "ray" / "cells").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "cells").iterdir())


def test_resources_become_ray_task_options():
    spec = SweepSpec(name="s", models=[], intermediates=[], targets=[],
                     resources={"CPU": 8, "GPU": 1, "TPU": 4, "memory": 2**30, "fast_disk": 1})
    assert task_options(spec) == {"max_retries": MAX_RETRIES, "max_calls": 1, "num_cpus": 8,
                                  "num_gpus": 1, "memory": 2**30,
                                  "resources": {"TPU": 4, "fast_disk": 1}}
    assert "resources" not in task_options(dataclasses.replace(spec, resources={"CPU": 1}))
    for bad in (-1, "1", True):
        with pytest.raises(ConfigError, match=r"resources\['GPU'\]"):
            task_options(dataclasses.replace(spec, resources={"GPU": bad}))


def _rows(cell: str, n: int) -> list[ScoreRow]:
    return [ScoreRow(cell=cell, sweep="s", model="m", model_path="/m", parameters=None,
                     pretrain_languages=None, intermediate="none", target="xnli",
                     intermediate_seed=None, target_seed=0, language=f"l{i}", metric="accuracy",
                     score=float(i), metrics={"accuracy": float(i), "pad": "x" * 200},
                     examples=1, stats_kind="correct", phase_keys={"target": "k"},
                     config_hash="h", degenerate=[]) for i in range(n)]


def test_store_appends_from_several_writers_at_once_neither_interleave_nor_repeat(tmp_path):
    cells = [f"cell{i}" for i in range(12)]
    start = threading.Barrier(6)
    errors = []

    def writer(order):
        try:
            start.wait()
            for cell in order:  # every writer appends every cell: each must be there once
                Store(tmp_path).append(_rows(cell, 60), {"xnli/l0": np.ones((1, 1))})
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(cells[k:] + cells[:k],)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = Store(tmp_path).rows()  # every line parses
    assert sorted((r["cell"], r["language"]) for r in rows) == sorted(
        (c, f"l{i}") for c in cells for i in range(60))
