"""What a phase costs on a slice, before paying for it: the phase's real program (``build_program``:
model, optimizer, shardings, the train and eval steps) compiled ahead of time for a topology's
devices, from shapes alone (no weights, no data), and read back: per-chip memory, FLOPs, step
time, chip-hours.

Memory is XLA's own (``compiled.memory_analysis()`` of the partitioned program: one chip's
arguments, outputs and temporaries), split into the parts the shardings fix exactly
(parameters, optimizer state, gradients, the batch) and the rest (activations and other
temporaries). On TPU a program that does not fit is refused by the compiler; its message
gives the bytes needed.

FLOPs: XLA's cost analysis counts a loop's body once whatever its trip count, and the blocks
run under one scan; so the step is also traced with the scan unrolled
(``encoder.unrolled_scans``) and XLA's HLO cost analysis counts that program's FLOPs at full
depth, before partitioning (divided by the chips; the matrix products are the same program
the compiler partitions, remat's recomputation included). This needs no second compile.

Step time is a roofline, never a measurement: compute = FLOPs / the chip's peak, memory =
the compiled program's HBM bytes accessed (its loop body counted once: a lower bound) / the
HBM bandwidth; the estimate divides the compute time by an assumed model-FLOPs utilisation
(``--mfu``, default 0.4), and chip-hours follow from it. libtpu's own estimate
(``optimal_seconds``) comes out negative for these programs (libtpu 0.0.42) and is not used.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax import sharding
from xstilts_jax.config import ConfigError
from xstilts_jax.data.batching import bucket_lengths
from xstilts_jax.experiments.phases import (MLM_TASK, lora_config, new_head, phase_config,
                                            phase_tasks)
from xstilts_jax.losses import mlm_loss
from xstilts_jax.models import lora
from xstilts_jax.models.encoder import REMAT_POLICIES, unrolled_scans
from xstilts_jax.models.heads import MaskedLMHead, MultiTaskModel, TaskModel
from xstilts_jax.models.presets import ShapeOnlyRngs, new_backbone
from xstilts_jax.models.pretrained import CheckpointError, model_shape
from xstilts_jax.plan.topology import Topology
from xstilts_jax.tasks import TaskSpec, get_task
from xstilts_jax.tasks.families import FAMILIES
from xstilts_jax.train.multitask import task_probabilities
from xstilts_jax.train.program import Program, build_program

# A task whose label set comes from its training data (CCG supertags) has none before the
# data is read; planning assumes this many (CCGbank's supertags seen in training: ~1,300).
ASSUMED_DATA_LABELS = 1363
PHASES = ("intermediate", "target")


@dataclasses.dataclass(frozen=True)
class Variant:
    """What --search varies for a phase: the mesh, what the backward recomputes, the
    micro-batch (with gradient accumulation keeping the update's batch) and LoRA."""

    mesh: Mapping[str, int]
    remat: str
    micro_batch: int
    grad_accumulation: int
    lora_rank: int

    def label(self) -> str:
        mesh = "x".join(str(self.mesh.get(a, 1)) for a in sharding.MESH_AXES)
        lora_text = f" lora-r{self.lora_rank}" if self.lora_rank else ""
        return (f"mesh {mesh} remat {self.remat} micro {self.micro_batch}x"
                f"{self.grad_accumulation}{lora_text}")


@dataclasses.dataclass
class PhaseBuild:
    """A phase's program on a topology, with abstract batches per task (largest bucket)."""

    program: Program
    tasks: tuple[str | None, ...]
    train_batches: dict[str | None, dict[str, jax.ShapeDtypeStruct]]  # one micro-batch each
    eval_batches: dict[str | None, dict[str, jax.ShapeDtypeStruct]]
    rows: int  # rows of one micro-batch (examples x choices)
    length: int
    updates: int
    grad_accumulation: int
    parameters: int
    trainable_parameters: int
    notes: list[str]

    def update_batches(self, task: str | None):
        """What ``task``'s train step takes: its micro-batch, or with accumulation a tuple
        of ``grad_accumulation`` of them (one update)."""
        batch = self.train_batches[task]
        return batch if self.grad_accumulation == 1 else (batch,) * self.grad_accumulation

    def static_bytes(self) -> int:
        """One chip's parameters + optimizer state + gradients of the trainable parameters,
        exactly as the shardings place them, from shapes alone: a lower bound. With
        accumulation the gradients are the update's sum, which each micro-batch's gradient
        is added into (on a TPU slice no second gradient-sized buffer is needed)."""
        state = self.program.abstract_state
        trainable, _ = _trainable_params(self.program)
        return shard_bytes(state.params) + shard_bytes(state.opt_state) + shard_bytes(trainable)


def _section(config, phase: str):
    if phase not in PHASES:
        raise ConfigError(f"phase {phase!r}: expected one of {', '.join(PHASES)}")
    section = config[phase]
    if not section.task:
        raise ConfigError(f"{phase}.task is empty: the cell has no {phase} phase")
    return section


def phase_train_rows(tasks: list[TaskSpec], section) -> int:
    """The phase's training rows from the tasks' published sizes (``TaskSpec.train_examples``),
    capped as the mixture caps them; a clear error when a size is unknown."""
    sizes = []
    for task in tasks:
        size = getattr(task, "train_examples", None)
        if not size:
            raise ConfigError(f"task {task.name}: no published training size to plan epochs "
                              f"with; set the phase's num_steps")
        cap = section.get("examples_cap", 0) or 0
        sizes.append(min(size, cap) if cap else size)
    return sum(sizes)


def build_phase(config, phase: str, devices, *, variant: Variant | None = None,
                where: str = "mesh") -> PhaseBuild:
    """The program ``run_cell`` would build for ``config``'s ``phase``, on ``devices``, from
    the model's shape alone. ``variant`` overrides mesh, remat, micro-batch and LoRA;
    ``where`` names the slice in errors."""
    section = _section(config, phase)
    notes: list[str] = []
    try:
        names = phase_tasks(section.task)
        tasks = [get_task(t) for t in names if t != MLM_TASK]
    except ValueError as e:
        raise ConfigError(f"{phase}.task: {e}") from None
    for i, task in enumerate(tasks):
        if task.family not in FAMILIES or not task.trainable:
            raise ConfigError(f"{phase}.task: {task.name} cannot be trained")
        if FAMILIES[task.family].labels_from_data and not task.labels:
            tasks[i] = dataclasses.replace(task, labels=tuple(
                str(k) for k in range(ASSUMED_DATA_LABELS)))
            notes.append(f"{task.name}: labels come from its training data; planned with "
                         f"{ASSUMED_DATA_LABELS}")
    model_config = dict(config.model)
    if variant is not None:
        model_config.update(remat=variant.remat, lora_rank=variant.lora_rank)
    remat = model_config.get("remat", "none")
    if remat not in REMAT_POLICIES:
        raise ConfigError(f"model.remat {remat!r}: expected one of {', '.join(REMAT_POLICIES)}")
    overrides = dict(dtype=model_config["dtype"], hidden_dropout=model_config["hidden_dropout"],
                     attention_dropout=model_config["attention_dropout"], remat=remat)
    try:
        backbone_config = model_shape(model_config["name"], **overrides)
    except (CheckpointError, ValueError) as e:
        raise ConfigError(f"model.name {model_config['name']!r}: {e}") from None
    settings = lora_config(model_config)
    seed = int(section.seed if section.get("seed") is not None else config.seed)
    cfg = phase_config(phase, section, seed=seed)
    micro = cfg.batch_size if variant is None else variant.micro_batch
    accumulation = cfg.grad_accumulation if variant is None else variant.grad_accumulation

    def model():  # shapes only: no random draws are counted (ShapeOnlyRngs)
        backbone = new_backbone(backbone_config, rngs=ShapeOnlyRngs())
        if settings is not None:
            lora.add_adapters(backbone, settings, ShapeOnlyRngs())
        heads = {t.name: new_head(t, backbone.config, seed + 1 + i) for i, t in enumerate(tasks)}
        if MLM_TASK in names:
            heads[MLM_TASK] = MaskedLMHead(backbone.config, rngs=ShapeOnlyRngs())
        if len(tasks) == 1 and MLM_TASK not in names:
            return TaskModel(backbone, heads[tasks[0].name])
        return MultiTaskModel(backbone, heads)

    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(model)
    losses: dict[str | None, Any]
    if len(tasks) == 1 and MLM_TASK not in names:
        losses = {None: FAMILIES[tasks[0].family].loss(tasks[0])}
    else:
        losses = {t.name: FAMILIES[t.family].loss(t) for t in tasks}
        if MLM_TASK in names:
            losses[MLM_TASK] = mlm_loss
    rows_total = phase_train_rows(tasks, section) if cfg.num_steps is None else 0
    eval_rows = cfg.eval_batch_size or cfg.batch_size  # the config's, whatever the micro-batch
    cfg = dataclasses.replace(cfg, batch_size=micro, grad_accumulation=accumulation)
    updates = cfg.total_updates(rows_total)
    mesh_shape = dict(config.mesh.shape) if variant is None else dict(variant.mesh)
    try:
        mesh = sharding.make_mesh(mesh_shape, devices=devices)
        rules = sharding.rules_table(config.mesh.rules)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    program = build_program(abstract, losses, mesh=mesh, rules=rules,
                            learning_rate=cfg.learning_rate, total_updates=updates,
                            warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
                            max_grad_norm=cfg.max_grad_norm, grad_accumulation=accumulation,
                            dropout_seed=seed)
    length = bucket_lengths(cfg.max_length, cfg.buckets)[-1]
    by_name = {t.name: t for t in tasks}
    train_batches, eval_batches, rows = {}, {}, 0
    for task_key in program.tasks:
        if task_key == MLM_TASK:
            group, fields = 1, {"mlm_labels": "token"}
        else:
            task = by_name[task_key] if task_key is not None else tasks[0]
            group, fields = FAMILIES[task.family].batch_fields(task)
        train_batches[task_key] = _abstract_batch(program, micro * group, length, fields)
        eval_batches[task_key] = _abstract_batch(program, eval_rows * group, length, fields)
        rows = max(rows, micro * group)
    total, trainable = lora.count_params(abstract)
    return PhaseBuild(program, program.tasks, train_batches, eval_batches, rows, length, updates,
                      accumulation, total, trainable, notes)


def _abstract_batch(program: Program, rows: int, length: int, fields: Mapping[str, str]):
    shapes = {"input_ids": ((rows, length), jnp.int32), "attention_mask": ((rows, length), jnp.int32),
              "token_type_ids": ((rows, length), jnp.int32), "weight": ((rows,), jnp.float32)}
    for name, kind in fields.items():
        shapes[name] = ((rows, length) if kind == "token" else (rows,), jnp.int32)
    batch = {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in shapes.items()}
    shardings = {k: sharding.batch_sharding(program.mesh, len(v.shape), program.rules)
                 for k, v in batch.items()}
    for key, value in batch.items():
        spec = shardings[key].spec[0]
        axes = (spec,) if isinstance(spec, str) else tuple(spec or ())
        ways = math.prod(program.mesh.shape[a] for a in axes)
        if value.shape[0] % ways:
            raise ConfigError(f"a micro-batch of {value.shape[0]} rows does not divide over the "
                              f"{ways} devices of mesh axes {axes}: use a batch size that is a "
                              f"multiple of {ways}, or a mesh with fewer data/fsdp devices")
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k]) for k, v in batch.items()}


