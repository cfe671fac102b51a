"""Training core: sharded steps equal one device, exact resume after kill -9, clear failures."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import write_nli_data
from xstilts_jax.cli import main
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax import sharding
from xstilts_jax.train.optimizer import decay_mask, make_optimizer, warmup_linear_decay
from xstilts_jax.train.steps import Steps

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tiny_model(dropout: float = 0.1):
    config = get_preset("tiny", hidden_dropout=dropout, attention_dropout=dropout)
    rngs = nnx.Rngs(0)
    return TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, 3, rngs=rngs))


def _batches(n=20, batch=16, seq=32):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        ids = rng.integers(5, 1000, (batch, seq)).astype(np.int32)
        ids[:, 0] = 0
        mask = np.ones((batch, seq), np.int32)
        mask[batch // 2:, seq // 2:] = 0
        ids[mask == 0] = 1
        weight = np.ones(batch, np.float32)
        weight[-3:] = 0  # padding rows of a last batch
        out.append(dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                        labels=rng.integers(0, 3, batch).astype(np.int32), weight=weight))
    return out


def _loss_curve(mesh_shape, devices, batches):
    model = _tiny_model()
    graphdef, params_state = nnx.split(model)
    mesh = sharding.make_mesh(mesh_shape, devices)
    steps = Steps(graphdef, make_optimizer(learning_rate=1e-3, total_steps=len(batches)), mesh,
                  dropout_seed=1)  # dropout ON: its bits must not depend on the sharding
    shardings = steps.shardings(params_state)
    state = steps.create_state(nnx.to_pure_dict(params_state), shardings)
    train_step = steps.jit_train_step(shardings, steps.batch_shardings(batches[0]))
    losses = []
    for batch in batches:
        state, metrics = train_step(state, sharding.global_batch(batch, mesh))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state


def test_eight_devices_train_like_one():
    assert len(jax.devices()) == 8, "conftest sets 8 fake CPU devices"
    batches = _batches()
    one, _ = _loss_curve({"data": 1}, jax.devices()[:1], batches)
    data_parallel, _ = _loss_curve({"data": -1}, jax.devices(), batches)
    fsdp, state = _loss_curve({"fsdp": 2, "data": 4}, jax.devices(), batches)
    assert one[-1] < one[0]  # it trains
    np.testing.assert_allclose(data_parallel, one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fsdp, one, atol=1e-5, rtol=0)
    kernel = state.params["encoder"]["layers"]["ffn"]["in_kernel"]  # [layers, embed, mlp]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None)  # really sharded


def test_logical_rules_place_parameters():
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    abstract = nnx.state(nnx.eval_shape(_tiny_model))
    shardings = sharding.shardings_from_metadata(abstract, mesh)
    attention = shardings["encoder"]["layers"]["attention"]
    assert attention["query_kernel"].spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)
    assert shardings["encoder"]["embeddings"]["word"].spec == jax.sharding.PartitionSpec("tensor", "fsdp")
    # 3 classes do not divide over anything: replicated, not an error.
    assert shardings["head"]["out_kernel"].spec == jax.sharding.PartitionSpec("tensor", None)


def test_mesh_errors():
    with pytest.raises(ValueError, match="unknown axes"):
        sharding.make_mesh({"model": 2})
    with pytest.raises(ValueError, match="needs 6 devices, found 8"):
        sharding.make_mesh({"data": 3, "fsdp": 2})


def test_optimizer_decay_mask_and_schedule():
    params = nnx.to_pure_dict(nnx.state(_tiny_model()))
    mask = decay_mask(params)
    layer = mask["encoder"]["layers"]
    assert layer["ffn"]["in_kernel"] and mask["encoder"]["embeddings"]["word"]
    assert not layer["ffn"]["in_bias"] and not layer["attention_norm"]["scale"]
    assert not mask["head"]["out_bias"]
    schedule = warmup_linear_decay(1e-5, total_steps=100, warmup_ratio=0.1)
    assert float(schedule(0)) == 0 and float(schedule(10)) == pytest.approx(1e-5)
    assert float(schedule(55)) == pytest.approx(0.5e-5) and float(schedule(100)) == 0


def test_grad_accumulation_equals_big_batch():
    """Two micro-batches of 8 with MultiSteps == one batch of 16 (same data, dropout off)."""
    big = dict(_batches(n=1, batch=16)[0], weight=np.ones(16, np.float32))
    halves = [{k: v[:8] for k, v in big.items()}, {k: v[8:] for k, v in big.items()}]
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    results = []
    for accumulation, stream in ((1, [big]), (2, halves)):
        graphdef, params_state = nnx.split(_tiny_model(dropout=0.0))
        tx = make_optimizer(learning_rate=1e-3, total_steps=5, grad_accumulation=accumulation)
        steps = Steps(graphdef, tx, mesh)
        state = steps.create_state(nnx.to_pure_dict(params_state), steps.shardings(params_state))
        for micro in stream:
            state, _ = jax.jit(steps.train_step)(state, micro)
        results.append(state.params)
    start = nnx.to_pure_dict(nnx.state(_tiny_model(dropout=0.0)))
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), results[0], start)))
    differ = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), *results)))
    assert moved > 1e-4  # one real update happened in both
    assert differ < 1e-6


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def nli_data(tmp_path_factory):
    return write_nli_data(tmp_path_factory.mktemp("nli"))


def _run_args(checkpoint, data, workdir, *extra):
    return ["run", "--config", str(REPO / "configs" / "xtreme.py") + ":mnli,xnli,tiny", "--workdir", str(workdir),
            f"--config.model.name={checkpoint}", f"--config.data.dir={data}",
            "--config.eval.languages=('en','de')", "-q",
            # One bucket: fewer XLA programs to compile per run keeps these tests fast.
            "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)", *extra]


def _xstilts(args, cache_dir):
    """The CLI in a fresh process (SIGKILL must end a whole process), on one CPU device."""
    env = {**os.environ, "XLA_FLAGS": "", "XSTILTS_CACHE": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "xstilts_jax.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_kill_and_resume_is_bit_identical(tmp_path, tiny_checkpoints, nli_data):
    """kill -9 in the intermediate phase, again in the target phase: same results and params."""
    checkpoint = tiny_checkpoints("xlmr")
    cache = tmp_path / "cache"  # the later runs reuse the first one's compiled programs
    clean = _xstilts(_run_args(checkpoint, nli_data, tmp_path / "clean"), cache)
    assert clean.returncode == 0, clean.stderr
    resumed = tmp_path / "resumed"
    first = _xstilts(_run_args(checkpoint, nli_data, resumed, "--config.debug.kill_at_step=15"), cache)
    assert first.returncode == -9, first.stderr  # SIGKILL: no cleanup ran
    second = _xstilts(_run_args(checkpoint, nli_data, resumed, "--config.debug.phase=target",
                                "--config.debug.kill_at_step=13"), cache)
    assert second.returncode == -9, second.stderr
    assert not (resumed / "results.json").exists()
    final = _xstilts(_run_args(checkpoint, nli_data, resumed), cache)
    assert final.returncode == 0, final.stderr
    expected = json.loads((tmp_path / "clean" / "results.json").read_text())
    got = json.loads((resumed / "results.json").read_text())
    assert got == expected  # includes target_params_sha256: parameters are bit-identical
    assert (resumed / "metrics.jsonl").read_text() == (tmp_path / "clean" / "metrics.jsonl").read_text()
    for lang in ("en", "de"):
        assert (resumed / "predictions" / "xnli" / f"test-{lang}.tsv").read_text() == \
            (tmp_path / "clean" / "predictions" / "xnli" / f"test-{lang}.tsv").read_text()
    lines = (resumed / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()
    assert len(lines) == 40 and set(lines) <= {"contradiction", "entailment", "neutral"}
    assert (resumed / "tb" / "intermediate").is_dir() and (resumed / "config.json").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_checkpoints, nli_data, capsys):
    workdir = tmp_path / "run"
    code = main(_run_args(tiny_checkpoints("xlmr"), nli_data, workdir, "--config.debug.inject_nan_at_step=12"))
    assert code == 2
    err = capsys.readouterr().err
    assert "phase intermediate: non-finite loss (nan) at step 13" in err
    assert "Last good checkpoint: step 10" in err
    assert sorted(p.name for p in (workdir / "intermediate" / "ckpt" / "latest").iterdir()) == ["10"]


def test_run_config_errors(tmp_path, tiny_checkpoints, nli_data, capsys):
    checkpoint = tiny_checkpoints("xlmr")
    assert main(_run_args(checkpoint, nli_data, tmp_path / "a", "--config.eval.languages=('en','xx')")) == 2
    assert "eval.languages: ['xx'] are not languages of xnli" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "b", "--config.target.learning_rat=1e-3")) == 2
    assert "--config.target.learning_rat: unknown config key; did you mean target.learning_rate" in \
        capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "c", "--config.seed=abc")) == 2
    assert "--config.seed=abc: not a valid int" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "d", "--config.target.task=xnly")) == 2
    assert "unknown task 'xnly'" in capsys.readouterr().err
