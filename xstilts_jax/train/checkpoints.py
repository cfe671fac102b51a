"""Orbax checkpoints of a phase: ``latest`` (for resuming) and ``best`` (for evaluating).

Both live on disk, never in RAM: ``best`` is a second CheckpointManager that keeps the one
checkpoint with the best dev metric. ``latest`` stores the train state, ``best`` only the
parameters (all that evaluation and the next phase read: a third of the state's bytes with
Adam, written at every improvement and read back at the phase's end); each also stores a small
JSON of loop state (best metric so far, evaluations without improvement, ...), so a resumed run
continues exactly where the killed one stopped. Each host writes and reads only its own
shards. Orbax writes into a temporary directory and
renames it when complete, so a kill -9 mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp

from xstilts_jax.storage import PathLike, as_path, is_local


def _manager(directory) -> ocp.CheckpointManager:
    """One checkpoint kept, written synchronously, arrays without compression: orbax's
    default zstd made float32 weights 8 % smaller and their save 4x slower (400 MB: 1.14 s
    against 0.29 s, median of 4, on 2 cores), time a preemption notice does not have."""
    return ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, enable_async_checkpointing=False),
        item_handlers={"state": ocp.PyTreeCheckpointHandler(use_compression=False),
                       "loop": ocp.JsonCheckpointHandler()})


class PhaseCheckpoints:
    def __init__(self, directory: PathLike):
        directory = as_path(directory)
        if is_local(directory):
            directory = directory.absolute()
        self.latest = _manager(directory / "latest")
        self.best = _manager(directory / "best")

    @staticmethod
    def _args(state, loop: dict) -> ocp.args.Composite:
        return ocp.args.Composite(state=ocp.args.PyTreeSave(state), loop=ocp.args.JsonSave(loop))

    def save_latest(self, step: int, state, loop: dict) -> None:
        """The train state at update ``step`` (waits until written)."""
        self.latest.save(step, args=self._args(state, loop), force=True)
        self.latest.wait_until_finished()

    def save_best(self, step: int, params, loop: dict) -> None:
        """The parameters at update ``step``, the best so far (waits until written)."""
        self.best.save(step, args=self._args(params, loop), force=True)
        self.best.wait_until_finished()

    @staticmethod
    def _restore(manager: ocp.CheckpointManager, abstract_state) -> tuple[Any, dict] | None:
        step = manager.latest_step()
        if step is None:
            return None
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                abstract_state,
                restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state)),
            loop=ocp.args.JsonRestore()))
        return restored["state"], dict(restored["loop"])

    def restore_latest(self, abstract_state):
        """(state, loop) of the latest checkpoint, or None. abstract_state carries shardings."""
        return self._restore(self.latest, abstract_state)

    def restore_best(self, abstract_params):
        """(params, loop) of the best checkpoint, or None; abstract_params carries shardings."""
        return self._restore(self.best, abstract_params)

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def abstract_with_shardings(tree, shardings):
    """ShapeDtypeStructs carrying the target shardings, for restoring straight onto the mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
