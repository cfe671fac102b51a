"""A pod on one machine: ``xstilts run`` as 4 processes x 2 CPU devices (``jax.distributed`` on
localhost, gloo), a 133M-parameter model (532 MB of float32) sharded fsdp 8 over all devices,
loaded from a sharded HF checkpoint, trained, killed after a checkpoint, resumed, evaluated and
fingerprinted: the scores and the fingerprint are those of one process of 8 devices, and
outside the train step no stage makes a process allocate more than half the model's bytes.

The test launches this file as each process's script (``python tests/integration/test_pod.py
STAGES_FILE [FAULT ...] -- XSTILTS-ARGS``): it samples the process's resident memory every few
milliseconds, attributes it to the stage running (the innermost of load, train:<phase>,
checkpoint, resume (the train state restored), restore (the best parameters), evaluation,
fingerprint; ``baseline`` when the cell starts), installs the
faults of ``tests/faults.py`` given, and runs ``xstilts``. Anonymous memory (``RssAnon``) is
what a process holds; file pages (``RssFile``: the checkpoint's safetensors, mapped) are the
kernel's cache and are recorded apart.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PROCESSES, LOCAL_DEVICES = 4, 2
# The word table makes the size: 520,000 x 256 float32 = 532 MB; two small blocks beside it.
VOCAB, HIDDEN, LAYERS, HEADS, FFN = 520_000, 256, 2, 4, 512
STAGES = ("baseline", "load", "resume", "train:target", "checkpoint", "restore", "evaluation",
          "fingerprint")
# A phase's own memory: the train state (parameters and two Adam moments, 3/4 of the model's
# bytes on each of 4 hosts) restored to resume, and the step. The other stages read or write
# parameters only, each host its own shards.
TRAINING = ("baseline", "resume", "train:target")


# ----------------------------------------------------------------------- the worker's side


def _memory() -> dict[str, int]:
    """This process's resident memory now, bytes: anonymous and file-backed."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


class StageMemory:
    """Peak resident memory per stage, sampled by a thread; a stage is entered with
    ``stage(name)`` (nested: the innermost counts) and records its peak, and its rise over
    the memory at its entry."""

    def __init__(self, interval: float = 0.005):
        self.stack: list[tuple[str, int]] = []
        self.record: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.interval = interval
        threading.Thread(target=self._sample, daemon=True).start()

    def _note(self, memory: dict[str, int]) -> None:
        with self.lock:
            if not self.stack:
                return
            name, entry = self.stack[-1]
            r = self.record.setdefault(name, {"anon_peak": 0, "file_peak": 0, "anon_rise": 0,
                                              "anon_at_entry": entry})
            r["anon_peak"] = max(r["anon_peak"], memory["RssAnon"])
            r["file_peak"] = max(r["file_peak"], memory["RssFile"])
            r["anon_rise"] = max(r["anon_rise"], memory["RssAnon"] - entry)

    def _sample(self) -> None:
        while True:
            self._note(_memory())
            time.sleep(self.interval)

    @contextlib.contextmanager
    def stage(self, name: str):
        memory = _memory()
        with self.lock:
            self.stack.append((name, memory["RssAnon"]))
        self._note(memory)
        started = time.perf_counter()
        try:
            yield
        finally:
            self._note(_memory())
            with self.lock:
                self.stack.pop()
                r = self.record[name]
                r["seconds"] = r.get("seconds", 0.0) + time.perf_counter() - started

    def wrap(self, owner, attribute: str, name) -> None:
        """``owner.attribute`` (a function or method) run inside stage ``name`` (a string, or
        a function of the call's arguments giving one)."""
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            with self.stage(name if isinstance(name, str) else name(*args, **kwargs)):
                return original(*args, **kwargs)

        setattr(owner, attribute, wrapped)


def _worker(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    import faults
    from xstilts_jax.cli import main
    from xstilts_jax.experiments import cell, phases
    from xstilts_jax.train import hooks
    from xstilts_jax.train.checkpoints import PhaseCheckpoints

    out_file, split = pathlib.Path(argv[0]), argv.index("--")
    hooks.install(*map(faults.parse, argv[1:split]))
    memory = StageMemory()
    import xstilts_jax.experiments as experiments

    memory.wrap(experiments, "run_cell", "baseline")  # the cell's own work nests inside it
    memory.wrap(cell, "load_model", "load")
    memory.wrap(phases, "run_phase", lambda cfg, *a, **k: f"train:{cfg.name}")
    for method, stage in (("save_latest", "checkpoint"), ("save_best", "checkpoint"),
                          ("restore_latest", "resume"), ("restore_best", "restore")):
        memory.wrap(PhaseCheckpoints, method, stage)
    memory.wrap(cell, "evaluate_zero_shot", "evaluation")
    memory.wrap(cell, "params_sha256", "fingerprint")
    code = main(argv[split + 1:])
    with memory.lock:
        out_file.write_text(json.dumps(memory.record))
    return code


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))


# ----------------------------------------------------------------------- the test's side


