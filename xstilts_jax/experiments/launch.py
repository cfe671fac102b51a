"""Running a sweep on a backend: in this process (``sweep.run_sweep_locally``) or on a Ray
cluster (``ray_backend.run_sweep_on_ray``); both start from the plan written to
``sweep.json`` and leave the same run directory."""

from __future__ import annotations

import os

from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.sweep import SweepSpec, SweepSummary, run_sweep_locally, start_sweep

BACKENDS = ("local", "ray")


def run_sweep(spec: SweepSpec, run_dir: str | os.PathLike, *, retry_degenerate: int = 0,
              progress: bool = True, backend: str = "local") -> SweepSummary:
    """Run (or resume) every cell of ``spec`` in ``run_dir`` on ``backend``."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    plan = start_sweep(spec, run_dir)
    if backend == "ray":
        from xstilts_jax.experiments.ray_backend import run_sweep_on_ray
        return run_sweep_on_ray(spec, run_dir, plan, retry_degenerate=retry_degenerate)
    return run_sweep_locally(spec, run_dir, plan, retry_degenerate=retry_degenerate,
                             progress=progress)


__all__ = ["BACKENDS", "run_sweep"]