# --------------------------------------------------------------------------- measuring


def shard_bytes(tree) -> int:
    """Bytes one device holds of a tree of ShapeDtypeStructs with shardings (the largest
    device's share; shards of an evenly divided array are all alike)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


_OOM_AMOUNT = re.compile(r"([0-9.]+)\s*([KMGT]i?)B?\b")
_UNITS = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def _oom_required(message: str) -> int | None:
    """The bytes a TPU compiler's out-of-memory message says the program needs (the first
    amount it names), or None."""
    for number, unit in _OOM_AMOUNT.findall(message):
        return int(float(number) * _UNITS[unit[0]])
    return None


@dataclasses.dataclass
class Compiled:
    ok: bool
    seconds: float
    memory: dict | None = None  # memory_analysis fields
    cost: dict | None = None  # flops and bytes accessed (a loop's body counted once)
    error: str | None = None
    input_shardings: Any = None


def compile_step(fn, *args) -> Compiled:
    """``fn.lower(*args).compile()`` with its memory and cost read back, or the compiler's
    refusal (TPU: out of HBM)."""
    start = time.perf_counter()
    try:
        compiled = fn.lower(*args).compile()
    except Exception as e:  # XLA's RESOURCE_EXHAUSTED, or anything else it refuses
        message = str(e)
        if "RESOURCE_EXHAUSTED" not in message and "out of memory" not in message.lower():
            raise
        return Compiled(False, time.perf_counter() - start, error=message.strip().splitlines()[0])
    seconds = time.perf_counter() - start
    stats = compiled.memory_analysis()
    memory = {k: int(getattr(stats, k)) for k in (
        "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
        "temp_size_in_bytes", "generated_code_size_in_bytes")} if stats is not None else None
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax: one dict per program
        analysis = analysis[0] if analysis else None
    cost = None
    if analysis:
        cost = {"flops": float(analysis.get("flops", 0.0)),
                "bytes_accessed": float(analysis.get("bytes accessed", 0.0))}
    return Compiled(True, seconds, memory, cost, input_shardings=compiled.input_shardings)


def global_flops(lowered) -> float | None:
    """FLOPs of a lowered (unpartitioned) program by XLA's HLO cost analysis on the host's
    CPU client; None where this jaxlib has no such entry point."""
    try:
        from jax._src.lib import xla_client

        module = lowered.compiler_ir("hlo").get_hlo_module()
        analysis = xla_client._xla.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module)
    except (AttributeError, ImportError):
        return None
    return float(analysis.get("flops", 0.0))


@dataclasses.dataclass
class PhasePlan:
    """A phase's plan on a slice; ``to_json`` names every field's unit."""

    phase: str
    task: str
    model: str
    topology: str
    chips: int
    chip: str
    mesh: dict
    remat: str
    lora_rank: int
    micro_batch_rows: int
    grad_accumulation: int
    sequence_length: int
    parameters: int
    trainable_parameters: int
    per_chip_bytes: dict  # parameters, optimizer_state, gradients, batch, activations_and_temporaries, total, hbm
    fits: bool
    over_by_bytes: int
    eval_fits: bool
    flops_per_step: float | None  # per chip, one micro-step (XLA's count, full depth)
    bytes_accessed_per_step: float | None  # per chip, loop body once: a lower bound
    collective_bytes_per_step: float  # per chip, over the inter-chip links (by hand)
    step_seconds: dict  # compute, memory (lower bound), roofline, estimate (at mfu), mfu
    tokens_per_second: float | None
    updates: int
    chip_hours: float | None
    compile_seconds: float
    compiler_error: str | None
    notes: list
    shardings: dict = dataclasses.field(repr=False, default_factory=dict)

    def to_json(self, *, with_shardings: bool = False) -> dict:
        out = dataclasses.asdict(self)
        if not with_shardings:
            out.pop("shardings")
        return out


def plan_phase(config, phase: str, topology: Topology, *, variant: Variant | None = None,
               mfu: float = 0.4) -> PhasePlan:
    """Compile ``phase`` of ``config`` for ``topology`` and read back its plan; step time and
    chip-hours assume the model-FLOPs utilisation ``mfu``.

    A mixture's tasks share the state and differ in their heads and batch rows: the task
    with the largest batch is compiled for memory, and every task's FLOPs are counted and
    averaged by how often the mixture draws it."""
    devices = topology.devices()
    build = build_phase(config, phase, devices, variant=variant, where=topology.name)
    program = build.program
    largest = max(build.tasks, key=lambda k: _batch_elements(build.train_batches[k]))
    train_step, eval_step = program.jitted(largest, build.train_batches[largest])
    # The whole update (its micro-batches accumulated inside) for memory: what really runs.
    train = compile_step(train_step, program.abstract_state, build.update_batches(largest))
    evaluation = (compile_step(eval_step, program.abstract_state.params,
                               build.eval_batches[largest]) if train.ok else None)
    state = program.abstract_state
    params_bytes = shard_bytes(state.params)
    opt_bytes = shard_bytes(state.opt_state)
    trainable, _ = _trainable_params(program)
    grad_bytes = shard_bytes(trainable)
    batch_bytes = shard_bytes(build.update_batches(largest))
    hbm = topology.chip.hbm_bytes
    if train.ok:
        total = _total_bytes(train)
        activations = max(0, train.memory["temp_size_in_bytes"] - grad_bytes)
        error = None
    else:  # the TPU compiler refused it: what it says it needed, at least the state
        total = max(_oom_required(train.error) or 0,
                    params_bytes + opt_bytes + grad_bytes + batch_bytes)
        activations = max(0, total - params_bytes - opt_bytes - grad_bytes - batch_bytes)
        error = train.error
    per_chip = {"parameters": params_bytes, "optimizer_state": opt_bytes,
                "gradients": grad_bytes, "batch": batch_bytes,
                "activations_and_temporaries": activations, "total": total, "hbm": hbm}
    eval_fits = bool(evaluation is not None and evaluation.ok
                     and (_total_bytes(evaluation) or 0) <= hbm)
    fits = bool(train.ok and total <= hbm and eval_fits)
    compile_seconds = train.seconds + (evaluation.seconds if evaluation is not None else 0.0)
    weights, notes = _draw_weights(config, phase, build)
    flops = None
    for key, weight in weights.items():  # one micro-step's: an update of one micro-batch
        with unrolled_scans():
            step = dataclasses.replace(program.steps(key), accumulation=1).jit_train_step(
                program.shardings, {k: v.sharding for k, v in build.train_batches[key].items()})
            counted = global_flops(step.lower(program.abstract_state, build.train_batches[key]))
        if counted is None:
            flops = None
            break
        flops = (flops or 0.0) + weight * counted / topology.num_chips
    bytes_accessed = train.cost["bytes_accessed"] if train.ok and train.cost else None
    compute = flops / topology.chip.peak_flops if flops is not None else None
    memory_time = (bytes_accessed / topology.chip.hbm_bandwidth
                   if bytes_accessed is not None else None)
    remat = variant.remat if variant else config.model.get("remat", "none")
    exchanged = collective_bytes(program, build,
                                 model_shape(config.model.name, dtype=config.model.dtype), remat)
    communication = exchanged / topology.chip.ici_bandwidth
    known = [t for t in (compute, memory_time, communication) if t is not None]
    roofline = max(known) if known else None
    used = (max(compute / mfu, memory_time or 0.0, communication) if compute is not None
            else None)
    step_seconds = {"compute": compute, "memory_lower_bound": memory_time,
                    "communication": communication, "roofline": roofline, "estimate": used,
                    "mfu": mfu}
    tokens = build.rows * build.length
    tokens_per_second = tokens / used if used else None
    micro_steps = build.updates * build.grad_accumulation
    chip_hours = micro_steps * used * topology.num_chips / 3600 if used else None
    mesh = {a: int(program.mesh.shape[a]) for a in sharding.MESH_AXES}
    lora_rank = int((variant.lora_rank if variant else config.model.get("lora_rank", 0)) or 0)
    return PhasePlan(
        phase=phase, task=str(config[phase].task), model=str(config.model.name),
        topology=topology.name, chips=topology.num_chips, chip=topology.chip.name, mesh=mesh,
        remat=remat,
        lora_rank=lora_rank, micro_batch_rows=build.rows,
        grad_accumulation=build.grad_accumulation, sequence_length=build.length,
        parameters=build.parameters, trainable_parameters=build.trainable_parameters,
        per_chip_bytes=per_chip, fits=fits, over_by_bytes=max(0, total - hbm),
        eval_fits=eval_fits, flops_per_step=flops, bytes_accessed_per_step=bytes_accessed,
        collective_bytes_per_step=exchanged,
        step_seconds=step_seconds, tokens_per_second=tokens_per_second, updates=build.updates,
        chip_hours=chip_hours, compile_seconds=compile_seconds, compiler_error=error,
        notes=build.notes + notes,
        shardings=program.sharding_table(build.train_batches[largest]))


def _batch_elements(batch) -> int:
    return sum(math.prod(v.shape) for v in batch.values())


def _draw_weights(config, phase: str, build: PhaseBuild) -> tuple[dict, list[str]]:
    """How often each of the phase's tasks is drawn per micro-step (a single task: 1), from
    the mixture's sampling over the published training sizes; and notes on what was
    assumed."""
    if len(build.tasks) == 1:
        return {build.tasks[0]: 1.0}, []
    section = config[phase]
    sizes = {k: getattr(get_task(k), "train_examples", None) for k in build.tasks if k != MLM_TASK}
    if MLM_TASK in build.tasks or not all(sizes.values()):
        return ({k: 1 / len(build.tasks) for k in build.tasks},
                ["mixture: tasks weighted equally (a member has no published size)"])
    probabilities = task_probabilities(sizes, sampling=section.get("sampling", "proportional"),
                                       temperature=section.get("temperature", 1.0),
                                       examples_cap=section.get("examples_cap", 0) or None)
    return probabilities, [f"mixture: step time averaged over {len(sizes)} tasks by their "
                           f"{section.get('sampling', 'proportional')} sampling; memory of the "
                           f"largest batch"]


def _total_bytes(compiled: Compiled) -> int | None:
    """One chip's peak: arguments + outputs - what the outputs alias (donated state) +
    temporaries + code."""
    if not compiled.ok or compiled.memory is None:
        return None
    m = compiled.memory
    return (m["argument_size_in_bytes"] + m["output_size_in_bytes"] - m["alias_size_in_bytes"]
            + m["temp_size_in_bytes"] + m["generated_code_size_in_bytes"])


def collective_bytes(program: Program, build: PhaseBuild, shape, remat: str) -> float:
    """Bytes one chip exchanges with the others in one micro-step, counted from the shardings
    (XLA's cost analysis does not count collectives):

    - FSDP: every weight sharded over ``fsdp`` is all-gathered (a chip receives the other
      shards, in the compute dtype) for the forward, again for the backward, and once more
      to recompute the forward under remat "full"; a trained weight's gradient is
      reduce-scattered back (float32);
    - data parallelism: a trained weight not sharded over ``data`` has its gradient
      all-reduced over it (2 (d-1)/d of its bytes);
    - tensor parallelism: two all-reduces of the hidden states per block forward, two
      backward (two more recomputing under remat "full");
    - embedding tables (``['embeddings']``) are not gathered: the rows looked up in each
      shard are (``encoder.lookup_rows``), float32, forward and their gradient backward.
    """
    mesh = program.mesh.shape
    fsdp, data, tensor = (mesh[a] for a in ("fsdp", "data", "tensor"))
    compute_bytes = np.dtype(shape.dtype).itemsize
    gathers = 3 if remat == "full" else 2
    params = jax.tree_util.tree_flatten_with_path(program.abstract_state.params)[0]
    trained = {jax.tree_util.keystr(path) for path, _ in
               jax.tree_util.tree_flatten_with_path(_trainable_params(program)[0])[0]}
    total = 0.0
    for path, leaf in params:
        spec = leaf.sharding.spec
        axes = {a for entry in spec if entry is not None
                for a in ((entry,) if isinstance(entry, str) else entry)}
        shard = math.prod(leaf.sharding.shard_shape(leaf.shape))
        is_trained = jax.tree_util.keystr(path) in trained
        if "['embeddings']" in jax.tree_util.keystr(path) and len(leaf.shape) == 2:
            if "fsdp" in axes and fsdp > 1:  # looked-up rows, not the table
                rows = build.rows * build.length * shape.hidden_size * 4
                total += 2 * (fsdp - 1) / fsdp * rows
        elif "fsdp" in axes and fsdp > 1:
            total += gathers * (fsdp - 1) * shard * compute_bytes
            if is_trained:
                total += (fsdp - 1) * shard * 4
        if is_trained and data > 1 and "data" not in axes:
            total += 2 * (data - 1) / data * shard * 4
    if tensor > 1:
        rows = build.rows / max(1, data * fsdp)
        hidden = rows * build.length * shape.hidden_size * compute_bytes
        reductions = (6 if remat == "full" else 4) * shape.num_layers
        total += reductions * 2 * (tensor - 1) / tensor * hidden
    return float(total)


def _trainable_params(program: Program):
    from xstilts_jax.train.steps import split_trainable

    return split_trainable(program.abstract_state.params, program.trainable)


__all__ = ["ASSUMED_DATA_LABELS", "PHASES", "PhaseBuild", "PhasePlan", "Variant", "build_phase",
           "compile_step", "phase_train_rows", "plan_phase", "shard_bytes"]
