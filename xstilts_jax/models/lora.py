"""LoRA: low-rank adapters on a backbone's block projections, for any backbone family.

``add_adapters(backbone, LoRAConfig(rank=8), rngs)`` gives a backbone one pair (A, B) per
target kernel W of its blocks; the blocks then compute with ``W + alpha / rank * A @ B``.
A is ``[layers, *in, rank]``, B is ``[layers, rank, *out]``, stacked on the ``layers`` axis as
the blocks' parameters are, and named with the kernel's logical axes (the rank axis unnamed:
replicated), so they shard like their kernel. A kernel's input side is its leading ``embed``
axis (``[embed, heads, kv]``, ``[embed, mlp]``) or everything before a trailing one
(``[heads, kv, embed]``, ``[mlp, embed]``): per-head kernels get one adapter over all heads,
as PEFT's on the torch ``Linear``. Initialisation is PEFT's default: A kaiming-uniform
(``U(+-1/sqrt(fan_in))``), B zero, so the adapted model starts equal to the base one.

Which parameters train follows from the model alone (``trainable_mask``): an adapted
backbone's own weights are frozen (stored in ``frozen_dtype``), its adapters and everything
outside it (the heads) train. ``train/program.py`` keeps optimizer state for those only.

The adapters are folded into each layer's kernels inside the scan body (``adapt_layer``, one
layer at a time) rather than applied as ``x @ A @ B`` beside every projection: a backbone
family needs only a ``lora`` slot and the shared block scan, not a hook at each projection,
and the exported model (``merge``) computes exactly what was trained. Both forms were
measured (train step, float32, 2-core CPU): on the tiny preset (16 x 32 tokens)
they compile alike (4.0-4.2 s against 3.7-4.2 s) and the folded one steps a little faster
(14 against 16-17 ms CPU time). The folded form's cost shows at real widths: it computes the
full weight gradient of each adapted kernel, as full fine-tuning does, which ``x @ A @ B``
avoids (xlmr-base's block shape, 2 layers, 8 x 128 tokens: 45.3 against 31.2 GFLOP, ~15 %
more CPU time per step), and without remat it keeps one copy of the adapted kernels for the
backward pass (temporaries 346 against 308 MB; with remat="full" 155 against 182 MB).

A backbone family supports LoRA when (1) its stacked blocks are its ``layers`` attribute,
(2) its ``__init__`` declares ``self.lora = nnx.data(None)`` and (3) it runs its blocks with
``encoder.scan_blocks(..., self.layers, self.lora, ...)``, which scans
``stacked_adapters(self.lora)`` beside the layers' parameters and passes each layer's
parameters through ``adapt_layer`` before merging them into a block.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from xstilts_jax.models.axes import EMBED, LAYERS

FROZEN_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    """Rank, scale and placement of the adapters (PEFT's ``LoraConfig`` defaults: r 8, alpha 8).

    ``targets``: kernels of a block by their dotted path in it (``attention.query_kernel``,
    ``ffn.in_kernel``...); () = every projection kernel of the block (attention and MLP).
    ``frozen_dtype``: storage of the frozen backbone weights ("bfloat16" halves their memory;
    the adapters, heads and optimizer state stay float32).
    """

    rank: int = 8
    alpha: float = 8.0
    targets: tuple[str, ...] = ()
    frozen_dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if isinstance(self.targets, str) or not all(isinstance(t, str) for t in self.targets):
            raise ValueError(f"LoRA targets must be a tuple of kernel paths such as "
                             f"'attention.query_kernel', got {self.targets!r}")
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.frozen_dtype not in FROZEN_DTYPES:
            raise ValueError(f"frozen_dtype must be one of {', '.join(FROZEN_DTYPES)}, got "
                             f"{self.frozen_dtype!r}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_model_config(cls, model: Mapping[str, Any]) -> LoRAConfig | None:
        """The LoRA settings of a cell's ``config.model`` section (``lora_rank``,
        ``lora_alpha``, ``lora_targets``, ``frozen_dtype``); None for full fine-tuning
        (rank 0), where nothing is frozen and ``frozen_dtype`` must stay float32."""
        rank = model.get("lora_rank", 0)
        frozen_dtype = model.get("frozen_dtype", "float32")
        if rank == 0:
            if frozen_dtype != "float32":
                raise ValueError(f"model.frozen_dtype={frozen_dtype!r} needs LoRA "
                                 f"(model.lora_rank > 0): full fine-tuning freezes nothing")
            return None
        return cls(rank=rank, alpha=float(model.get("lora_alpha", cls.alpha)),
                   targets=tuple(model.get("lora_targets", ())), frozen_dtype=frozen_dtype)


def finetuning_label(config: LoRAConfig | None) -> str:
    """What a results record says about how the backbone was tuned: ``full``, or
    ``lora-r8-a8`` (+ ``-<targets>`` when not every projection, + ``-frozen-bf16``)."""
    if config is None:
        return "full"
    label = f"lora-r{config.rank}-a{config.alpha:g}"
    if config.targets:
        label += "-" + "+".join(config.targets)
    if config.frozen_dtype != "float32":
        label += "-frozen-bf16"
    return label


def _logical_axes(variable: nnx.Variable) -> tuple:
    return tuple(variable.get_metadata().get("out_sharding") or (None,) * variable.ndim)


def _input_ndim(axes: tuple) -> int | None:
    """How many leading axes of a kernel (``layers`` left out) are its input; None when it
    has no ``embed`` axis on either side, i.e. is no projection to or from the hidden size."""
    if len(axes) < 2:
        return None
    if axes[0] == EMBED:
        return 1
    if axes[-1] == EMBED:
        return len(axes) - 1
    return None


def projection_kernels(block: nnx.Module) -> tuple[str, ...]:
    """Dotted paths of a stacked block's projection kernels: its matrices with ``embed`` as
    the first or last axis, i.e. the attention and MLP projections (the default targets)."""
    out = []
    for path, variable in nnx.to_flat_state(nnx.state(block, nnx.Param)):
        axes = _logical_axes(variable)
        if axes[:1] == (LAYERS,) and _input_ndim(axes[1:]) is not None:
            out.append(".".join(map(str, path)))
    return tuple(out)


def _nested(flat: Mapping[str, Any]) -> dict:
    """{"a.b": x} -> {"a": {"b": x}}."""
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def _at(tree, dotted: str):
    for name in dotted.split("."):
        tree = tree[name] if isinstance(tree, Mapping) else getattr(tree, name)
    return tree


def _with(tree: Mapping, path: list[str], value) -> dict:
    """A copy of a nested dict with the leaf at ``path`` replaced."""
    head, *rest = path
    return {**tree, head: _with(tree[head], rest, value) if rest else value}


@functools.partial(jax.jit, static_argnums=(1,))
def _initial_adapters(key: jax.Array, shapes: tuple) -> list[tuple[jax.Array, jax.Array]]:
    """(A, B) per ``(A shape, B shape, fan_in)``: A as torch's ``Linear`` default
    (kaiming-uniform with a=sqrt(5), i.e. U(+-1/sqrt(fan_in))), PEFT's choice; B zero.

    One draw for all of them, in one jitted program: XLA:CPU compiles the random-bits hash
    for every shape it is drawn in (0.3-1.2 s each on 2 cores)."""
    sizes = [math.prod(a_shape) for a_shape, _, _ in shapes]
    unit = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    out, start = [], 0
    for (a_shape, b_shape, fan_in), size in zip(shapes, sizes):
        a = (unit[start:start + size] * jnp.float32(fan_in ** -0.5)).reshape(a_shape)
        out.append((a, jnp.zeros(b_shape, jnp.float32)))
        start += size
    return out


class LoRAAdapters(nnx.Module):
    """The adapters of one backbone: ``adapters[module][kernel] = {"a": ..., "b": ...}``,
    mirroring the block's layout, every array stacked on the ``layers`` axis."""

    def __init__(self, block: nnx.Module, config: LoRAConfig, *, rngs: nnx.Rngs):
        available = projection_kernels(block)
        targets = config.targets or available
        unknown = [t for t in targets if t not in available]
        if unknown:
            raise ValueError(f"LoRA targets {unknown} are not projection kernels of the "
                             f"block; it has {', '.join(available)}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"LoRA targets {list(targets)} name a kernel twice")
        self.config = config
        self.targets = tuple(targets)
        shapes, axes = [], []
        for target in self.targets:
            kernel = _at(block, target)
            names = _logical_axes(kernel)  # (layers, *in, *out)
            split = 1 + _input_ndim(names[1:])
            layers, inputs, outputs = kernel.shape[0], kernel.shape[1:split], kernel.shape[split:]
            shapes.append(((layers, *inputs, config.rank), (layers, config.rank, *outputs),
                           math.prod(inputs)))
            axes.append(((*names[:split], None), (LAYERS, None, *names[split:])))
        initial = _initial_adapters(rngs.params(), tuple(shapes))
        adapters = {}
        with nnx.use_eager_sharding(False):
            for target, (a, b), (a_axes, b_axes) in zip(self.targets, initial, axes):
                adapters[target] = {"a": nnx.LoRAParam(a, out_sharding=a_axes),
                                    "b": nnx.LoRAParam(b, out_sharding=b_axes)}
        self.adapters = nnx.data(_nested(adapters))


def add_adapters(backbone: nnx.Module, config: LoRAConfig, rngs: nnx.Rngs) -> nnx.Module:
    """Give ``backbone`` (in place; returned too) LoRA adapters on ``config.targets`` of its
    blocks and store its own weights, which are frozen from now on, in ``frozen_dtype``."""
    if "lora" not in vars(backbone) or not hasattr(backbone, "layers"):
        raise ValueError(f"{type(backbone).__name__} does not support LoRA: it needs its "
                         f"stacked blocks as `layers` and a `lora` slot it passes to "
                         f"`scan_blocks` (see models/lora.py)")
    if backbone.lora is not None:
        raise ValueError(f"this {type(backbone).__name__} already has LoRA adapters; "
                         f"lora.merge it first to add new ones")
    if config.frozen_dtype != "float32":
        dtype = jnp.dtype(config.frozen_dtype)
        for _, variable in nnx.iter_graph(backbone):
            if isinstance(variable, nnx.Param):
                variable.set_value(variable[...].astype(dtype))
    backbone.lora = LoRAAdapters(backbone.layers, config, rngs=rngs)
    return backbone


def stacked_adapters(adapters: LoRAAdapters | None) -> dict:
    """Every layer's adapters as a plain dict for ``jax.lax.scan`` ({} without adapters)."""
    return {} if adapters is None else nnx.to_pure_dict(nnx.state(adapters))["adapters"]


def adapted_kernel(kernel: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """One layer's ``W + scale * A @ B`` (A: [*in, r], B: [r, *out]), in float32: the weight a
    fully fine-tuned float32 master copy would hold; the block casts it to its compute dtype."""
    delta = jnp.tensordot(a, b, axes=1)
    return kernel.astype(jnp.float32) + jnp.asarray(scale, jnp.float32) * delta


def adapt_layer(adapters: LoRAAdapters | None, layer_params: dict, layer_adapters: dict) -> dict:
    """One layer's parameters (a plain dict, in a scan body) with its adapters folded into
    the target kernels; unchanged without adapters."""
    if adapters is None:
        return layer_params
    for target in adapters.targets:
        pair = _at(layer_adapters, target)
        kernel = adapted_kernel(_at(layer_params, target), pair["a"], pair["b"],
                                adapters.config.scale)
        layer_params = _with(layer_params, target.split("."), kernel)
    return layer_params


def merge(backbone: nnx.Module) -> nnx.Module:
    """A plain float32 copy of ``backbone`` with ``W + scale * A @ B`` folded into its
    kernels and no adapters: an ordinary model for ``save_hf_checkpoint``. A backbone without
    adapters comes back as a float32 copy."""
    merged = nnx.clone(backbone)
    adapters = getattr(merged, "lora", None)
    if adapters is not None:
        merged.lora = None
        pairs = stacked_adapters(adapters)
        fold = jax.vmap(adapted_kernel, in_axes=(0, 0, 0, None))
        for target in adapters.targets:
            kernel = _at(merged.layers, target)
            pair = _at(pairs, target)
            kernel.set_value(fold(kernel[...], pair["a"], pair["b"], adapters.config.scale))
    for _, variable in nnx.iter_graph(merged):
        if isinstance(variable, nnx.Param):
            variable.set_value(variable[...].astype(jnp.float32))
    return merged


def trainable_mask(model: nnx.Module):
    """Which parameters train, as bools shaped like ``nnx.to_pure_dict(nnx.state(model))``;
    None when all do (no adapters anywhere: full fine-tuning). In an adapted backbone only
    the adapters train; everything outside it (the heads) trains."""
    adapter_paths = [tuple(path) for path, node in nnx.iter_graph(model)
                     if isinstance(node, LoRAAdapters)]
    if not adapter_paths:
        return None

    def trains(path) -> bool:
        names = tuple(getattr(key, "key", key) for key in path)
        for adapter in adapter_paths:
            backbone = adapter[:-1]
            if names[:len(backbone)] == backbone:
                return names[:len(adapter)] == adapter
        return True

    return jax.tree_util.tree_map_with_path(lambda path, _: trains(path),
                                            nnx.to_pure_dict(nnx.state(model)))


def count_params(model: nnx.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of a model, e.g. for a results record."""
    sizes = jax.tree.map(lambda x: math.prod(x.shape), nnx.to_pure_dict(nnx.state(model)))
    mask = trainable_mask(model)
    total = sum(jax.tree.leaves(sizes))
    if mask is None:
        return total, total
    return sum(jax.tree.leaves(jax.tree.map(lambda s, t: s * t, sizes, mask))), total


__all__ = ["FROZEN_DTYPES", "LoRAAdapters", "LoRAConfig", "adapt_layer", "adapted_kernel",
           "add_adapters", "count_params", "finetuning_label", "merge", "projection_kernels",
           "stacked_adapters", "trainable_mask"]
