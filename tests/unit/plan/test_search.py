"""``search_plans`` (``xstilts plan --search``) against a case computed by hand on cpu:8.

The tiny preset cannot make that case: its activations and temporaries (~2 MB per chip for a
single row, on XLA:CPU) outweigh its whole training state (16 B x 143,811 parameters = 2.3 MB),
so more chips barely change what a chip needs. The model here keeps the tiny preset's layout
(vocabulary 1000, 130 positions, 2 layers, 4 heads, XNLI's head) but is wide enough (hidden
512, FFN 2048: 7.1 M parameters) that the state decides: fp32 parameters + gradients + two
Adam moments are 16 bytes a parameter, so n chips hold at least 16 P / n each, however the
state is sharded. With a budget of 7.8 P bytes a chip, one and two chips are ruled out by that
arithmetic alone (16 P and 8 P), and so is any mesh on four chips that replicates over data
(data = 2 leaves at most 2-way sharding: 8 P); four chips with the state sharded 4-way
(fsdp x tensor = 4) need ~4 P of state plus the gathered weights and activations (XLA:CPU's
compiled totals: 7.5 P to 13 P depending on the mesh and the micro-batch; 4 or 8 layers give
the same), so some such variant fits. Compiles on cpu:N take several seconds each here,
hence ``slow``.
"""

from __future__ import annotations

import json

import pytest

from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.models.pretrained import model_shape
from xstilts_jax.plan.planner import Variant, build_phase, shard_bytes
from xstilts_jax.plan.search import (mesh_shapes, render_frontier, rows_per_example,
                                     search_plans)
from xstilts_jax.plan.topology import TopologyError, parse_topology
from xstilts_jax.train.steps import split_trainable

# The tiny preset's layout, widened (see the module's docstring).
V, POS, TYPES, H, F, L, HEADS, LABELS = 1000, 130, 1, 512, 2048, 2, 4, 3


def hand_parameters() -> tuple[int, int]:
    """(encoder, encoder + XNLI head) parameters, counted from the shapes."""
    embeddings = (V + POS + TYPES) * H + 2 * H  # word, position, type tables + LayerNorm
    attention = 4 * (H * H + H)  # query, key, value, output: kernel + bias
    ffn = (H * F + F) + (F * H + H)
    block = attention + ffn + 2 * (2 * H)  # two LayerNorms
    encoder = embeddings + L * block
    head = (H * H + H) + (H * LABELS + LABELS)  # RoBERTa's dense -> tanh -> out
    return encoder, encoder + head


P = hand_parameters()[1]
BUDGET = int(7.8 * P)  # bytes per chip: below 16 P / 2, above what 4-way sharding needs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wide_tiny")
    (directory / "config.json").write_text(json.dumps(dict(
        model_type="xlm-roberta", vocab_size=V, hidden_size=H, num_hidden_layers=L,
        num_attention_heads=HEADS, intermediate_size=F, max_position_embeddings=POS,
        type_vocab_size=TYPES, layer_norm_eps=1e-5, pad_token_id=1)))
    return directory


def make_config(model_name):
    config = cell_config("none", "xnli", tiny=True)  # target: batch 8, 20 updates
    config.model.name = str(model_name)
    return config


def test_the_hand_count_is_the_models():
    encoder, total = hand_parameters()
    assert encoder == 579_072 + 1_024 + 2 * 3_152_384
    assert total == 7_149_059
    tiny = model_shape("tiny")  # the preset the shape comes from: same formula
    assert tiny.num_params() == (1000 + 130 + 1) * 64 + 2 * 64 + 2 * (
        4 * (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64) + 4 * 64)


def test_meshes_and_rows_per_example():
    assert mesh_shapes(4, 4) == [
        {"data": 4, "fsdp": 1, "tensor": 1}, {"data": 2, "fsdp": 2, "tensor": 1},
        {"data": 1, "fsdp": 4, "tensor": 1}, {"data": 2, "fsdp": 1, "tensor": 2},
        {"data": 1, "fsdp": 2, "tensor": 2}, {"data": 1, "fsdp": 1, "tensor": 4}]
    assert all(m["tensor"] in (1, 3) for m in mesh_shapes(4, 3))  # tensor divides the heads
    assert rows_per_example(make_config("tiny"), "target") == (1,)


def test_bad_arguments_are_refused_by_name():
    config = make_config("tiny")
    topology = parse_topology("cpu:2", cpu_memory_bytes=BUDGET)
    with pytest.raises(ConfigError, match="phase 'train'"):
        search_plans(config, "train", topology)
    with pytest.raises(ConfigError, match="intermediate.task is empty"):
        search_plans(config, "intermediate", topology)
    with pytest.raises(ConfigError, match="lora_ranks"):
        search_plans(config, "target", topology, lora_ranks=())
    with pytest.raises(ConfigError, match="remats"):
        search_plans(config, "target", topology, remats=("some",))
    with pytest.raises(ConfigError, match="max_compiles"):
        search_plans(config, "target", topology, max_compiles=0)
    with pytest.raises(ConfigError, match="mfu"):
        search_plans(config, "target", topology, mfu=0)
    with pytest.raises(TopologyError, match="parse_topology"):
        search_plans(config, "target", "cpu:2")


