"""A sweep's cost on a slice (``plan/pricing.py``): each distinct phase counted once (a row's
shared intermediate phase paid once), one compile per program shape (phases differing only in
seeds, learning rate or length share it), updates and chip-hours from each phase's own
config, prices by the topology's generation, and phases that do not fit listed, not summed.
Compiles the tiny preset on cpu:2 (a few seconds per program)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO
from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec, expand, load_sweep
from xstilts_jax.models.pretrained import model_shape
from xstilts_jax.plan.pricing import (chip_hour_price, distinct_phases, phase_updates,
                                      price_sweep, program_key, render_sweep_cost)
from xstilts_jax.plan.topology import parse_topology

SWEEPS = REPO / "configs" / "sweep.py"

TINY = {"target.num_steps": 20, "intermediate.num_steps": 30, "target.num_epochs": None,
        "intermediate.num_epochs": None, "target.batch_size": 8, "intermediate.batch_size": 8,
        "target.max_length": 32, "target.buckets": (32,), "intermediate.max_length": 32,
        "intermediate.buckets": (32,), "mesh.shape": {"data": -1, "fsdp": 1, "tensor": 1}}


def tiny_sweep(models=None, **changes) -> SweepSpec:
    fields = dict(name="tiny", models=models or [ModelSpec("a", "tiny")],
                  intermediates=["none", "mnli"], targets=["xnli", "pawsx"],
                  intermediate_seeds=[0], target_seeds=[0, 1], overrides=dict(TINY))
    fields.update(changes)
    return SweepSpec(**fields)


# Model b: the same programs as a (the learning rate and the number of updates do not change
# them), but its own phases (other keys) and twice a's intermediate updates. (The sweep's
# overrides win over a model's: the intermediate's num_steps is left to the models.)
TWO_MODELS = [ModelSpec("a", "tiny", overrides={"intermediate.num_steps": 30}),
              ModelSpec("b", "tiny", overrides={"intermediate.num_steps": 60,
                                                "target.learning_rate": 3e-5})]
TWO_MODEL_OVERRIDES = {k: v for k, v in TINY.items() if k != "intermediate.num_steps"}


@pytest.fixture(scope="module")
def two_model_cost():  # 3 compiles: ~10 to 20 s each on 2 cores
    lines = []
    cost = price_sweep(tiny_sweep(TWO_MODELS, overrides=TWO_MODEL_OVERRIDES),
                       parse_topology("cpu:2"), prices={"cpu": 2.0}, progress=lines.append)
    return cost, lines


@pytest.mark.slow
def test_each_distinct_phase_counted_once_and_programs_compiled_once(two_model_cost):
    cost, lines = two_model_cost
    # per model: 4 direct cells + 4 X-STILTs cells; 1 shared mnli phase + 8 target phases
    assert cost.cells == 2 * 8
    assert cost.phases == 2 * 9
    intermediates = [r for r in cost.rows if r.phase == "intermediate"]
    assert len(intermediates) == 2 and all(len(r.cells) == 4 for r in intermediates)
    assert all(len(r.cells) == 1 for r in cost.rows if r.phase == "target")
    targets = [r for r in cost.rows if r.phase == "target"]
    assert sorted(r.after for r in targets).count("mnli") == 8  # 2 models x 2 targets x 2 seeds
    assert sum(r.after == "none" for r in targets) == 8
    # programs: mnli, xnli, pawsx (direct and X-STILTs targets, seeds and both models share)
    assert cost.compiles == 3 < cost.phases
    assert len(lines) == 3 and all("compiling" in line for line in lines)
    assert len({r.program for r in cost.rows}) == 3
    assert all(r.fits and r.error is None and r.counted for r in cost.rows)
    assert cost.complete and not cost.unfit and not cost.errors


@pytest.mark.slow
def test_updates_and_chip_hours_come_from_each_phase(two_model_cost):
    cost, _ = two_model_cost
    by = {(r.model, r.phase, r.task, r.seed, tuple(r.cells)): r for r in cost.rows}
    assert {r.updates for r in cost.rows if r.phase == "target"} == {20}
    inter = {r.model: r for r in cost.rows if r.phase == "intermediate"}
    assert (inter["a"].updates, inter["b"].updates) == (30, 60)
    # same program, same step time; b's chip-hours from its own updates (a reused plan)
    assert inter["a"].program == inter["b"].program
    assert inter["a"].step_seconds == inter["b"].step_seconds > 0
    assert inter["b"].chip_hours == pytest.approx(2 * inter["a"].chip_hours)
    for r in by.values():
        assert r.chip_hours == pytest.approx(
            r.updates * r.grad_accumulation * r.step_seconds * r.chips / 3600)
    # the compiled phase's own plan agrees with the row re-derived from it
    for r in cost.rows:
        plan = cost.plans[r.program]
        if plan.updates == r.updates:
            assert r.chip_hours == pytest.approx(plan.chip_hours)
    # totals: the sum over distinct phases (the shared intermediate once, not per cell)
    assert cost.chip_hours == pytest.approx(sum(r.chip_hours for r in cost.rows))
    per_cell = sum(r.chip_hours * len(r.cells) for r in cost.rows)
    assert per_cell > cost.chip_hours  # what counting the intermediate per cell would give
    models = cost.by_model()
    assert set(models) == {"a", "b"}
    assert all(m["phases"] == 9 and m["cells"] == 8 for m in models.values())
    assert models["a"]["chip_hours"] + models["b"]["chip_hours"] == pytest.approx(
        cost.chip_hours)


@pytest.mark.slow
def test_prices_apply_by_generation(two_model_cost):
    cost, _ = two_model_cost
    assert all(r.price_per_chip_hour == 2.0 for r in cost.rows)
    assert cost.usd == pytest.approx(2.0 * cost.chip_hours)
    for r in cost.rows:
        assert r.usd == pytest.approx(2.0 * r.chip_hours)
    models = cost.by_model()
    assert models["a"]["usd"] == pytest.approx(2.0 * models["a"]["chip_hours"])
    data = json.loads(json.dumps(cost.to_json()))
    assert data["totals"]["phases"] == 18 and data["totals"]["compiles"] == 3
    assert data["totals"]["usd"] == pytest.approx(cost.usd)
    assert len(data["phases"]) == 18
    text = render_sweep_cost(cost)
    assert "18 distinct phases" in text and "3 programs compiled" in text
    assert "!!" not in text and "$2.00/chip-hour" in text


def test_the_price_table_is_looked_up_by_generation():
    config = expand(tiny_sweep())[0].config
    table = dict(config.plan.prices)
    assert chip_hour_price(table, parse_topology("v5e:4x4")) == table["v5e"] == 1.20
    assert chip_hour_price(table, parse_topology("v5p:2x2x4")) == table["v5p"]
    assert chip_hour_price(table, parse_topology("cpu:2")) is None
    assert chip_hour_price({"cpu": 0.5}, parse_topology("cpu:4")) == 0.5
    assert chip_hour_price(None, parse_topology("v4:2x2x1")) is None


@pytest.mark.slow
def test_cpu_without_a_price_sums_chip_hours_and_unfit_phases_are_listed_not_summed():
    # cpu:2 with 1 MB per device: the tiny model's step (~5 MB per chip) does not fit.
    spec = tiny_sweep(intermediates=["none"], targets=["xnli"], target_seeds=[0, 1])
    small = price_sweep(spec, parse_topology("cpu:2", cpu_memory_bytes=1_000_000))
    assert (small.phases, small.compiles) == (2, 1)
    assert len(small.unfit) == 2 and not small.complete
    assert small.chip_hours == 0 and small.usd is None  # cpu: no price
    assert all(r.per_chip_bytes["total"] > 1_000_000 and r.over_by_bytes > 0
               for r in small.unfit)
    text = render_sweep_cost(small)
    assert "2 of 2 phases DO NOT FIT" in text and "NOT in the totals" in text
    # the default table has no cpu price: chip-hours summed, USD none
    roomy = price_sweep(spec, parse_topology("cpu:2"))
    assert roomy.complete and roomy.chip_hours > 0
    assert roomy.usd is None and all(r.usd is None for r in roomy.rows)
    assert "no price for cpu" in render_sweep_cost(roomy)


def test_a_phase_that_cannot_be_planned_is_listed():
    # a micro-batch of 3 rows does not divide over 2 devices: a ConfigError for that program
    spec = tiny_sweep(intermediates=["none"], targets=["xnli"], target_seeds=[0],
                      overrides={**TINY, "target.batch_size": 3})
    cost = price_sweep(spec, parse_topology("cpu:2"))
    assert cost.phases == 1 and len(cost.errors) == 1
    assert "does not divide" in cost.errors[0].error
    assert cost.chip_hours == 0 and not cost.complete
    assert "could not be priced" in render_sweep_cost(cost)


def test_program_keys_separate_what_changes_the_program():
    cells = expand(tiny_sweep(TWO_MODELS, overrides=TWO_MODEL_OVERRIDES))
    phases = distinct_phases(cells)
    keys = {(p.cell.model.name, p.phase, p.cell.intermediate, p.cell.target):
            program_key(p.cell.config, p.phase, mfu=0.4) for p in phases}
    # targets after an intermediate compile as direct ones; tasks of one family differ
    assert keys[("a", "target", "none", "xnli")] == keys[("a", "target", "mnli", "xnli")]
    assert keys[("a", "target", "none", "xnli")] != keys[("a", "target", "none", "pawsx")]
    assert keys[("a", "target", "none", "xnli")] == keys[("b", "target", "none", "xnli")]
    config = cells[0].config
    base = program_key(config, "target", mfu=0.4)
    assert program_key(config, "target", mfu=0.5) != base
    for field, value in (("batch_size", 16), ("max_length", 64), ("grad_accumulation", 2)):
        changed = config.copy_and_resolve_references()
        changed.target[field] = value
        assert program_key(changed, "target", mfu=0.4) != base, field
    changed = config.copy_and_resolve_references()
    changed.model.remat = "full"
    assert program_key(changed, "target", mfu=0.4) != base


def test_updates_from_epochs_and_published_sizes():
    config = expand(tiny_sweep(overrides={**TINY, "target.num_steps": None,
                                          "target.num_epochs": 2.0}))[0].config
    # xnli trains on MNLI's 392,702 English examples: 2 epochs of 49,088 batches of 8
    assert phase_updates(config, "target") == 2 * 49088


@pytest.mark.parametrize("sweep", ["paper", "scale"])
def test_the_declared_sweeps_resolve_to_phases_and_programs(sweep):
    """Without compiling: every model path has a shape (hub ids map to presets), every phase
    has its updates, and programs are far fewer than phases."""
    spec = load_sweep(f"{SWEEPS}:{sweep}")
    for model in spec.models:
        assert model_shape(model.path).num_layers > 0
    cells = expand(spec)
    phases = distinct_phases(cells)
    programs = {program_key(p.cell.config, p.phase, mfu=0.4) for p in phases}
    updates = [phase_updates(p.cell.config, p.phase) for p in phases]
    assert all(u > 0 for u in updates)
    n_models = len(spec.models)
    intermediates = len(spec.intermediates) - 1  # "none" has no intermediate phase
    assert len(phases) == n_models * intermediates + len(cells)
    assert len(programs) == n_models * (intermediates + len(spec.targets))


@pytest.mark.slow
def test_a_tpu_slice_is_priced_from_the_default_table():
    """Compiled for v5e:2x2 through libtpu (abstract devices, no chips): the cells' default
    price of a v5e chip-hour applies."""
    if importlib.util.find_spec("libtpu") is None:
        pytest.skip("needs libtpu (the tpu extra)")
    spec = tiny_sweep(intermediates=["none"], targets=["xnli"], target_seeds=[0])
    cost = price_sweep(spec, parse_topology("v5e:2x2"))
    (row,) = cost.rows
    assert (cost.compiles, row.fits, row.chips, row.price_per_chip_hour) == (1, True, 4, 1.20)
    assert row.chip_hours > 0 and cost.usd == pytest.approx(1.20 * row.chip_hours)
    assert "$1.20/chip-hour" in render_sweep_cost(cost)
