"""`xstilts plan` on cpu:N: the planned program is the trained one (same shardings as `xstilts
run`), its memory parts match hand counts, its FLOPs match the closed form, and bad topologies,
meshes and presets get clear errors. TPU slices (libtpu) are in test_tpu_plans.py."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, write_nli_data
from xstilts_jax.cli import main
from xstilts_jax.config import ConfigError, load_config_file
from xstilts_jax.models.presets import get_preset
from xstilts_jax.plan import topology as topology_module
from xstilts_jax.plan.planner import plan_phase
from xstilts_jax.plan.topology import GIB, TopologyError, parse_topology

XTREME = str(REPO / "configs" / "xtreme.py")


def tiny_cell(**mesh):
    config = load_config_file(f"{XTREME}:none,xnli,tiny")
    config.model.name = "tiny"
    config.mesh.shape = dict(data=mesh.get("data", -1), fsdp=mesh.get("fsdp", 1),
                             tensor=mesh.get("tensor", 1))
    return config


def test_tiny_plan_counts_every_part_by_hand():
    """data=8 (everything replicated): parameters, optimizer state and gradients per chip are
    the model's own bytes; FLOPs match 6 x (matmul parameters) x tokens + attention."""
    plan = plan_phase(tiny_cell(data=8), "target", parse_topology("cpu:8", cpu_memory_bytes=GIB))
    shape = get_preset("tiny")
    heads_params = shape.hidden_size * shape.hidden_size + shape.hidden_size + 3 * shape.hidden_size + 3
    assert plan.parameters == shape.num_params() + heads_params  # backbone + RoBERTa head, 3 labels
    b = plan.per_chip_bytes
    assert b["parameters"] == 4 * plan.parameters
    assert b["gradients"] == 4 * plan.parameters
    # AdamW: two float32 moments per parameter, plus a few scalars (step counts).
    assert 8 * plan.parameters <= b["optimizer_state"] <= 8 * plan.parameters + 64
    assert b["batch"] == (8 // 8) * 64 * 4 * 3 + 4 + 4  # one row: ids, mask, segments; weight, label
    assert b["total"] >= b["parameters"] + b["optimizer_state"] + b["batch"]
    assert plan.fits and plan.eval_fits and b["hbm"] == GIB
    # Closed form, per chip (1 row of 64 tokens): the blocks' matrix products 6 N T, attention
    # 12 L S H T (QK^T and PV, forward and backward).
    tokens, h, layers = 64, shape.hidden_size, shape.num_layers
    block_matmul = layers * (4 * h * h + 2 * h * shape.intermediate_size)
    closed = 6 * block_matmul * tokens + 12 * layers * 64 * h * tokens
    assert 0.9 * closed <= plan.flops_per_step <= 1.6 * closed
    # Data parallelism only: every gradient all-reduced over 8 devices, 2 x 7/8 of its bytes.
    assert plan.collective_bytes_per_step == pytest.approx(2 * 7 / 8 * 4 * plan.parameters)
    assert plan.updates == 20 and plan.step_seconds["estimate"] > 0
    assert plan.chip_hours == pytest.approx(
        20 * plan.step_seconds["estimate"] * 8 / 3600)


def test_an_accumulated_update_is_planned_whole():
    """grad_accumulation 2 (8 rows a micro-batch, as with 1): the optimizer state keeps no
    accumulator; the compiled update takes both micro-batches; FLOPs stay one micro-step's
    and chip-hours count every micro-step (num_steps counts updates: twice the micro-steps)."""
    one = plan_phase(tiny_cell(data=8), "target", parse_topology("cpu:8"))
    config = tiny_cell(data=8)
    config.target.grad_accumulation = 2
    two = plan_phase(config, "target", parse_topology("cpu:8"))
    assert two.grad_accumulation == 2 and two.micro_batch_rows == one.micro_batch_rows
    for part in ("parameters", "optimizer_state", "gradients"):
        assert two.per_chip_bytes[part] == one.per_chip_bytes[part]
    assert two.per_chip_bytes["batch"] == 2 * one.per_chip_bytes["batch"]
    assert two.flops_per_step == pytest.approx(one.flops_per_step, rel=1e-3)
    assert two.updates == one.updates == 20
    assert two.chip_hours == pytest.approx(20 * 2 * two.step_seconds["estimate"] * 8 / 3600)
    # A micro-step's memory traffic: the update's loop body once, its optimizer once.
    assert two.step_seconds["estimate"] == pytest.approx(one.step_seconds["estimate"], rel=0.1)


def test_fsdp_divides_the_state_over_the_chips():
    whole = plan_phase(tiny_cell(data=8), "target", parse_topology("cpu:8"))
    split = plan_phase(tiny_cell(data=2, fsdp=4), "target", parse_topology("cpu:8"))
    for part in ("parameters", "gradients", "optimizer_state"):
        # Not exactly a quarter: LayerNorms, biases and the head are replicated or divide
        # unevenly and stay whole.
        assert whole.per_chip_bytes[part] / 4 <= split.per_chip_bytes[part] < 0.4 * whole.per_chip_bytes[part]
    assert split.shardings["params"]["['encoder']['embeddings']['word']"] == "P(None, 'fsdp')"


@pytest.mark.slow
def test_the_planned_shardings_are_the_ones_training_uses(tmp_path, tiny_checkpoints, capsys):
    """The same config, planned for cpu:8 and run on 8 fake devices (data 2 x fsdp 2 x
    tensor 2): the run's shardings.json equals the plan's, leaf for leaf."""
    data = write_nli_data(tmp_path / "nli", train=40, dev=8, test=8)
    checkpoint = tiny_checkpoints("xlmr")
    common = [f"--config.model.name={checkpoint}", "--config.mesh.shape.data=2",
              "--config.mesh.shape.fsdp=2", "--config.mesh.shape.tensor=2",
              "--config.target.num_steps=2", "--config.target.buckets=(64,)"]
    code = main(["run", "--config", f"{XTREME}:none,xnli,tiny", "--workdir", str(tmp_path / "run"),
                 f"--config.data.dir={data}", "--config.eval.languages=('en',)", "-q", *common])
    assert code == 0
    capsys.readouterr()
    code = main(["plan", "--config", f"{XTREME}:none,xnli,tiny", "--topology", "cpu:8",
                 "--json", "--shardings", "-q", *common])
    assert code == 0
    planned = json.loads(capsys.readouterr().out)["target"]["shardings"]
    trained = json.loads((tmp_path / "run" / "target" / "shardings.json").read_text())
    assert planned["mesh"] == trained["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert planned["params"] == trained["params"]
    assert planned["opt_state"] == trained["opt_state"]
    assert any("'tensor'" in spec for spec in trained["params"].values())
    assert any("'fsdp'" in spec for spec in trained["params"].values())
    assert set(planned["batch"].values()) == {"P(('data', 'fsdp'),)",
                                              "P(('data', 'fsdp'), None)"}


@pytest.mark.parametrize("name, message", [
    ("v5e", "expected GENERATION:SHAPE"),
    ("v5e-16", "expected GENERATION:SHAPE"),
    ("v9:2x2", "unknown generation 'v9'"),
    ("v5e:3x3", "v5e slices are 1x1, 2x2"),
    ("v5p:4x4", "v5p slices are 2x2x1"),
    ("cpu:0", "positive device count"),
])
def test_malformed_topologies_are_refused_clearly(name, message):
    with pytest.raises(TopologyError, match=message):
        parse_topology(name)


def test_cpu_topology_larger_than_the_process_says_how_to_get_devices():
    with pytest.raises(TopologyError, match="jax_num_cpu_devices"):
        parse_topology("cpu:64").devices()


def test_tpu_without_libtpu_names_the_extra(monkeypatch):
    monkeypatch.setattr(topology_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TopologyError, match=r"xstilts_jax\[tpu\]"):
        parse_topology("v5e:2x2").devices()


def test_a_mesh_that_does_not_divide_the_slice_is_refused():
    with pytest.raises(ConfigError, match="cpu:8.*needs 12 devices, found 8"):
        plan_phase(tiny_cell(data=3, fsdp=4), "target", parse_topology("cpu:8"))
    with pytest.raises(ConfigError, match="cpu:8.*not divisible by 3"):
        plan_phase(tiny_cell(data=-1, fsdp=3), "target", parse_topology("cpu:8"))


def test_a_batch_that_cannot_shard_is_refused():
    config = tiny_cell(data=8)
    config.target.batch_size = 4
    with pytest.raises(ConfigError, match="micro-batch of 4 rows does not divide over the 8"):
        plan_phase(config, "target", parse_topology("cpu:8"))


def test_cli_errors(capsys):
    assert main(["plan", "--config", f"{XTREME}:none,xnli,tiny", "--topology", "cpu:8",
                 "--config.model.name=xlmr-huge"]) == 2
    err = capsys.readouterr().err
    assert "model.name 'xlmr-huge'" in err
    assert main(["plan", "--config", f"{XTREME}:none,xnli,tiny", "--topology", "v5e:5x5"]) == 2
    assert "v5e slices are" in capsys.readouterr().err
    assert main(["plan", "--topology", "cpu:8"]) == 2
    assert "one of --config" in capsys.readouterr().err


def test_cli_prints_a_plan_and_exits_3_when_it_does_not_fit(capsys):
    args = ["plan", "--config", f"{XTREME}:none,xnli,tiny", "--topology", "cpu:8",
            "--config.model.name=tiny", "--config.mesh.shape.data=8", "-q"]
    assert main(args + ["--chip-memory-gib", "1"]) == 0
    out = capsys.readouterr().out
    assert "target phase (xnli) of tiny on cpu:8" in out and "fits" in out
    assert main(args + ["--chip-memory-gib", "0.0001", "--json"]) == 3
    plan = json.loads(capsys.readouterr().out)["target"]
    assert not plan["fits"] and plan["over_by_bytes"] == plan["per_chip_bytes"]["total"] - plan["per_chip_bytes"]["hbm"]


def test_presets_are_model_names_everywhere(monkeypatch):
    """A preset plans from its shape; training resolves it to its published checkpoint (the
    hub lookup fails offline, naming the checkpoint); a published id plans as its preset."""
    from xstilts_jax.models.pretrained import CheckpointError, model_shape, resolve_model_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="bigscience/bloom: not a local directory"):
        resolve_model_dir("bloom-176b")
    assert model_shape("bigscience/bloom") == get_preset("bloom-176b")
    assert model_shape("xlmr-xxl", dtype="bfloat16").dtype == "bfloat16"
