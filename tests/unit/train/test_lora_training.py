"""LoRA phases through build_program: only adapters and heads get gradients and optimizer
state, the frozen weights come out bit for bit as they went in, the loss falls, 8 devices
train like one, and a model without adapters gets exactly the full fine-tuning program."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax import sharding
from xstilts_jax.losses import classification_loss
from xstilts_jax.models import lora
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax.train.checkpoints import PhaseCheckpoints
from xstilts_jax.train.program import build_program
from xstilts_jax.train.steps import Steps, split_trainable

NUM_STEPS = 30


def _model(rank: int = 4, frozen_dtype: str = "float32", dropout: float = 0.0) -> TaskModel:
    """The tiny encoder (2 layers, hidden 64) and a 3-class head; adapters when rank > 0."""
    config = get_preset("tiny", hidden_dropout=dropout, attention_dropout=dropout)
    encoder = Encoder(config, rngs=nnx.Rngs(0))
    if rank:
        lora.add_adapters(encoder, lora.LoRAConfig(rank=rank, alpha=2.0 * rank,
                                                   frozen_dtype=frozen_dtype), nnx.Rngs(1))
    return TaskModel(encoder, ClassificationHead(config, 3, rngs=nnx.Rngs(2)))


@functools.cache
def _batches(batch: int = 16, seq: int = 16) -> tuple[dict, ...]:
    """Four batches, cycled: a quarter of each row is its label's own token, the rest random.
    (The frozen random embeddings must carry the label: a frozen encoder cannot learn that
    tokens from one third of the vocabulary mean one label.)"""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        labels = rng.integers(0, 3, batch).astype(np.int32)
        ids = rng.integers(8, 1000, (batch, seq)).astype(np.int32)
        ids[:, 1:1 + seq // 4] = 5 + labels[:, None]
        ids[:, 0] = 0
        mask = np.ones((batch, seq), np.int32)
        mask[batch // 2:, seq // 2:] = 0
        ids[mask == 0] = 1
        out.append(dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                        labels=labels, weight=np.ones(batch, np.float32)))
    return tuple(out)


def _program(model, mesh_shape=None, devices=None, *, updates: int = NUM_STEPS):
    mesh = sharding.make_mesh(mesh_shape or {"data": 1}, devices or jax.devices()[:1])
    return build_program(model, classification_loss, mesh=mesh, learning_rate=1e-2,
                         total_updates=updates, dropout_seed=1)


def _train(program, steps: int = NUM_STEPS):
    """(losses, final state) of ``steps`` updates over the cycled batches."""
    state = program.initial_state()
    train_step = program.jitted(None, _batches()[0])[0]
    losses = []
    for i in range(steps):
        state, metrics = train_step(state, program.feed(_batches()[i % 4]))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state


def _sizes(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_optimizer_state_holds_adapters_and_heads_only():
    model = _model(rank=4)
    trainable, _ = lora.count_params(model)
    program = _program(model)
    state = program.abstract_state
    h = model.encoder.config.hidden_size
    assert trainable == 7168 + (h * h + h) + (h * 3 + 3)  # tiny: 2 layers, h 64, FFN 128, rank 4
    # AdamW: two moments per trainable parameter, plus scalar step counts.
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert _sizes(moments) == 2 * trainable
    assert sum(x.size * x.dtype.itemsize for x in moments) == 2 * 4 * trainable
    trainable_leaves = jax.tree.leaves(split_trainable(state.params, program.trainable)[0])
    assert len(moments) == 2 * len(trainable_leaves)
    # The state keeps every parameter (checkpoints can restore the frozen ones).
    assert _sizes(state.params) == lora.count_params(model)[1]
    assert program.trainable["encoder"]["lora"]["adapters"]["ffn"]["in_kernel"]["a"]
    assert not program.trainable["encoder"]["layers"]["ffn"]["in_kernel"]
    assert program.trainable["head"]["out_kernel"]


def test_without_adapters_the_program_is_full_fine_tuning():
    """Same params tree and optimizer state as before LoRA existed, and a mask that trains
    everything lowers to the very same step as no mask."""
    model = _model(rank=0)
    program = _program(model)
    assert program.trainable is None
    params = nnx.to_pure_dict(nnx.state(model))
    assert (jax.tree.structure(program.abstract_state.params) == jax.tree.structure(params))
    expected_opt = jax.eval_shape(program.tx.init, params)
    assert jax.tree.structure(program.abstract_state.opt_state) == jax.tree.structure(expected_opt)
    assert _sizes([x for x in jax.tree.leaves(program.abstract_state.opt_state) if x.ndim]) \
        == 2 * _sizes(params)
    batch = _batches()[0]
    shardings = program.shardings
    batch_shardings = program.steps().batch_shardings(batch)

    def lowered(trainable):
        steps = Steps(program.graphdef, program.tx, program.mesh, rules=program.rules,
                      trainable=trainable)
        return steps.jit_train_step(shardings, batch_shardings).lower(
            program.abstract_state, batch).as_text()

    assert lowered(jax.tree.map(lambda _: True, params)) == lowered(None)


def test_tiny_lora_phase_lowers_the_loss_and_keeps_frozen_weights():
    model = _model(rank=4)
    before = nnx.to_pure_dict(nnx.state(model))
    program = _program(model)
    losses, state = _train(program)
    assert losses[-4:].mean() < 0.5 * losses[:4].mean(), losses
    after = jax.device_get(state.params)
    mask = program.trainable
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           before, after)
    frozen_changed = [c for c, t in zip(jax.tree.leaves(changed), jax.tree.leaves(mask)) if not t]
    assert frozen_changed and not any(frozen_changed)  # frozen: bit for bit
    assert changed["encoder"]["lora"]["adapters"]["attention"]["query_kernel"]["b"]
    assert changed["head"]["out_kernel"]


def test_bf16_frozen_weights_train_and_checkpoint(tmp_path):
    model = _model(rank=4, frozen_dtype="bfloat16")
    before = nnx.to_pure_dict(nnx.state(model))
    program = _program(model, updates=10)
    losses, state = _train(program, steps=10)
    assert losses[-3:].mean() < losses[:3].mean()
    word = state.params["encoder"]["embeddings"]["word"]
    assert word.dtype == np.dtype("bfloat16")
    np.testing.assert_array_equal(np.asarray(word), np.asarray(before["encoder"]["embeddings"]["word"]))
    assert state.params["encoder"]["lora"]["adapters"]["ffn"]["out_kernel"]["a"].dtype == np.float32
    # The whole state, frozen bf16 weights included, restores onto the program's abstract state.
    checkpoints = PhaseCheckpoints(tmp_path / "ckpt")
    try:
        checkpoints.save_latest(10, state, {"finished": False})
        restored, _ = checkpoints.restore_latest(program.abstract_state)
    finally:
        checkpoints.close()
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_lora_on_eight_devices_trains_like_one():
    assert len(jax.devices()) == 8, "conftest sets 8 fake CPU devices"
    one, _ = _train(_program(_model(rank=4, dropout=0.1), updates=6), steps=6)
    eight, state = _train(_program(_model(rank=4, dropout=0.1), {"fsdp": 2, "data": 2, "tensor": 2},
                                   jax.devices(), updates=6), steps=6)
    np.testing.assert_allclose(eight, one, atol=1e-5, rtol=0)
    a = state.params["encoder"]["lora"]["adapters"]["attention"]["query_kernel"]["a"]
    assert a.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None)  # as its kernel
    b = state.params["encoder"]["lora"]["adapters"]["ffn"]["in_kernel"]["b"]
    assert b.sharding.spec == jax.sharding.PartitionSpec(None, None, "tensor")
