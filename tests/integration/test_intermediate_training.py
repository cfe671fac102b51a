"""Every English intermediate task, from its release files through the training loss: read,
featurize (the real data path of ``run_cell``), and a tiny model whose loss falls on it."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import build_tiny_tokenizer
from release_fixtures import write_all
from xstilts_jax.data.batching import bucket_lengths
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax.tasks import get_task, read
from xstilts_jax.tasks.families import FAMILIES
from xstilts_jax import sharding
from xstilts_jax.train.loop import PhaseConfig
from xstilts_jax.train.optimizer import make_optimizer
from xstilts_jax.train.steps import Steps

TASKS = ("mnli", "qqp", "sst2", "snli", "anli_plus", "hellaswag", "cosmosqa", "commonsenseqa",
         "squad", "squad_v2", "ccg")


@pytest.fixture(scope="module")
def release_data(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("releases"))


@pytest.mark.parametrize("name", TASKS)
def test_task_reads_featurizes_and_trains(name, release_data):
    task = get_task(name)
    family = FAMILIES[task.family]
    tokenizer = build_tiny_tokenizer()
    qa = task.family == "qa"
    cfg = PhaseConfig(name="intermediate", max_length=96 if qa else 64,
                      buckets=(96,) if qa else (64,), doc_stride=32)
    train = read(task, release_data, "train")
    dev = read(task, release_data, "dev")
    if family.labels_from_data:  # CCG: the label set comes from the training data
        import dataclasses

        task = dataclasses.replace(task, labels=family.labels_from(train.examples))
        assert task.labels[-1] == "<unk>" and "N" in task.labels
    assert len(train.examples) > 0 and len(dev.examples) > 0
    features = family.featurize(tokenizer, train.examples, task, cfg)
    inputs = family.inputs(features)
    assert inputs.num_examples >= len(train.examples)  # QA: one row per window, at least one a question

    config = get_preset("tiny", hidden_dropout=0.0, attention_dropout=0.0)
    rngs = nnx.Rngs(0)
    head = family.head(config, family.num_outputs(task), rngs=rngs)
    graphdef, params_state = nnx.split(TaskModel(Encoder(config, rngs=rngs), head))
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    batches = [b.arrays() for b in inputs.batches(
        batch_size=8, pad_id=tokenizer.pad_token_id, buckets=bucket_lengths(cfg.max_length,
                                                                            cfg.buckets),
        order=np.arange(inputs.num_examples))][:3]
    steps = Steps(graphdef, make_optimizer(learning_rate=2e-3, total_steps=100, warmup_ratio=0.0),
                  mesh, loss_fn=family.loss(task))
    shardings = steps.shardings(params_state)
    state = steps.create_state(nnx.to_pure_dict(params_state), shardings)
    train_step = steps.jit_train_step(shardings, steps.batch_shardings(batches[0]))
    losses = []
    for _ in range(8):
        for batch in batches:
            state, metrics = train_step(state, sharding.feed(batch, mesh))
            losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all()
    first, last = np.mean(losses[:len(batches)]), np.mean(losses[-len(batches):])
    assert last < 0.7 * first, (name, losses)
