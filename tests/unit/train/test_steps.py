"""Training core: sharded steps equal one device, placement by the rules, the optimizer."""

from __future__ import annotations


import jax
import numpy as np
import optax
import pytest
from flax import nnx

from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax import sharding
from xstilts_jax.train.optimizer import decay_mask, make_optimizer, warmup_linear_decay
from xstilts_jax.train.steps import Steps


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


@pytest.mark.slow
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


def _accumulated_run(mesh, micro_batches, accumulation, *, multisteps=False):
    """Params and per-update losses after training on ``micro_batches``: ``accumulation``
    of them per update inside one step, or (``multisteps``) fed one by one through
    ``optax.MultiSteps``, the accumulation this project used before (the reference)."""
    graphdef, params_state = nnx.split(_tiny_model())  # dropout on: the keys must match
    updates = len(micro_batches) // accumulation
    tx = make_optimizer(learning_rate=1e-3, total_steps=updates)
    if multisteps:
        steps = Steps(graphdef, optax.MultiSteps(tx, every_k_schedule=accumulation), mesh,
                      dropout_seed=1)
    else:
        steps = Steps(graphdef, tx, mesh, dropout_seed=1, accumulation=accumulation)
    shardings = steps.shardings(params_state)
    state = steps.create_state(nnx.to_pure_dict(params_state), shardings)
    step = steps.jit_train_step(shardings, steps.batch_shardings(micro_batches[0]))
    losses = []
    for u in range(updates):
        group = [sharding.global_batch(b, mesh)
                 for b in micro_batches[u * accumulation:(u + 1) * accumulation]]
        if multisteps:
            micro_losses = []
            for batch in group:
                state, metrics = step(state, batch)
                micro_losses.append(float(metrics["loss"]))
            losses.append(np.mean(micro_losses))
        else:
            state, metrics = step(state, tuple(group))
            losses.append(float(metrics["loss"]))
    return jax.device_get(state.params), np.array(losses), int(state.step)


def test_accumulation_in_one_step_equals_multisteps():
    """Three micro-batches per update summed by the step's scan == optax.MultiSteps fed
    them one by one (dropout on, same keys), over 3 updates: same parameters and mean
    losses to float tolerance; ``step`` counts updates."""
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    micro = _batches(n=9, batch=4, seq=16)
    params, losses, step = _accumulated_run(mesh, micro, 3)
    ref_params, ref_losses, ref_step = _accumulated_run(mesh, micro, 3, multisteps=True)
    assert step == 3 and ref_step == 9
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-6)
    start = nnx.to_pure_dict(nnx.state(_tiny_model()))
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), params, start)))
    differ = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                              params, ref_params)))
    assert moved > 1e-3  # three real updates
    assert differ < 2e-6


@pytest.mark.slow
def test_accumulation_on_eight_devices_trains_like_one():
    """The accumulated update sharded (data 4 x fsdp 2) gives the 1-device losses."""
    micro = _batches(n=6, batch=8, seq=16)
    _, one, _ = _accumulated_run(sharding.make_mesh({"data": 1}, jax.devices()[:1]), micro, 2)
    _, eight, _ = _accumulated_run(sharding.make_mesh({"fsdp": 2, "data": 4}, jax.devices()),
                                   micro, 2)
    np.testing.assert_allclose(eight, one, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("adapters", [False, True], ids=["full", "lora"])
def test_grad_accumulation_equals_big_batch(adapters):
    """Two micro-batches of 8 accumulated == one batch of 16 (same data, dropout off); with
    LoRA too (only the adapters and the head accumulate)."""
    from xstilts_jax.losses import classification_loss
    from xstilts_jax.models import lora
    from xstilts_jax.train.program import build_program

    big = dict(_batches(n=1, batch=16)[0], weight=np.ones(16, np.float32))
    halves = ({k: v[:8] for k, v in big.items()}, {k: v[8:] for k, v in big.items()})
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    results = []
    for accumulation, batch in ((1, big), (2, halves)):
        model = _tiny_model(dropout=0.0)
        if adapters:
            lora.add_adapters(model.encoder, lora.LoRAConfig(rank=4, alpha=8.0),
                              nnx.Rngs(params=1))
        program = build_program(model, classification_loss, mesh=mesh, learning_rate=1e-3,
                                total_updates=5, grad_accumulation=accumulation)
        start = nnx.to_pure_dict(program.params)
        train_step, _ = program.jitted(None, halves[0])
        state, _ = train_step(program.initial_state(),
                              program.feed(batch) if accumulation == 1 else
                              tuple(program.feed(b) for b in batch))
        results.append(state.params)
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), results[0], start)))
    differ = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), *results)))
    assert moved > 1e-4  # one real update happened in both
    assert differ < 1e-6


