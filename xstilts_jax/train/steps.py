"""Pure train and eval steps, jitted with explicit shardings over the mesh.

The train state is one pytree (step, params as a plain dict, optimizer state). The model's
graph is static; ``nnx.merge(graphdef, params)`` rebuilds it inside the step. Dropout keys
are ``fold_in(seed_key, step)``: with JAX's partitionable threefry the random bits do not
depend on the sharding, so 1 device and 8 devices train identically. The model is traced
under ``sharding.activation_sharding``, which pins its activations to the mesh by the
same rules table as the parameters.

With LoRA only part of the parameters train (``Steps.trainable``, a mask from
``models.lora.trainable_mask``): the state keeps every parameter, but gradients, the
optimizer and its state see the trainable ones only, and the frozen ones pass through
untouched.

Gradient accumulation is part of the one jitted update: ``Steps.accumulation`` micro-batches
come in together, a ``lax.scan`` sums their gradients (one micro-batch's activations live at
a time), and the optimizer applies their mean once. One dispatch per update, and no
parameter-sized accumulator kept between updates (nor in the checkpoint), as MaxText does
it; ``optax.MultiSteps`` needed a dispatch per micro-batch and kept one in the optimizer state.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from xstilts_jax import sharding
from xstilts_jax.losses import Batch, classification_loss
from xstilts_jax.models.encoder import unrolled_on_cpu


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer updates taken
    params: Any  # plain nested dict of arrays (nnx.to_pure_dict of the model's Params)
    opt_state: Any  # of the trainable parameters only
    # int32 scalar: the dropout seed, an input of the program rather than a constant in it,
    # so cells that differ only in seeds run one compiled program (the compilation cache).
    seed: jax.Array


def model_inputs(batch: Batch) -> tuple:
    return batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")


def split_trainable(params, trainable) -> tuple[Any, Any]:
    """(trainable, frozen) parts of a params dict by a bool mask of its structure (None: all
    train). Each part holds only its own leaves, so the optimizer never sees frozen ones."""
    if trainable is None:
        return params, {}

    def split(tree, mask):
        if not isinstance(mask, Mapping):
            return (tree, None) if mask else (None, tree)
        kept, fixed = {}, {}
        for key, sub in mask.items():
            t, f = split(tree[key], sub)
            if t is not None:
                kept[key] = t
            if f is not None:
                fixed[key] = f
        return kept or None, fixed or None

    kept, fixed = split(params, trainable)
    return kept or {}, fixed or {}


def join_params(trainable_params, frozen_params, trainable):
    """The whole params dict back from ``split_trainable``'s parts (the mask gives its shape)."""
    if trainable is None:
        return trainable_params

    def join(kept, fixed, mask):
        if not isinstance(mask, Mapping):
            return kept if mask else fixed
        return {key: join(kept.get(key, {}), fixed.get(key, {}), sub) for key, sub in mask.items()}

    return join(trainable_params, frozen_params, trainable)


def new_state(params, tx: optax.GradientTransformation, trainable, seed) -> TrainState:
    """Step 0: every parameter, and a fresh optimizer state of the trainable ones."""
    return TrainState(jnp.zeros((), jnp.int32), params,
                      tx.init(split_trainable(params, trainable)[0]), seed)


