"""Run directories in a bucket: every writer of a run (JSON records, logs, TensorBoard,
checkpoints, the results store) works on ``gs://`` as on a local disk, against the fake GCS
of ``tests/fake_gcs.py`` (fsspec for epath, GCS's JSON API over HTTP for TensorStore)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from store_fixtures import score_row
from xstilts_jax.experiments.rundir import check_resume, read_json, write_json_atomic
from xstilts_jax.experiments.store import Store
from xstilts_jax.storage import as_path, is_local, write_atomic
from xstilts_jax.train.checkpoints import PhaseCheckpoints
from xstilts_jax.train.writer import MetricWriter

BUCKET = "gs://xstilts-test"


def test_paths_keep_their_scheme(tmp_path):
    assert str(as_path("gs://b/run") / "cells" / "c1") == "gs://b/run/cells/c1"
    assert is_local(tmp_path) and is_local("runs/x") and not is_local("gs://b/run")
    write_atomic(tmp_path / "a" / "b.json", "{}\n")
    assert (tmp_path / "a" / "b.json").read_text() == "{}\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]  # no temporary left


def test_json_records_and_resume_checks_in_a_bucket(gcs):
    run = as_path(f"{BUCKET}/run")
    write_json_atomic(run / "cells" / "c1" / "cell.json", {"state": "done"})
    assert read_json(run / "cells" / "c1" / "cell.json") == {"state": "done"}
    assert json.loads((gcs / "xstilts-test" / "run" / "cells" / "c1" / "cell.json").read_text())
    check_resume(run, {"seed": 0, "debug": {"x": 1}})
    check_resume(run, {"seed": 0, "debug": {"x": 2}})  # debug is not the experiment
    with pytest.raises(ValueError, match=r"gs://xstilts-test/run/config.json: this run "
                                         r"directory was started with a different config"):
        check_resume(run, {"seed": 1})


def test_metric_log_in_a_bucket_is_written_at_flushes_and_truncated_on_resume(gcs):
    run = f"{BUCKET}/phase"
    writer = MetricWriter(run, "target", tensorboard=False)
    for step in (1, 2, 3):
        writer.write(step, "train", {"loss": 1.0 / step})
    log = gcs / "xstilts-test" / "phase" / "metrics.jsonl"
    assert not log.exists()  # an object is written whole, at a checkpoint
    writer.flush()
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3]
    writer.write(4, "train", {"loss": 0.25})  # after the last checkpoint; then killed
    writer = MetricWriter(run, "target", tensorboard=True)  # the resumed run
    writer.truncate_after(2)
    writer.write(3, "eval", {"accuracy": 50.0})
    writer.close()
    assert [(r["step"], r["kind"]) for r in map(json.loads, log.read_text().splitlines())] == [
        (1, "train"), (2, "train"), (3, "eval")]
    events = list((gcs / "xstilts-test" / "phase" / "tb" / "target").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents")
    assert events[0].stat().st_size > 0  # the TensorBoard scalars reached the bucket


def test_orbax_checkpoints_in_a_bucket_restore_exactly(gcs):
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    state = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(7)}
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                            state)
    checkpoints = PhaseCheckpoints(f"{BUCKET}/phase/ckpt")
    checkpoints.save_latest(5, jax.tree.map(lambda x: x * 0, state), {"best_dev": 1.0})
    checkpoints.save_latest(7, state, {"best_dev": 2.5})
    checkpoints.close()
    again = PhaseCheckpoints(f"{BUCKET}/phase/ckpt")
    restored, loop = again.restore_latest(abstract)
    assert again.latest.all_steps() == [7]  # max_to_keep=1 deleted step 5 in the bucket
    again.close()
    assert loop == {"best_dev": 2.5}
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert int(restored["step"]) == 7
    # The array data went through TensorStore's GCS driver, not a local path.
    assert list((gcs / "xstilts-test" / "phase" / "ckpt" / "latest" / "7").iterdir())


def test_a_compressed_checkpoint_of_older_runs_restores(tmp_path):
    """Checkpoints are written without compression now; one written with orbax's default
    zstd (as before) still restores, array values and loop state alike."""
    import orbax.checkpoint as ocp

    state = {"w": jnp.arange(1000.0), "step": jnp.int32(3)}
    older = ocp.CheckpointManager(
        tmp_path / "ckpt" / "latest", item_names=("state", "loop"),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                             enable_async_checkpointing=False))
    older.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          loop=ocp.args.JsonSave({"best_dev": 1.5})))
    older.wait_until_finished()
    older.close()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            state)
    checkpoints = PhaseCheckpoints(tmp_path / "ckpt")
    restored, loop = checkpoints.restore_latest(abstract)
    checkpoints.close()
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert int(restored["step"]) == 3 and loop == {"best_dev": 1.5}


def test_results_store_in_a_bucket(gcs):
    store = Store(f"{BUCKET}/sweep")
    stats = {"xnli/de": np.array([[1.0], [0.0], [1.0], [1.0]])}
    store.append([score_row("c1", "de", 75.0)], stats)
    store.append([score_row("c0", "de", 50.0)], stats)
    assert [r["cell"] for r in store.rows()] == ["c0", "c1"]
    np.testing.assert_array_equal(store.example_stats("c1", "xnli", "de"), stats["xnli/de"])
    assert sorted(p.name for p in (gcs / "xstilts-test" / "sweep" / "store" / "rows").iterdir()) \
        == ["c0.jsonl", "c1.jsonl"]