# --------------------------------------------------------------------------- end to end


def _twelve_rows_seven_steps():
    """12 short labelled rows and a 7-step phase over them (3 batches an epoch, one bucket)."""
    from xstilts_jax.data.inputs import ModelInputs
    from xstilts_jax.train.loop import PhaseConfig

    rng = np.random.default_rng(0)
    rows = [[0, *rng.integers(5, 900, 6), 2] for _ in range(12)]
    inputs = ModelInputs(rows, [[0] * len(r) for r in rows],
                         {"labels": rng.integers(0, 3, 12).astype(np.int32)})
    cfg = PhaseConfig(name="p", batch_size=4, num_steps=7, eval_every=7, max_length=16,
                      buckets=(16,))
    return inputs, cfg


def test_run_phase_makes_each_batch_once_and_runs_its_hooks(tmp_path):
    """The loop asks its data for each micro-batch once, plus one sample batch when the step is
    first jitted: a step never rebuilds batches (an epoch of them, for SupervisedData). Its
    hooks (given, then installed in the process) see each micro-batch once and every update
    boundary, saved or not."""
    from xstilts_jax.losses import classification_loss
    from xstilts_jax.train import hooks
    from xstilts_jax.train.loop import SupervisedData, run_phase

    seen = []

    class Recording(hooks.PhaseHook):
        def __init__(self, tag):
            self.tag = tag

        def on_batch(self, phase, micro_step, batch):
            seen.append((self.tag, phase, micro_step))
            return batch

        def on_update(self, b):
            seen.append((self.tag, b.phase, b.update, b.total, b.saved, int(b.state.step),
                         bool(np.isfinite(float(b.metrics["loss"])))))

    inputs, cfg = _twelve_rows_seven_steps()

    class Counting(SupervisedData):
        asked: list[int] = []

        def train_batch(self, micro_step):
            self.asked.append(micro_step)
            return super().train_batch(micro_step)

    data = Counting(inputs, inputs, cfg, 1, dev_metrics=lambda logits: {"dev_x": 1.0})
    with pytest.raises(TypeError, match="a hook is a PhaseHook"):
        hooks.install(lambda boundary: None)
    with hooks.installed(Recording("installed")):
        run_phase(cfg, _tiny_model(), data, losses=classification_loss,
                  phase_dir=tmp_path / "p", mesh=sharding.make_mesh({"data": 1}, jax.devices()[:1]),
                  progress=False, tensorboard=False, hooks=[Recording("given")])
    assert hooks.active() == ()
    assert data.asked == [0, *range(7)]  # 7 steps over 3 batches an epoch: epochs 0, 1, 2
    order = ("given", "installed")
    assert [e for e in seen if len(e) == 3] == [(t, "p", m) for m in range(7) for t in order]
    assert [e for e in seen if len(e) > 3] == [(t, "p", u, 7, u == 7, u, True)
                                              for u in range(1, 8) for t in order]


def test_a_data_error_while_prefetching_stops_the_phase_with_its_own_message(tmp_path):
    """Batches are made ahead in a producer thread: an error there comes out of run_phase in
    the caller's thread, with its type and message, and leaves no thread behind."""
    import threading

    from xstilts_jax.losses import classification_loss
    from xstilts_jax.train.loop import SupervisedData, run_phase

    inputs, cfg = _twelve_rows_seven_steps()

    class Broken(SupervisedData):
        def train_batch(self, micro_step):
            if micro_step == 4:
                raise OSError("train.tsv: read failed at line 17")
            return super().train_batch(micro_step)

    data = Broken(inputs, inputs, cfg, 1, dev_metrics=lambda logits: {"dev_x": 1.0})
    before = set(threading.enumerate())
    with pytest.raises(OSError, match="^train.tsv: read failed at line 17$"):
        run_phase(cfg, _tiny_model(), data, losses=classification_loss,
                  phase_dir=tmp_path / "p", mesh=sharding.make_mesh({"data": 1}, jax.devices()[:1]),
                  progress=False, tensorboard=False)
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("p-")]
