"""Two processes of 4 CPU devices each train like one device, each feeding only its own rows;
parameters split over both fingerprint like the whole ones on one device.

The test launches this file twice as a script (``python tests/integration/test_multihost.py ID PORT
PARAMS``, each writing its result beside PARAMS): ``jax.distributed`` with gloo CPU collectives joins the processes into one
8-device data mesh, and every process passes ``sharding.global_batch`` only its rows of
each global batch, as hosts of a real multi-host run do. The test process initialises the
parameters once and hands them over in an .npz: random initialisation compiles one XLA
program per shape, ~10 s of the workers' time otherwise.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax import sharding
from xstilts_jax.train.optimizer import make_optimizer
from xstilts_jax.train.steps import Steps

# Not conftest's: this file also runs as a worker script, which must not import conftest (it
# sets 8 devices for the test process).
REPO = pathlib.Path(__file__).resolve().parents[2]
PROCESSES, LOCAL_DEVICES, BATCH, STEPS = 2, 4, 16, 10


def _batches() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(STEPS):
        ids = rng.integers(5, 1000, (BATCH, 32)).astype(np.int32)
        ids[:, 0] = 0
        mask = np.ones_like(ids)
        mask[BATCH // 2:, 20:] = 0
        ids[mask == 0] = 1
        out.append(dict(input_ids=ids, attention_mask=mask,
                        labels=rng.integers(0, 3, BATCH).astype(np.int32),
                        weight=np.ones(BATCH, np.float32)))
    return out


def _model() -> TaskModel:
    config = get_preset("tiny")
    rngs = nnx.Rngs(0)
    return TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, 3, rngs=rngs))


def _train(graphdef, params_state, mesh, local_rows) -> list[float]:
    """Losses of STEPS tiny train steps (dropout on), feeding ``local_rows(batch)``."""
    steps = Steps(graphdef, make_optimizer(learning_rate=1e-3, total_steps=STEPS), mesh, dropout_seed=1)
    shardings = steps.shardings(params_state)
    state = steps.create_state(nnx.to_pure_dict(params_state), shardings)
    batches = _batches()
    train_step = steps.jit_train_step(shardings, steps.batch_shardings(batches[0]))
    losses = []
    for batch in batches:
        state, metrics = train_step(state, sharding.global_batch(local_rows(batch), mesh))
        losses.append(float(metrics["loss"]))
    return losses


def _worker(process_id: int, port: int, params_file: str) -> dict:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=PROCESSES,
                               process_id=process_id)
    assert jax.process_count() == PROCESSES and jax.device_count() == PROCESSES * LOCAL_DEVICES
    graphdef, params_state = nnx.split(nnx.eval_shape(_model))
    with np.load(params_file) as saved:
        leaves = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    nnx.replace_by_pure_dict(params_state, jax.tree.unflatten(
        jax.tree.structure(nnx.to_pure_dict(params_state)), leaves))
    half = BATCH // PROCESSES
    mesh = sharding.make_mesh({"data": -1})
    losses = _train(graphdef, params_state, mesh,
                    lambda b: {k: v[process_id * half:(process_id + 1) * half] for k, v in b.items()})
    index = {"row": np.arange(BATCH)}
    # Devices ordered p0, p1, p0, p1, ... along the data axis: a process owns every other
    # pair of rows, not a contiguous half. No training here (one more compilation): the
    # global array built from host_slice's rows must hold the right rows on every device.
    by_process = [[d for d in jax.devices() if d.process_index == p] for p in range(PROCESSES)]
    interleaved = sharding.make_mesh(
        {"data": -1}, [d for group in zip(*by_process) for d in group])
    batch = _batches()[0]
    array = sharding.global_batch(sharding.host_slice(batch, interleaved), interleaved)["input_ids"]
    # The parameters split over both processes' devices (fsdp 8): their fingerprint, each
    # process hashing only its own shards, is the one of the whole parameters on one device.
    from xstilts_jax.experiments.rundir import params_sha256

    fsdp = sharding.make_mesh({"fsdp": -1})
    spread = sharding.put(nnx.to_pure_dict(params_state), nnx.to_pure_dict(
        sharding.shardings_from_metadata(params_state, fsdp)))
    assert not all(leaf.is_fully_addressable for leaf in jax.tree.leaves(spread))
    return {"losses": losses, "fingerprint": params_sha256(spread),
            "rows": sharding.host_slice(index, mesh)["row"].tolist(),
            "interleaved_rows": sharding.host_slice(index, interleaved)["row"].tolist(),
            "shards_hold_their_rows": all(np.array_equal(np.asarray(s.data), batch["input_ids"][s.index])
                                          for s in array.addressable_shards)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_device(tmp_path):
    from conftest import xla_flags  # here: this file is also the workers' script

    graphdef, params_state = nnx.split(_model())
    params_file = tmp_path / "params.npz"
    np.savez(params_file, *jax.tree.leaves(nnx.to_pure_dict(params_state)))
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
           "XLA_FLAGS": xla_flags(devices=LOCAL_DEVICES)}
    workers = [subprocess.Popen([sys.executable, __file__, str(i), str(port), str(params_file)],
                                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for i in range(PROCESSES)]
    outputs = []
    try:
        for i, worker in enumerate(workers):
            _, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err[-3000:]
            # In a file: gloo writes to stdout from C++, even onto the line of a result.
            outputs.append(json.loads((tmp_path / f"result-{i}.json").read_text()))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    one = _train(graphdef, params_state, sharding.make_mesh({"data": 1}, jax.devices()[:1]),
                 lambda b: b)
    from xstilts_jax.experiments.rundir import params_sha256

    whole = params_sha256(nnx.to_pure_dict(params_state))
    for process_id, result in enumerate(outputs):
        np.testing.assert_allclose(result["losses"], one, atol=1e-5, rtol=0)
        assert result["fingerprint"] == whole
        half = BATCH // PROCESSES
        assert result["rows"] == list(range(process_id * half, (process_id + 1) * half))
        assert result["interleaved_rows"] == [r for r in range(BATCH) if r // 2 % PROCESSES == process_id]
        assert result["shards_hold_their_rows"]


if __name__ == "__main__":
    result = _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    pathlib.Path(sys.argv[3]).with_name(f"result-{sys.argv[1]}.json").write_text(json.dumps(result))