@dataclasses.dataclass
class Steps:
    """The jitted steps of one phase: a model graph, an optimizer, a mesh and a loss."""

    graphdef: Any
    tx: optax.GradientTransformation
    mesh: Mesh
    loss_fn: Callable[[jax.Array, Batch], tuple[jax.Array, jax.Array]] = classification_loss
    rules: tuple = sharding.DEFAULT_RULES
    dropout_seed: int = 0
    task: str | None = None  # a MultiTaskModel's head to run (None: the single head)
    # Which parameters train: bools shaped like the params dict (lora.trainable_mask); None: all.
    trainable: Any = None
    # Micro-batches per update: the train step takes a batch (1) or a tuple of this many.
    accumulation: int = 1

    def _param_shardings(self, params_state) -> dict:
        """NamedShardings of the parameters (an nnx State: only its Variables' logical axis
        names and shapes are read, so abstract or traced values do), as a plain dict."""
        return nnx.to_pure_dict(
            sharding.shardings_from_metadata(params_state, self.mesh, self.rules))

    def shardings(self, abstract_params_state) -> TrainState:
        """Shardings of the whole train state, from the params' logical axis names."""
        param_shardings = self._param_shardings(abstract_params_state)
        params = split_trainable(nnx.to_pure_dict(abstract_params_state), self.trainable)[0]
        abstract_opt = jax.eval_shape(self.tx.init, params)
        replicated = sharding.replicated(self.mesh)
        opt_shardings = optax.tree_map_params(
            self.tx, lambda _, s: s, abstract_opt,
            split_trainable(param_shardings, self.trainable)[0],
            transform_non_params=lambda _: replicated)
        return TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings,
                          seed=replicated)

    def create_state(self, params, state_shardings: TrainState) -> TrainState:
        """Place params on the mesh and build the optimizer state there (never whole on one device)."""
        params = sharding.put(params, state_shardings.params)
        init = jax.jit(lambda p, seed: new_state(p, self.tx, self.trainable, seed),
                       in_shardings=(state_shardings.params, state_shardings.seed),
                       out_shardings=state_shardings)
        return init(params, jnp.int32(self.dropout_seed))

    def batch_shardings(self, batch: Mapping[str, Any]):
        """Shardings of one (micro-)batch's fields."""
        return {k: sharding.batch_sharding(self.mesh, v.ndim, self.rules) for k, v in batch.items()}

    # ------------------------------------------------------------------ the steps

    def _logits(self, params, batch, dropout_rng=None) -> jax.Array:
        model = nnx.merge(self.graphdef, params)
        with sharding.activation_sharding(self.mesh, self.rules):
            return model(*model_inputs(batch), dropout_rng=dropout_rng, task=self.task)

    def _loss(self, params, batch, dropout_rng):
        total, count = self.loss_fn(self._logits(params, batch, dropout_rng), batch)
        return total / jnp.maximum(count, 1.0), (total, count)

    def _gradients(self, trained, frozen, batch, rng):
        """(loss, gradients w.r.t. the trainable parameters only) of one micro-batch."""
        def trained_loss(trained):
            return self._loss(join_params(trained, frozen, self.trainable), batch, rng)

        with unrolled_on_cpu():  # XLA:CPU's scan copies the saved activations (encoder.py)
            (loss, _), grads = jax.value_and_grad(trained_loss, has_aux=True)(trained)
        return loss, grads

    def train_step(self, state: TrainState, batch) -> tuple[TrainState, dict]:
        """One optimizer update from ``batch``, or with ``accumulation`` k > 1 from a tuple of
        k micro-batches: the mean of their gradients, summed in float32 by one ``lax.scan``.
        Micro-batch i of update u draws dropout from ``fold_in(seed, u * k + i)``, the key
        a micro-step had under ``optax.MultiSteps``. Metrics: the micro-batches' mean loss,
        and the norm of the update's gradient before clipping."""
        key = jax.random.key(state.seed)
        trained, frozen = split_trainable(state.params, self.trainable)
        k = self.accumulation
        if k == 1:
            loss, grads = self._gradients(trained, frozen, batch, jax.random.fold_in(key, state.step))
        else:
            if len(batch) != k:
                raise ValueError(f"expected {k} micro-batches (accumulation), got {len(batch)}")
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batch)
            # The scan's carry (the sum) and each micro-batch's gradients pinned to their
            # parameters' shardings, rather than left to XLA's propagation through the loop.
            placed = split_trainable(self._param_shardings(
                nnx.state(nnx.merge(self.graphdef, state.params))), self.trainable)[0]

            def accumulate(carry, micro):
                index, micro_batch = micro
                rng = jax.random.fold_in(key, state.step * k + index)
                loss, grads = self._gradients(trained, frozen, micro_batch, rng)
                grad_sum, loss_sum = carry
                grad_sum = jax.tree.map(lambda s, g: s + g.astype(jnp.float32), grad_sum,
                                        jax.lax.with_sharding_constraint(grads, placed))
                return (jax.lax.with_sharding_constraint(grad_sum, placed), loss_sum + loss), None

            zeros = jax.lax.with_sharding_constraint(
                jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), trained), placed)
            (grad_sum, loss_sum), _ = jax.lax.scan(
                accumulate, (zeros, jnp.zeros((), jnp.float32)), (jnp.arange(k), stacked))
            grads = jax.tree.map(lambda s, p: (s / k).astype(p.dtype), grad_sum, trained)
            loss = loss_sum / k
        updates, opt_state = self.tx.update(grads, state.opt_state, trained)
        params = join_params(optax.apply_updates(trained, updates), frozen, self.trainable)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def eval_step(self, params, batch: Batch) -> dict:
        logits = self._logits(params, batch)
        total, count = self.loss_fn(logits, batch)
        return {"loss_sum": total, "count": count, "logits": logits}

    def jit_train_step(self, state_shardings: TrainState, batch_shardings):
        """The update jitted; ``batch_shardings`` are one micro-batch's (``batch_shardings``)."""
        replicated = sharding.replicated(self.mesh)
        if self.accumulation > 1:
            batch_shardings = (batch_shardings,) * self.accumulation
        return jax.jit(self.train_step, in_shardings=(state_shardings, batch_shardings),
                       out_shardings=(state_shardings, replicated), donate_argnums=(0,))

    def jit_eval_step(self, param_shardings, batch_shardings):
        replicated = sharding.replicated(self.mesh)
        return jax.jit(self.eval_step, in_shardings=(param_shardings, batch_shardings),
                       out_shardings=replicated)
