"""Multi-task intermediate training: the task sampler, the per-task data streams, per-task
heads and steps (8 devices = 1 device)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models.encoder import Encoder
from xstilts_jax import sharding
from xstilts_jax.models.heads import (ClassificationHead, MultipleChoiceHead, MultiTaskModel,
                                      SpanHead)
from xstilts_jax.models.presets import get_preset
from xstilts_jax.train.multitask import BLOCK, MultiTaskData, TaskSampler, task_probabilities
from xstilts_jax.losses import classification_loss, multiple_choice_loss, span_loss
from xstilts_jax.train.program import build_program

SIZES = {"mnli": 392_702, "squad_v2": 130_319, "hellaswag": 39_905, "sst2": 67_349}


# --------------------------------------------------------------------------- sampler


def test_task_probabilities():
    p = task_probabilities(SIZES)
    total = sum(SIZES.values())
    assert p == pytest.approx({t: n / total for t, n in SIZES.items()}, abs=1e-15)
    assert task_probabilities(SIZES, sampling="uniform") == {t: 0.25 for t in SIZES}
    t2 = task_probabilities(SIZES, sampling="temperature", temperature=2.0)
    roots = {t: n ** 0.5 for t, n in SIZES.items()}
    assert t2 == pytest.approx({t: r / sum(roots.values()) for t, r in roots.items()}, abs=1e-15)
    # jiant's examples_cap: min(n, cap) in the weights
    capped = task_probabilities(SIZES, examples_cap=50_000)
    weights = {t: min(n, 50_000) for t, n in SIZES.items()}
    assert capped == pytest.approx({t: w / sum(weights.values()) for t, w in weights.items()})
    for kwargs, message in ((dict(sampling="nope"), "sampling must be one of"),
                            (dict(sampling="temperature", temperature=0.0), "temperature"),
                            (dict(examples_cap=-1), "examples_cap")):
        with pytest.raises(ValueError, match=message):
            task_probabilities(SIZES, **kwargs)
    with pytest.raises(ValueError, match="no training examples"):
        task_probabilities({"a": 3, "b": 0})


@pytest.mark.parametrize("kwargs", [{}, dict(sampling="temperature", temperature=3.0),
                                    dict(sampling="uniform"), dict(examples_cap=60_000)])
def test_sampler_frequencies_within_two_percent(kwargs):
    probabilities = task_probabilities(SIZES, **kwargs)
    sampler = TaskSampler(probabilities, seed=7)
    draws = sampler.draws(0, 10_000)
    counts = np.bincount(draws, minlength=len(SIZES)) / 10_000
    for i, name in enumerate(sampler.names):
        assert abs(counts[i] - probabilities[name]) < 0.02, (name, counts[i], probabilities[name])


def test_sampler_resumes_exactly_and_positions_count_earlier_draws():
    probabilities = task_probabilities(SIZES, sampling="temperature", temperature=2.0)
    whole = TaskSampler(probabilities, seed=3)
    n = 2 * BLOCK + 500
    sequence = [whole.task(u) for u in range(n)]
    for k in (0, 1, BLOCK - 1, BLOCK, BLOCK + 17, 2 * BLOCK + 3):
        restarted = TaskSampler(probabilities, seed=3)  # a fresh process resuming at update k
        assert [restarted.task(u) for u in range(k, n)] == sequence[k:]
        assert restarted.position(k) == sequence[:k].count(sequence[k])
    positions = [whole.position(u) for u in range(n)]
    seen: dict[str, int] = {}
    for u, name in enumerate(sequence):
        assert positions[u] == seen.get(name, 0)
        seen[name] = seen.get(name, 0) + 1
    assert [TaskSampler(probabilities, seed=4).task(u) for u in range(200)] != sequence[:200]


class _FakeTask:
    """A member whose batch says which stream position it was asked for."""

    def __init__(self, name):
        self.name, self.asked = name, []

    def num_train_examples(self):
        return 10

    def train_batch(self, micro_step):
        self.asked.append(micro_step)
        return {"position": np.asarray(micro_step)}

    def evaluate(self, eval_step, params, feed):
        return {"dev_accuracy": {"a": 50.0, "b": 70.0, "c": 90.0}[self.name], "dev_loss": 1.0}


def test_mixture_reads_each_task_stream_in_order_with_accumulation():
    members = {n: _FakeTask(n) for n in "abc"}
    data = MultiTaskData(members, {"a": 0.5, "b": 0.3, "c": 0.2}, seed=1, grad_accumulation=3,
                         selection=("a", "c"))
    for micro in range(300):
        task = data.task_of(micro)
        assert data.task_of(micro - micro % 3) == task  # one task per update
        data.train_batch(micro)
    for member in members.values():  # every stream read from 0 on, nothing skipped or repeated
        assert member.asked == list(range(len(member.asked)))
        assert len(member.asked) % 3 == 0
    assert sum(len(m.asked) for m in members.values()) == 300
    metrics = data.evaluate(lambda task: None, None, None)
    assert metrics == {"dev_average": 70.0, "a/dev_accuracy": 50.0, "a/dev_loss": 1.0,
                       "b/dev_accuracy": 70.0, "b/dev_loss": 1.0, "c/dev_accuracy": 90.0,
                       "c/dev_loss": 1.0}
    assert list(metrics)[0] == "dev_average"  # the first metric selects checkpoints
    with pytest.raises(ValueError, match="selection"):
        MultiTaskData(members, {"a": 0.5, "b": 0.3, "c": 0.2}, seed=1, selection=("x",))


# --------------------------------------------------------------------------- heads and steps


def _batch(rng, task, rows=8, seq=16):
    ids = rng.integers(5, 1000, (rows, seq)).astype(np.int32)
    ids[:, 0] = 0
    mask = np.ones((rows, seq), np.int32)
    mask[rows // 2:, seq // 2:] = 0
    ids[mask == 0] = 1
    weight = np.ones(rows, np.float32)
    batch = dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))
    if task == "nli":
        weight[-2:] = 0
        batch["labels"] = rng.integers(0, 3, rows).astype(np.int32)
    elif task == "qa":
        batch["start_positions"] = rng.integers(0, seq // 2, rows).astype(np.int32)
        batch["end_positions"] = batch["start_positions"] + 1
    else:  # 2 examples x 4 choices, the second a padding example
        weight[4:] = 0
        batch["labels"] = np.repeat(rng.integers(0, 4, 2), 4).astype(np.int32)
    batch["weight"] = weight
    return batch


def _mixture_losses(mesh_shape, devices, tasks):
    import functools

    config = get_preset("tiny", hidden_dropout=0.1, attention_dropout=0.1)
    rngs = nnx.Rngs(0)
    model = MultiTaskModel(Encoder(config, rngs=rngs), {
        "nli": ClassificationHead(config, 3, rngs=rngs), "qa": SpanHead(config, rngs=rngs),
        "mc": MultipleChoiceHead(config, 4, rngs=rngs)})
    losses = {"nli": classification_loss, "qa": span_loss,
              "mc": functools.partial(multiple_choice_loss, num_choices=4)}
    program = build_program(model, losses, mesh=sharding.make_mesh(mesh_shape, devices),
                            learning_rate=1e-3, total_updates=len(tasks), dropout_seed=1)
    state = program.initial_state()
    rng = np.random.default_rng(0)
    out = []
    for task in tasks:
        batch = _batch(rng, task)
        train_step = program.jitted(task, batch)[0]
        state, metrics = train_step(state, sharding.global_batch(batch, program.mesh))
        out.append(float(metrics["loss"]))
    return np.array(out), state


@pytest.mark.slow
def test_mixture_steps_on_8_devices_equal_one_device():
    """Per-task steps of one model: the same losses on 1 device and on fsdp=2 x data=4."""
    tasks = ["nli", "qa", "mc", "nli", "mc", "qa"]
    one, state = _mixture_losses({"data": 1}, jax.devices()[:1], tasks)
    eight, _ = _mixture_losses({"data": 4, "fsdp": 2}, jax.devices()[:8], tasks)
    np.testing.assert_allclose(eight, one, rtol=1e-5)
    assert np.isfinite(one).all() and one[0] > 0


def test_multiple_choice_loss_is_softmax_over_each_examples_choices():
    logits = np.array([[1.0], [2.0], [0.5], [-1.0], [3.0], [0.0], [0.0], [0.0]], np.float32)
    batch = {"labels": np.array([1] * 4 + [0] * 4, np.int32),
             "weight": np.array([1.0] * 4 + [0.0] * 4, np.float32)}
    total, count = multiple_choice_loss(logits, batch, num_choices=4)
    scores = logits[:4, 0]
    expected = -(scores[1] - np.log(np.exp(scores).sum()))
    assert float(count) == 1.0 and float(total) == pytest.approx(expected, rel=1e-6)
