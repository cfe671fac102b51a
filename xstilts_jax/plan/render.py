"""Plans as text: what ``xstilts plan`` prints for one phase."""

from __future__ import annotations

from xstilts_jax.plan.planner import PhasePlan


def gib(n: float | None) -> str:
    """Bytes in the largest binary unit that keeps a digit before the point."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def count(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def format_plan(plan: PhasePlan) -> str:
    """One phase's plan: the program, per-chip memory against HBM, FLOPs, time, chip-hours."""
    b = plan.per_chip_bytes
    mesh = " x ".join(f"{a} {n}" for a, n in plan.mesh.items())
    if plan.fits:
        verdict = "fits"
    elif plan.over_by_bytes or plan.compiler_error:
        verdict = (f"DOES NOT FIT: over by {gib(plan.over_by_bytes)}"
                   + ("" if plan.compiler_error is None else " (the compiler refused it)"))
    else:
        verdict = "the train step fits, the EVAL STEP DOES NOT"
    step = plan.step_seconds
    lora_text = f", LoRA rank {plan.lora_rank}" if plan.lora_rank else ", full fine-tuning"
    lines = [
        f"{plan.phase} phase ({plan.task}) of {plan.model} on {plan.topology}: {plan.chips} x "
        f"{plan.chip}, mesh {mesh}",
        f"  program: {count(plan.parameters)} parameters ({count(plan.trainable_parameters)} "
        f"trained{lora_text}), remat {plan.remat}, micro-batch {plan.micro_batch_rows} rows x "
        f"{plan.sequence_length} tokens, gradient accumulation {plan.grad_accumulation}",
        "  per chip:",
        f"    parameters                  {gib(b['parameters']):>12}",
        f"    optimizer state             {gib(b['optimizer_state']):>12}",
        f"    gradients                   {gib(b['gradients']):>12}",
        f"    batch                       {gib(b['batch']):>12}",
        f"    activations and temporaries {gib(b['activations_and_temporaries']):>12}",
        f"    total                       {gib(b['total']):>12}  of {gib(b['hbm'])} HBM: {verdict}",
        f"  eval step: {'fits' if plan.eval_fits else 'does not fit'}",
        f"  per chip and micro-step: {count(plan.flops_per_step)}FLOP (XLA's count), "
        f">= {count(plan.bytes_accessed_per_step)}B of HBM traffic, "
        f"{count(plan.collective_bytes_per_step)}B between chips",
        f"  step time: compute roofline {seconds(step['compute'])}, memory roofline >= "
        f"{seconds(step['memory_lower_bound'])}, communication "
        f"{seconds(step['communication'])}; estimate at {step['mfu']:.0%} MFU "
        f"{seconds(step['estimate'])} ({count(plan.tokens_per_second)} tokens/s)",
        f"  phase: {plan.updates} updates x {plan.grad_accumulation} micro-steps = "
        + ("-" if plan.chip_hours is None else f"{plan.chip_hours:,.2f} chip-hours"),
    ]
    if plan.compiler_error:
        lines.append(f"  compiler: {plan.compiler_error}")
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines)


__all__ = ["format_plan", "gib", "seconds", "count"]
