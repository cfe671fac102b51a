"""Pure train and eval steps, jitted with explicit shardings over the mesh.

The train state is one pytree (step, params as a plain dict, optimizer state). The model's
graph is static; ``nnx.merge(graphdef, params)`` rebuilds it inside the step. Dropout keys
are ``fold_in(seed_key, step)``: with JAX's partitionable threefry the random bits do not
depend on the sharding, so 1 device and 8 devices train identically. The model is traced
under ``partitioning.activation_sharding``, which pins its activations to the mesh by the
same rules table as the parameters.
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

from xstilts_jax.train import partitioning

Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer micro-steps taken
    params: Any  # plain nested dict of arrays (nnx.to_pure_dict of the model's Params)
    opt_state: Any


def classification_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(sum of per-example NLL weighted by batch['weight'], sum of weights)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, batch["labels"][:, None], axis=-1)[:, 0]
    weight = batch["weight"].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def mlm_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Masked-LM NLL over positions with ``mlm_labels >= 0`` of rows with weight > 0."""
    labels = batch["mlm_labels"]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    weight = (labels >= 0).astype(jnp.float32) * batch["weight"][:, None].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def token_classification_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Tagging NLL summed over tokens with ``token_labels >= 0`` (first sub-tokens of the words
    a window predicts) in rows with weight > 0, and their count: a per-token mean, as HF's."""
    labels = batch["token_labels"]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    weight = (labels >= 0).astype(jnp.float32) * batch["weight"][:, None].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def masked_span_logits(logits: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """[B, S, 2] start/end logits with padded positions at -1e9: bucket padding cannot take
    probability mass, so a window scores the same in any bucket."""
    return jnp.where(attention_mask[..., None] > 0, logits.astype(jnp.float32), -1e9)


def span_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Extractive QA: (start NLL + end NLL) / 2 per window, summed with the row weights, as
    HF/XTREME's ``(start_loss + end_loss) / 2``; windows without the answer target ``<s>``."""
    logp = jax.nn.log_softmax(masked_span_logits(logits, batch["attention_mask"]), axis=1)
    start = jnp.take_along_axis(logp[..., 0], batch["start_positions"][:, None], axis=1)[:, 0]
    end = jnp.take_along_axis(logp[..., 1], batch["end_positions"][:, None], axis=1)[:, 0]
    weight = batch["weight"].astype(jnp.float32)
    return jnp.sum(-(start + end) / 2 * weight), jnp.sum(weight)


def multiple_choice_loss(logits: jax.Array, batch: Batch, *, num_choices: int
                         ) -> tuple[jax.Array, jax.Array]:
    """Softmax over each example's ``num_choices`` consecutive rows ([B * C, 1] scores);
    (sum of NLL weighted by the example's weight, sum of weights). Rows of one example carry
    the same label and weight (``ModelInputs`` with ``group=C`` batches them so)."""
    scores = logits.astype(jnp.float32).reshape(-1, num_choices)
    labels = batch["labels"].reshape(-1, num_choices)[:, 0]
    weight = batch["weight"].astype(jnp.float32).reshape(-1, num_choices)[:, 0]
    logp = jax.nn.log_softmax(scores, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * weight), jnp.sum(weight)


def model_inputs(batch: Batch) -> tuple:
    return batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")


@dataclasses.dataclass
class Steps:
    """The jitted steps of one phase: a model graph, an optimizer, a mesh and a loss."""

    graphdef: Any
    tx: optax.GradientTransformation
    mesh: Mesh
    loss_fn: Callable[[jax.Array, Batch], tuple[jax.Array, jax.Array]] = classification_loss
    rules: tuple = partitioning.DEFAULT_RULES
    dropout_seed: int = 0
    task: str | None = None  # a MultiTaskModel's head to run (None: the single head)

    def for_task(self, task: str, loss_fn) -> "Steps":
        """The steps of one task of a multi-task model (same graph, optimizer and mesh)."""
        return dataclasses.replace(self, task=task, loss_fn=loss_fn)

    def shardings(self, abstract_params_state) -> TrainState:
        """Shardings of the whole train state, from the params' logical axis names."""
        param_shardings = nnx.to_pure_dict(
            partitioning.shardings_from_metadata(abstract_params_state, self.mesh, self.rules))
        params = nnx.to_pure_dict(abstract_params_state)
        abstract_opt = jax.eval_shape(self.tx.init, params)
        replicated = partitioning.replicated(self.mesh)
        opt_shardings = optax.tree_map_params(
            self.tx, lambda _, s: s, abstract_opt, param_shardings,
            transform_non_params=lambda _: replicated)
        return TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings)

    def create_state(self, params, state_shardings: TrainState) -> TrainState:
        """Place params on the mesh and build the optimizer state there (never whole on one device)."""
        params = partitioning.put(params, state_shardings.params)
        init = jax.jit(lambda p: TrainState(jnp.zeros((), jnp.int32), p, self.tx.init(p)),
                       in_shardings=(state_shardings.params,), out_shardings=state_shardings)
        return init(params)

    def batch_shardings(self, batch: Mapping[str, Any]):
        return {k: partitioning.batch_sharding(self.mesh, v.ndim, self.rules) for k, v in batch.items()}

    # ------------------------------------------------------------------ the steps

    def _logits(self, params, batch, dropout_rng=None) -> jax.Array:
        model = nnx.merge(self.graphdef, params)
        with partitioning.activation_sharding(self.mesh, self.rules):
            return model(*model_inputs(batch), dropout_rng=dropout_rng, task=self.task)

    def _loss(self, params, batch, dropout_rng):
        total, count = self.loss_fn(self._logits(params, batch, dropout_rng), batch)
        return total / jnp.maximum(count, 1.0), (total, count)

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(jax.random.key(self.dropout_seed), state.step)
        (loss, _), grads = jax.value_and_grad(self._loss, has_aux=True)(state.params, batch, rng)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def eval_step(self, params, batch: Batch) -> dict:
        logits = self._logits(params, batch)
        total, count = self.loss_fn(logits, batch)
        return {"loss_sum": total, "count": count, "logits": logits}

    def jit_train_step(self, state_shardings: TrainState, batch_shardings):
        replicated = partitioning.replicated(self.mesh)
        return jax.jit(self.train_step, in_shardings=(state_shardings, batch_shardings),
                       out_shardings=(state_shardings, replicated), donate_argnums=(0,))

    def jit_eval_step(self, param_shardings, batch_shardings):
        replicated = partitioning.replicated(self.mesh)
        return jax.jit(self.eval_step, in_shardings=(param_shardings, batch_shardings),
                       out_shardings=replicated)
