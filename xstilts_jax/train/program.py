"""The program a phase runs: model graph, optimizer, shardings, abstract state and jitted steps.

``build_program`` is the one place they are put together. ``run_phase`` trains with it, and
an ahead-of-time planner compiles the very same steps for a topology it does not have (give
it an abstract model from ``nnx.eval_shape`` and ``jax.ShapeDtypeStruct`` batches): what is
planned is exactly what trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from xstilts_jax import sharding
from xstilts_jax.models import lora
from xstilts_jax.train.checkpoints import abstract_with_shardings
from xstilts_jax.train.optimizer import make_optimizer
from xstilts_jax.train.steps import Steps, TrainState, new_state

Loss = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass
class Program:
    """The jittable pieces of one phase. ``losses`` maps a task to its loss (None: the single
    task of a one-head model); steps are jitted per task on first use, with the shardings of
    that task's batches, and kept."""

    graphdef: Any
    params: Any  # nnx State of the model's parameters (concrete, or abstract for planning)
    tx: Any
    mesh: Mesh
    rules: tuple
    losses: dict[str | None, Loss]
    trainable: Any  # which params train (lora.trainable_mask): bools, or None for all
    shardings: TrainState  # of the whole train state
    abstract_state: TrainState  # ShapeDtypeStructs carrying those shardings
    dropout_seed: int
    accumulation: int = 1  # micro-batches per update (``Steps.accumulation``)
    _steps: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def tasks(self) -> tuple:
        return tuple(self.losses)

    def steps(self, task: str | None = None) -> Steps:
        if task not in self.losses:
            raise ValueError(f"no loss for task {task!r}; tasks: {list(self.losses)}")
        return Steps(self.graphdef, self.tx, self.mesh, loss_fn=self.losses[task],
                     rules=self.rules, dropout_seed=self.dropout_seed, task=task,
                     trainable=self.trainable, accumulation=self.accumulation)

    def jitted(self, task: str | None,
               sample_batch: Mapping[str, Any] | Callable[[], Mapping[str, Any]]):
        """(train step, eval step) of ``task``, jitted on first use with the shardings of
        ``sample_batch``: one (micro-)batch (arrays or ShapeDtypeStructs: only shapes are
        read), or a function making one, called only then. With accumulation the train step
        takes a tuple of ``accumulation`` such batches."""
        if task not in self._steps:
            steps = self.steps(task)
            if callable(sample_batch):
                sample_batch = sample_batch()
            batch_shardings = steps.batch_shardings(sample_batch)
            self._steps[task] = (steps.jit_train_step(self.shardings, batch_shardings),
                                 steps.jit_eval_step(self.shardings.params, batch_shardings))
        return self._steps[task]

    def sharding_table(self, batch: Mapping[str, Any] | None = None) -> dict:
        """Where everything lives, as text: the mesh, and the PartitionSpec of every leaf of
        the train state (and of ``batch``'s fields) by its path. ``xstilts run`` writes it
        beside each phase and ``xstilts plan`` prints it, so the two can be compared."""
        def table(tree):
            leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
            return {jax.tree_util.keystr(path): str(s.spec) for path, s in leaves}

        out = {"mesh": {a: int(n) for a, n in self.mesh.shape.items()},
               "params": table(self.shardings.params), "opt_state": table(self.shardings.opt_state)}
        if batch is not None:
            out["batch"] = table(Steps(self.graphdef, self.tx, self.mesh, rules=self.rules)
                                 .batch_shardings(batch))
        return out

    def feed(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """A host batch placed on the mesh by the rules (each host its own rows)."""
        return sharding.feed(batch, self.mesh, self.rules)

    def initial_state(self) -> TrainState:
        """The model's parameters on the mesh and a fresh optimizer state (of the trainable
        ones) built there."""
        return self.steps(self.tasks[0]).create_state(nnx.to_pure_dict(self.params),
                                                      self.shardings)


def build_program(model: nnx.Module, losses: Loss | Mapping[str, Loss], *, mesh: Mesh,
                  rules=sharding.DEFAULT_RULES, learning_rate: float, total_updates: int,
                  warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                  max_grad_norm: float | None = 1.0, grad_accumulation: int = 1,
                  dropout_seed: int = 0) -> Program:
    """The program of a phase training ``model`` for ``total_updates`` optimizer updates.

    ``losses``: one loss (a single-head model) or ``{task: loss}`` (a ``MultiTaskModel``, one
    head per task). The optimizer is ``make_optimizer``'s AdamW with this schedule. A model
    with LoRA adapters (``models/lora.py``) trains only them and what lies outside the
    adapted backbone (the heads): only those get gradients and optimizer state. With
    ``grad_accumulation`` k > 1 an update takes k micro-batches (``Steps.train_step``)."""
    tx = make_optimizer(learning_rate=learning_rate, total_steps=total_updates,
                        warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                        max_grad_norm=max_grad_norm)
    trainable = lora.trainable_mask(model)
    graphdef, params = nnx.split(model)
    rules = sharding.rules_table(rules)
    losses = dict(losses) if isinstance(losses, Mapping) else {None: losses}
    if grad_accumulation < 1:
        raise ValueError(f"grad_accumulation must be positive, got {grad_accumulation}")
    shardings = Steps(graphdef, tx, mesh, rules=rules, trainable=trainable).shardings(params)
    abstract = jax.eval_shape(lambda p: new_state(p, tx, trainable, np.int32(0)),
                              nnx.to_pure_dict(params))
    return Program(graphdef, params, tx, mesh, rules, losses, trainable, shardings,
                   abstract_with_shardings(abstract, shardings), dropout_seed, grad_accumulation)


__all__ = ["Program", "build_program"]
