"""Plans for real TPU slices (libtpu, the tpu extra): XLM-R XXL and BLOOM-176B, full
fine-tuning with AdamW and fsdp over the slice, need per chip at most 1.3x the analytic
minimum: parameters + gradients + two Adam moments (float32) over the chips, plus one
micro-batch's activations counted by hand."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO
from xstilts_jax.config import load_config_file
from xstilts_jax.models.presets import get_preset
from xstilts_jax.plan.planner import plan_phase
from xstilts_jax.plan.topology import parse_topology

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                       reason="libtpu is not installed (pip install -e '.[tpu]')"),
]


def activations_by_hand(preset: str, rows: int, length: int, tensor: int) -> int:
    """One chip's activations for a micro-batch of ``rows`` under remat "full", bf16 compute:
    every block's input is kept for the backward pass (L x rows x S x H x 2 bytes), and one
    block's forward is recomputed at a time: its normed input, q, k, v, context and output
    (6 x rows x S x H, bf16, heads split over tensor for q/k/v/context), the float32 scores
    and probabilities (2 x rows x heads/tensor x S^2 x 4) and the FFN's 4H inner activations
    before and after the GELU (2 x rows x S x 4H / tensor x 2)."""
    shape = get_preset(preset)
    h, layers, heads = shape.hidden_size, shape.num_layers, shape.num_heads
    kept = layers * rows * length * h * 2
    block = (2 * rows * length * h * 2 + 4 * rows * length * (h // tensor) * 2
             + 2 * rows * (heads // tensor) * length ** 2 * 4
             + 2 * rows * length * (4 * h // tensor) * 2)
    return kept + block


@pytest.mark.parametrize("preset, slice_name, batch, fsdp, tensor", [
    ("xlmr-xxl", "v5p:2x2x2", 32, 8, 1),
    ("bloom-176b", "v5p:4x4x4", 64, 16, 4),
])
def test_full_finetuning_memory_is_near_the_analytic_minimum(preset, slice_name, batch, fsdp,
                                                              tensor):
    config = load_config_file(f"{REPO / 'configs' / 'xtreme.py'}:none,xnli")
    config.model.update(name=preset, dtype="bfloat16", remat="full")
    config.target.update(batch_size=batch, num_steps=1000)
    config.mesh.shape = dict(data=1, fsdp=fsdp, tensor=tensor)
    topology = parse_topology(slice_name)
    plan = plan_phase(config, "target", topology)
    chips = topology.num_chips
    state = 16 * plan.parameters / chips  # float32 parameters, gradients, Adam's m and v
    minimum = state + activations_by_hand(preset, batch // fsdp, 128, tensor)
    total = plan.per_chip_bytes["total"]
    print(f"{preset} on {slice_name} (fsdp {fsdp} x tensor {tensor}): {total / 2**30:.1f} GiB "
          f"per chip, analytic minimum {minimum / 2**30:.1f} GiB: {total / minimum:.2f}x")
    assert plan.fits, plan.per_chip_bytes
    assert state <= total <= 1.3 * minimum
    # The parts the shardings fix are the hand count's, to the replicated norms and biases.
    parts = plan.per_chip_bytes
    assert parts["parameters"] + parts["gradients"] + parts["optimizer_state"] == \
        pytest.approx(state, rel=0.01)
