"""Fault injection for the tests, as phase hooks (``xstilts_jax.train.hooks``): the product and
its configs know nothing of these.

- ``NonFiniteLoss(phase, micro_step)``: that micro-batch's weights become NaN (its loss too);
- ``KillAfter(phase, update)``: SIGKILL the process after that update (and its checkpoint,
  when one is due): a preempted VM, no cleanup;
- ``SigtermAfter(phase, update)``: a preemption notice after that update, acted on at the
  next boundary.

A hook fires in the phase named ``phase`` only, and only when it trains that step: a run
resumed past it does not meet it again. ``under`` (optional) limits it to phase directories
below a path, for a process that trains other tests' phases too (a Ray worker).

In this process: ``with hooks.installed(KillAfter("target", 4)): main([...])``. In a fresh
one: ``python tests/faults.py kill:target:4 [nan:PHASE:MICRO_STEP ...] -- XSTILTS-ARGS``
(``conftest.run_xstilts(args, faults=[...])``), which installs them and runs ``xstilts``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import sys

import numpy as np

from xstilts_jax.train.hooks import Boundary, PhaseHook


@dataclasses.dataclass(eq=False)
class _Fault(PhaseHook):
    phase: str
    step: int
    under: str | None = None

    def _here(self, phase: str, phase_dir: pathlib.Path | None = None) -> bool:
        if phase != self.phase:
            return False
        return self.under is None or phase_dir is None or str(phase_dir).startswith(self.under)


class NonFiniteLoss(_Fault):
    """``step``: a micro-step."""

    def on_batch(self, phase, micro_step, batch):
        if micro_step == self.step and self._here(phase):
            return dict(batch, weight=np.full_like(batch["weight"], np.nan))
        return batch


class KillAfter(_Fault):
    """With several processes, all of them are killed after the same update, as a preempted
    pod's hosts are: each waits for the others there first (otherwise a host still in its
    checkpoint's last barrier sees its peers die, and fails instead of being killed)."""

    def on_update(self, boundary: Boundary) -> None:
        if boundary.update == self.step and self._here(boundary.phase, boundary.phase_dir):
            import jax

            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices(f"kill {boundary.phase} {self.step}")
            os.kill(os.getpid(), signal.SIGKILL)


class SigtermAfter(_Fault):
    def on_update(self, boundary: Boundary) -> None:
        if boundary.update == self.step and self._here(boundary.phase, boundary.phase_dir):
            os.kill(os.getpid(), signal.SIGTERM)


KINDS = {"nan": NonFiniteLoss, "kill": KillAfter, "sigterm": SigtermAfter}


def parse(spec: str) -> _Fault:
    """``KIND:PHASE:STEP`` (KIND one of nan, kill, sigterm) as a hook."""
    kind, phase, step = spec.split(":")
    return KINDS[kind](phase, int(step))


def main(argv: list[str]) -> int:
    from xstilts_jax.cli import main as xstilts
    from xstilts_jax.train import hooks

    split = argv.index("--")
    hooks.install(*map(parse, argv[:split]))
    return xstilts(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
