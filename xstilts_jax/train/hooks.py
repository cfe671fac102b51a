"""Hooks: code run at a phase's update boundaries without living in the loop (levanter's
``Trainer.add_hook``, flax's periodic actions).

A hook subclasses :class:`PhaseHook` and overrides what it needs:

- ``on_batch(phase, micro_step, batch)``: a host micro-batch before it is placed on the mesh
  (in the producer thread, ahead of the device); returns the batch to train on;
- ``on_update(boundary)``: after an update was dispatched and, when due, evaluated and
  saved (its checkpoint is on disk when ``boundary.saved``).

``run_phase(..., hooks=[...])`` runs the hooks it is given, and every hook installed in the
process (``install``, or ``installed`` for a ``with`` block): that is how hooks reach the
phases that ``xstilts run`` or a sweep start (a launcher script, a Ray worker's setup hook).
The tests' fault injection (a non-finite loss, SIGKILL, SIGTERM at a given update) is such
hooks (``tests/faults.py``); the experiment config knows nothing of them.

A hook runs in the loop's thread (``on_batch`` in the producer's) and its time is on the
critical path: reading ``boundary.state`` or ``boundary.metrics`` waits for the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import threading
from typing import Any, Iterator, Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Boundary:
    """Where a phase is, after one of its updates."""

    phase: str  # the phase's name (PhaseConfig.name)
    update: int  # updates done (1 after the first)
    total: int  # updates the phase trains
    phase_dir: pathlib.Path
    saved: bool  # the latest checkpoint is at this update
    state: Any  # the train state on the mesh (reading it waits for the device)
    metrics: Mapping[str, Any]  # this update's loss and grad norm, on the device


class PhaseHook:
    """Does nothing; override ``on_batch`` and/or ``on_update``."""

    def on_batch(self, phase: str, micro_step: int,
                 batch: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return batch

    def on_update(self, boundary: Boundary) -> None:
        pass


_installed: list[PhaseHook] = []
_lock = threading.Lock()


def install(*hooks: PhaseHook) -> None:
    """Run ``hooks`` in every phase this process trains from now on."""
    for hook in hooks:
        if not isinstance(hook, PhaseHook):
            raise TypeError(f"a hook is a PhaseHook, got {type(hook).__name__}")
    with _lock:
        _installed.extend(hooks)


def uninstall(*hooks: PhaseHook) -> None:
    with _lock:
        for hook in hooks:
            _installed.remove(hook)


@contextlib.contextmanager
def installed(*hooks: PhaseHook) -> Iterator[None]:
    """``install`` for the block only."""
    install(*hooks)
    try:
        yield
    finally:
        uninstall(*hooks)


def active(given: Sequence[PhaseHook] = ()) -> tuple[PhaseHook, ...]:
    """The hooks a phase runs: those it was given, then those installed in the process."""
    with _lock:
        return (*given, *_installed)


__all__ = ["Boundary", "PhaseHook", "active", "install", "installed", "uninstall"]
