"""The machine's matmul peak, measured in the same run as a benchmark, so that every side's
FLOP/s can be printed as a fraction of what this machine can do right now.

The peak is a jitted ``jnp.dot`` of two square matrices (float32 on a CPU, at
``Precision.HIGHEST``; bfloat16 on an accelerator when asked), dispatched ``calls`` times
back to back and then blocked, per round; ``2 n^3`` FLOPs per call; the median over the
rounds is the peak (the max is printed too). A GEMM this size runs at the BLAS/Eigen
kernel's best, so a model reaching a large fraction of it has little left to gain.

Shared by the benchmarks in this folder:

    from peak import measure_peak, describe_peak, of_peak
    peak = measure_peak()                 # GFLOP/s rounds
    print(describe_peak(peak))
    print(of_peak(model_gflops_per_s, peak))
"""

from __future__ import annotations

import statistics
import time


def measure_peak(dtype: str = "float32", n: int | None = None, rounds: int = 5,
                 calls: int | None = None, precision: str = "highest") -> dict:
    """{'dtype', 'n', 'precision', 'rounds': [GFLOP/s ...], 'median', 'max', 'device'} of a
    jitted [n,n]@[n,n] (precision "highest": true float32 products; "default" lets an
    accelerator use its faster modes)."""
    import jax
    import jax.numpy as jnp

    device = jax.devices()[0]
    on_cpu = device.platform == "cpu"
    n = n or (2048 if on_cpu else 8192)
    calls = calls or (3 if on_cpu else 20)
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
    dot = jax.jit(lambda x, y: jnp.dot(x, y, precision=precision))
    dot(a, b).block_until_ready()  # compile + warm-up
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        results = [dot(a, b) for _ in range(calls)]
        jax.block_until_ready(results)
        out.append(2 * n ** 3 * calls / (time.perf_counter() - t0) / 1e9)
    return {"dtype": dtype, "n": n, "precision": precision, "rounds": out, "median": statistics.median(out),
            "max": max(out), "device": f"{device.platform} {device.device_kind}"}


def describe_peak(peak: dict) -> str:
    return (f"measured {peak['dtype']} matmul peak ({peak['device']}, jitted jnp.dot "
            f"[{peak['n']}]^2 x [{peak['n']}]^2, {len(peak['rounds'])} rounds): median "
            f"{peak['median']:.1f} GFLOP/s (max {peak['max']:.1f})")


def of_peak(gflops_per_s: float, peak: dict) -> str:
    """'123.4 GFLOP/s = 87 % of peak'."""
    return f"{gflops_per_s:.1f} GFLOP/s = {100 * gflops_per_s / peak['median']:.0f} % of peak"


def remeasure_peak(before: dict, when: str = "after the rounds") -> dict:
    """Measure the peak again (same settings), print it, and return the higher of the two.

    On a shared machine a peak measured while a neighbour was busy is low (seen: 104 against
    190 GFLOP/s minutes apart) and would inflate every fraction; the less disturbed of two
    measurements is the closer estimate of what the cores can do.
    """
    after = measure_peak(before["dtype"], n=before["n"], rounds=len(before["rounds"]),
                         precision=before.get("precision", "highest"))
    print(describe_peak(after) + f" ({when})")
    return max(before, after, key=lambda p: p["median"])