def test_the_static_bound_is_the_hand_count(model_dir):
    """On one chip nothing is sharded: params 4 P, Adam's two moments 8 P (+ its step
    counts), gradients 4 P. Accumulating keeps nothing more between updates (the optimizer
    state has no accumulator: the update's sum lives inside its step), so the bound is the
    same; and it is what ``PhaseBuild.static_bytes`` (the search's) says."""
    config = make_config(model_dir)

    devices = parse_topology("cpu:1").devices()
    for accumulation in (1, 2):
        variant = Variant({"data": 1, "fsdp": 1, "tensor": 1}, "none", 8 // accumulation,
                          accumulation, 0)
        build = build_phase(config, "target", devices, variant=variant)
        state = build.program.abstract_state
        grads, _ = split_trainable(state.params, None)
        static = shard_bytes(state.params) + shard_bytes(state.opt_state) + shard_bytes(grads)
        assert 16 * P <= static <= 16 * P + 64  # + a few step counters
        assert build.static_bytes() == static


@pytest.fixture(scope="module")
def searched(model_dir):
    config = make_config(model_dir)
    topology = parse_topology("cpu:8", cpu_memory_bytes=BUDGET)
    messages = []
    result = search_plans(config, "target", topology, remats=("none",), lora_ranks=(0,),
                          max_compiles=3, progress=messages.append)
    return result, messages


@pytest.mark.slow
def test_the_search_finds_the_hand_computed_slice(searched):
    result, messages = searched
    assert 16 * P // 2 > BUDGET  # two chips cannot hold the state, however it is sharded
    assert result.smallest_slice == "cpu:4" and result.smallest_slices == {0: "cpu:4"}
    assert result.slices == ("cpu:1", "cpu:2", "cpu:4")  # stopped there: cpu:8 never walked
    by_slice = {}
    for t in result.tried:
        by_slice.setdefault(t.slice, []).append(t)
    # One and two chips: every variant rejected by the static bound, without compiling.
    for name, chips in (("cpu:1", 1), ("cpu:2", 2)):
        assert by_slice[name]
        for t in by_slice[name]:
            assert t.reason.startswith("static: > HBM") and t.total_bytes is None
            assert t.static_bytes >= 16 * P // chips > BUDGET
    # Four chips: meshes that replicate over data are static rejections too (2-way at most).
    four = by_slice["cpu:4"]
    for t in four:
        if t.variant.mesh["data"] > 1:
            assert t.reason.startswith("static: > HBM") and t.static_bytes >= 8 * P
    compiled = [t for t in four if t.total_bytes is not None]
    assert 1 <= len(compiled) <= 3 and result.compiles == len(compiled)
    best = result.best[0]
    assert best is not None and best.fits and best.topology == "cpu:4"
    assert best.mesh["data"] == 1 and best.mesh["fsdp"] * best.mesh["tensor"] == 4
    assert best.per_chip_bytes["total"] <= BUDGET == best.per_chip_bytes["hbm"]
    assert best.micro_batch_rows * best.grad_accumulation == 8  # the update's batch kept
    # The best is the fastest per update of the fitting ones compiled.
    fitting = [t for t in compiled if t.fits]
    assert best.step_seconds["estimate"] * best.grad_accumulation == min(
        t.update_seconds for t in fitting)
    assert any("cpu:4: compiling" in m for m in messages)


@pytest.mark.slow
def test_a_micro_batch_that_cannot_shard_is_skipped(searched):
    result, _ = searched
    skipped = {(t.slice, tuple(t.variant.mesh.values()), t.variant.micro_batch): t
               for t in result.skipped}
    # 1 or 2 rows over data x fsdp = 4 devices (cpu:4, mesh 1x4x1), 1 row over 2 (cpu:2)
    for key in (("cpu:4", (1, 4, 1), 1), ("cpu:4", (1, 4, 1), 2), ("cpu:2", (1, 2, 1), 1)):
        assert "does not divide over data x fsdp" in skipped[key].reason
    assert ("cpu:4", (1, 1, 4), 1) not in skipped  # tensor does not split the batch
    tried = {(t.slice, tuple(t.variant.mesh.values()), t.variant.micro_batch)
             for t in result.tried}
    assert not tried & set(skipped)


@pytest.mark.slow
def test_the_frontier_names_the_smallest_slice(searched):
    result, _ = searched
    text = render_frontier(result)
    lines = text.splitlines()
    assert "mesh dxfxt" in lines[1] and "chip-h" in lines[1]
    assert len([line for line in lines if line.startswith("cpu:")]) == len(result.tried)
    best = result.best[0]
    mesh = "x".join(str(best.mesh[a]) for a in ("data", "fsdp", "tensor"))
    assert f"full fine-tuning: smallest slice that fits: cpu:4; fastest there: mesh {mesh}" \
        in lines[-1]