def _best_params(workdir: pathlib.Path):
    """The target phase's best parameters, read whole onto this process's first device."""
    import orbax.checkpoint as ocp

    (path,) = (workdir / "target" / "ckpt" / "best").glob("*/state")
    checkpointer = ocp.StandardCheckpointer()
    metadata = checkpointer.metadata(path.absolute())
    metadata = getattr(metadata, "item_metadata", metadata)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          getattr(metadata, "tree", metadata))
    return jax.device_get(checkpointer.restore(path.absolute(), target))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory):
    """A random XLM-R of 133M parameters (532 MB float32), saved as a sharded safetensors
    checkpoint (an index and 3 files), with the tiny tokenizer."""
    import torch
    import transformers as T

    from conftest import build_tiny_tokenizer

    directory = tmp_path_factory.mktemp("pod-model")
    torch.manual_seed(0)
    config = T.XLMRobertaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                num_attention_heads=HEADS, intermediate_size=FFN,
                                max_position_embeddings=130)
    model = T.XLMRobertaModel(config).eval()
    model.save_pretrained(directory, max_shard_size="200MB")
    build_tiny_tokenizer().save_pretrained(directory)
    size = sum(p.numel() for p in model.parameters()) * 4
    del model
    assert len(list(directory.glob("*.safetensors"))) > 1  # sharded
    return directory, size


def _cell_args(model, data, workdir) -> list[str]:
    return ["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:none,xnli,tiny",
            "--workdir", str(workdir), f"--config.model.name={model}", f"--config.data.dir={data}",
            "--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=8",
            "--config.target.num_steps=4", "--config.target.eval_every=2",
            "--config.target.batch_size=8", "--config.target.buckets=(64,)",
            "--config.eval.languages=('en','de')", "-q"]


def _pod(args, workdir: pathlib.Path, faults=()) -> list[dict]:
    """``xstilts ARGS`` as PROCESSES processes of LOCAL_DEVICES CPU devices; each one's
    stage record (None where the process was killed)."""
    from conftest import xla_flags

    port = _free_port()
    workers = []
    for i in range(PROCESSES):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(devices=LOCAL_DEVICES),
               "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "XSTILTS_NUM_PROCESSES": str(PROCESSES),
               "XSTILTS_PROCESS_ID": str(i)}
        workers.append(subprocess.Popen(
            [sys.executable, __file__, str(workdir / f"stages-{i}.json"), *faults, "--", *args,
             "--config.distributed=True"],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=900)
            results.append((worker.returncode, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return results


@pytest.mark.slow
def test_a_pod_of_four_processes_runs_the_cell_of_one_and_no_host_holds_the_model(
        tmp_path, big_checkpoint, nli_data):
    from xstilts_jax.cli import main

    model, model_bytes = big_checkpoint
    assert model_bytes >= 500 * 2**20
    one = tmp_path / "one"
    started = time.perf_counter()
    assert main(_cell_args(model, nli_data, one)) == 0  # in this process, on its 8 devices
    seconds = {"one process": time.perf_counter() - started}

    pod = tmp_path / "pod"
    pod.mkdir()
    args = _cell_args(model, nli_data, pod / "run")
    started = time.perf_counter()
    killed = _pod(args, pod, faults=["kill:target:2"])  # after the checkpoint at update 2
    seconds["pod, killed"] = time.perf_counter() - started
    assert [code for code, _ in killed] == [-9] * PROCESSES, [err[-1500:] for _, err in killed]
    started = time.perf_counter()
    resumed = _pod(args, pod)
    seconds["pod, resumed"] = time.perf_counter() - started
    assert [code for code, _ in resumed] == [0] * PROCESSES, [err[-1500:] for _, err in resumed]

    expected = json.loads((one / "results.json").read_text())
    got = json.loads((pod / "run" / "results.json").read_text())
    assert got["zero_shot"] == expected["zero_shot"]
    # The same parameters to float rounding: gloo sums the processes' gradient shards in its
    # own order (the fingerprint, exact, tells them apart).
    one_params, pod_params = _best_params(one), _best_params(pod / "run")
    assert jax.tree.structure(one_params) == jax.tree.structure(pod_params)
    for a, b in zip(jax.tree.leaves(one_params), jax.tree.leaves(pod_params)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert sorted(p.name for p in (pod / "run" / "target" / "ckpt" / "latest").iterdir()) == ["4"]

    records = [json.loads((pod / f"stages-{i}.json").read_text()) for i in range(PROCESSES)]
    report = {stage: [r.get(stage) for r in records] for stage in STAGES}
    print(json.dumps({"model_bytes": model_bytes, "seconds": seconds, "stages": report}))
    for i, record in enumerate(records):
        assert set(STAGES) <= set(record), (i, sorted(record))
        for stage in set(STAGES) - set(TRAINING):
            assert record[stage]["anon_rise"] <= model_bytes / 2, (i, stage, record[stage])


def test_a_half_given_process_layout_is_refused_clearly(monkeypatch):
    from xstilts_jax.config import ConfigError
    from xstilts_jax.experiments.cell import start_distributed

    monkeypatch.delenv("XSTILTS_PROCESS_ID", raising=False)
    monkeypatch.setenv("XSTILTS_NUM_PROCESSES", "4")
    with pytest.raises(ConfigError, match="set both XSTILTS_NUM_PROCESSES and "
                                          "XSTILTS_PROCESS_ID, or neither"):
        start_distributed()
    monkeypatch.setenv("XSTILTS_PROCESS_ID", "first")
    with pytest.raises(ConfigError, match="must be integers"):
        start_distributed()
