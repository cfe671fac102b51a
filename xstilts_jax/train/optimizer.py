"""The optimizer of the paper's code (jiant): AdamW, linear warmup then linear decay.

Weight decay applies to every matrix and embedding but not to biases or LayerNorm
parameters; gradients are clipped by global norm. The schedule counts optimizer updates; gradient
accumulation happens before, inside the update (``train.steps.Steps.train_step``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def no_decay(path) -> bool:
    """Biases and LayerNorm scale/bias: the parameters HF/jiant exclude from weight decay."""
    names = [str(getattr(p, "key", p)) for p in path]
    return names[-1].endswith("bias") or any(n.endswith("norm") for n in names[:-1])


def decay_mask(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: not no_decay(path), params)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` as one scalar factor: ``g * min(1, max_norm / norm)``.

    optax computes ``select(norm < max_norm, g, g / norm * max_norm)`` per element; XLA:CPU
    then materialises ``g / norm`` as an array of its own and the moment updates read both it
    and ``g``. On XLM-R's 250,002 x 768 embedding that update took 624 ms against 281 ms with
    the scalar factor, which XLA fuses into each consumer (one read of the gradient each).
    The clipped values differ from optax's by float rounding only (two roundings instead of
    one, at most 1 ulp).
    """

    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.where(norm < max_norm, jnp.float32(1.0), max_norm / norm)
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update)


def warmup_linear_decay(peak_lr: float, total_steps: int, warmup_ratio: float) -> optax.Schedule:
    """0 -> peak over warmup_ratio * total_steps, then linearly to 0 at total_steps."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup = int(round(warmup_ratio * total_steps))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak_lr, max(warmup, 1)),
         optax.linear_schedule(peak_lr, 0.0, max(total_steps - warmup, 1))],
        boundaries=[warmup])


def make_optimizer(*, learning_rate: float, total_steps: int, warmup_ratio: float = 0.1,
                   weight_decay: float = 0.01, max_grad_norm: float | None = 1.0,
                   adam_b1: float = 0.9, adam_b2: float = 0.999,
                   adam_eps: float = 1e-8) -> optax.GradientTransformation:
    """AdamW(lr schedule, decoupled weight decay with mask), clipped."""
    schedule = warmup_linear_decay(learning_rate, total_steps, warmup_ratio)
    parts = []
    if max_grad_norm:
        parts.append(clip_by_global_norm(max_grad_norm))
    parts.append(optax.adamw(schedule, b1=adam_b1, b2=adam_b2, eps=adam_eps,
                             weight_decay=weight_decay, mask=decay_mask))
    return optax.chain(*parts)
