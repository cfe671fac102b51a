"""``xstilts plan --search``: the smallest slice a phase fits on, and the fastest way to run it
there.

The search walks the topology's generation from its smallest slice up (``cpu:N``: 1, 2, 4 ...
N devices) and stops, for each LoRA rank asked for, at the first slice where some variant fits;
on that slice it reports the fastest fitting variant (the lowest estimated time per optimizer
update: ``step_seconds["estimate"]`` x gradient accumulation). Full fine-tuning (rank 0) and
LoRA are different experiments, so each rank gets its own answer.

Variants of a slice (``planner.Variant``): the mesh (data x fsdp x tensor = the slice's chips,
tensor dividing the model's heads), what the backward recomputes (``REMAT_POLICIES``), and the
micro-batch m (a divisor of the update's batch B = batch_size x grad_accumulation, accumulated
B / m times, so the update stays B). A micro-batch whose rows do not divide over data x fsdp
cannot be sharded and is skipped.

Compiling is the expensive part (a TPU compile of a real model: 30-90 s), so before it:

* a static lower bound from ``build_phase`` (no compile): one chip's parameters + optimizer
  state + gradients of the trainable parameters, exactly as the shardings place them; a
  variant whose bound exceeds the chip's HBM is rejected without compiling;
* the order: first the most memory-frugal variant of each mesh (smallest static bound first)
  until one fits, answering "does anything fit here?" in few compiles; then the variants
  likely fastest first (no recomputation before ``dots_saveable`` before ``full``, fewer
  accumulation steps first);
* dominance, assuming memory grows and speed falls monotonically: a variant on the same mesh
  that recomputes no more and has no smaller micro-batch than one that did not fit is not
  compiled ("needs at least ..."), nor one that recomputes no less and accumulates no less
  than one that fits ("slower than ...").

At most ``max_compiles`` compiles per slice and LoRA rank; what the budget left uncompiled is
listed as such, so a slice reported as not fitting may only mean that the budget ran out (the
rendered frontier says so).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from xstilts_jax import sharding
from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.phases import MLM_TASK, phase_tasks
from xstilts_jax.models.encoder import REMAT_POLICIES
from xstilts_jax.models.pretrained import CheckpointError, model_shape
from xstilts_jax.plan.planner import PHASES, PhasePlan, Variant, build_phase, plan_phase
from xstilts_jax.plan.topology import GIB, Topology, TopologyError, parse_topology
from xstilts_jax.tasks import get_task
from xstilts_jax.tasks.families import FAMILIES

# Memory order (most frugal first) and speed order (least recomputation first).
_FRUGAL = {"full": 0, "dots_saveable": 1, "none": 2}
_SLOW = {"none": 0, "dots_saveable": 1, "full": 2}


@dataclasses.dataclass
class Tried:
    """One variant the search looked at on a slice. ``fits``: None when it was not compiled
    (pruned by dominance or by the compile budget); ``reason`` says why it was (not) taken."""

    slice: str
    variant: Variant
    static_bytes: int | None  # params + optimizer state + gradients, one chip (no compile)
    total_bytes: int | None  # the compiled train step's peak, one chip
    fits: bool | None
    estimate_seconds: float | None  # one micro-step at the assumed MFU
    reason: str
    plan: PhasePlan | None = dataclasses.field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.variant.label()

    @property
    def update_seconds(self) -> float | None:
        """Estimated time of one optimizer update (micro-step x accumulation)."""
        if self.estimate_seconds is None:
            return None
        return self.estimate_seconds * self.variant.grad_accumulation

    @property
    def chip_hours(self) -> float | None:
        return self.plan.chip_hours if self.plan is not None else None

    def to_json(self) -> dict:
        return {"slice": self.slice, "variant": self.label, "mesh": dict(self.variant.mesh),
                "remat": self.variant.remat, "micro_batch": self.variant.micro_batch,
                "grad_accumulation": self.variant.grad_accumulation,
                "lora_rank": self.variant.lora_rank, "static_bytes": self.static_bytes,
                "total_bytes": self.total_bytes, "fits": self.fits,
                "estimate_seconds": self.estimate_seconds, "update_seconds": self.update_seconds,
                "chip_hours": self.chip_hours, "reason": self.reason}


@dataclasses.dataclass
class SearchResult:
    """``smallest_slice``: the smallest slice on which some variant fits (of any LoRA rank
    searched), None if none does up to the generation's largest; ``smallest_slices`` and
    ``best`` per LoRA rank (``best``: the fastest fitting plan on that rank's smallest slice).
    ``tried``: every variant looked at; ``skipped``: variants whose batch cannot be sharded."""

    phase: str
    topology: str
    slices: tuple[str, ...]  # what was walked, smallest first
    hbm_bytes: int
    smallest_slice: str | None
    smallest_slices: dict[int, str | None]
    best: dict[int, PhasePlan | None]
    tried: list[Tried]
    skipped: list[Tried]
    compiles: int
    largest_slice: str

    def to_json(self) -> dict:
        return {"phase": self.phase, "topology": self.topology, "slices": list(self.slices),
                "hbm_bytes": self.hbm_bytes, "smallest_slice": self.smallest_slice,
                "smallest_slices": {str(k): v for k, v in self.smallest_slices.items()},
                "best": {str(k): (p.to_json() if p is not None else None)
                         for k, p in self.best.items()},
                "tried": [t.to_json() for t in self.tried],
                "skipped": [t.to_json() for t in self.skipped], "compiles": self.compiles,
                "largest_slice": self.largest_slice}


# --------------------------------------------------------------------------- candidates


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def mesh_shapes(chips: int, num_heads: int) -> list[dict[str, int]]:
    """Every data x fsdp x tensor = ``chips`` with tensor dividing ``num_heads``."""
    out = []
    for tensor in _divisors(chips):
        if num_heads % tensor:
            continue
        for fsdp in _divisors(chips // tensor):
            out.append({"data": chips // tensor // fsdp, "fsdp": fsdp, "tensor": tensor})
    return out


def rows_per_example(config, phase: str) -> tuple[int, ...]:
    """The rows one example of each of the phase's tasks takes (multiple choice: its choices)."""
    section = config[phase]
    try:
        names = phase_tasks(section.task)
        groups = []
        for name in names:
            if name == MLM_TASK:
                groups.append(1)
                continue
            task = get_task(name)
            if task.family not in FAMILIES:
                raise ConfigError(f"{phase}.task: {name} cannot be trained")
            groups.append(int(FAMILIES[task.family].batch_fields(task)[0]))
    except ValueError as e:  # unknown task, bad list (ConfigError is a ValueError too)
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{phase}.task: {e}") from None
    return tuple(groups)


def _unshardable(variant: Variant, groups: Sequence[int], eval_batch: int | None) -> str | None:
    ways = variant.mesh["data"] * variant.mesh["fsdp"]
    for group in sorted(set(groups)):
        for what, examples in (("micro-batch", variant.micro_batch), ("eval batch",
                                                                       eval_batch or variant.micro_batch)):
            rows = examples * group
            if rows % ways:
                return (f"skipped: a {what} of {rows} rows does not divide over data x fsdp = "
                        f"{ways} devices")
    return None


def _slice_topologies(topology: Topology) -> list[Topology]:
    names = topology.smaller_and_larger()
    if topology.kind == "cpu":  # every slice keeps the given per-device memory
        return [parse_topology(n, cpu_memory_bytes=topology.chip.hbm_bytes) for n in names]
    return [parse_topology(n) for n in names]


def _validate(config, phase: str, mfu: float, lora_ranks, remats, max_compiles: int):
    if phase not in PHASES:
        raise ConfigError(f"phase {phase!r}: expected one of {', '.join(PHASES)}")
    if not config[phase].task:
        raise ConfigError(f"{phase}.task is empty: the cell has no {phase} phase to search")
    if not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):
        raise ConfigError(f"mfu {mfu!r}: expected a fraction in (0, 1]")
    ranks = tuple(lora_ranks)
    if not ranks or any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in ranks):
        raise ConfigError(f"lora_ranks {lora_ranks!r}: expected one or more ranks >= 0 "
                          f"(0 = full fine-tuning)")
    if len(set(ranks)) != len(ranks):
        raise ConfigError(f"lora_ranks {lora_ranks!r} names a rank twice")
    policies = tuple(remats)
    bad = [r for r in policies if r not in REMAT_POLICIES]
    if not policies or bad:
        raise ConfigError(f"remats {remats!r}: expected a non-empty subset of "
                          f"{', '.join(REMAT_POLICIES)}")
    if not isinstance(max_compiles, int) or max_compiles < 1:
        raise ConfigError(f"max_compiles {max_compiles!r}: expected a positive integer")
    return ranks, tuple(dict.fromkeys(policies))


# --------------------------------------------------------------------------- the search


def search_plans(config, phase: str, topology: Topology, *, mfu: float = 0.4,
                 lora_ranks: Sequence[int] = (0,), remats: Sequence[str] = REMAT_POLICIES,
                 max_compiles: int = 12,
                 progress: Callable[[str], None] | None = None) -> SearchResult:
    """The smallest slice of ``topology``'s generation on which ``phase`` of ``config`` fits,
    and the fastest fitting variant there, per LoRA rank in ``lora_ranks``; at most
    ``max_compiles`` compiles per slice and rank. ``progress(text)`` hears of each step."""
    if not isinstance(topology, Topology):
        raise TopologyError(f"topology {topology!r}: expected a Topology (parse_topology)")
    ranks, policies = _validate(config, phase, mfu, lora_ranks, remats, max_compiles)
    say = progress or (lambda text: None)
    section = config[phase]
    update_batch = int(section.batch_size) * int(section.get("grad_accumulation", 1) or 1)
    if update_batch < 1:
        raise ConfigError(f"{phase}.batch_size x grad_accumulation = {update_batch}: expected "
                          f"a positive batch")
    eval_batch = section.get("eval_batch_size") or None
    groups = rows_per_example(config, phase)
    try:
        num_heads = model_shape(config.model.name).num_heads
    except (CheckpointError, ValueError) as e:
        raise ConfigError(f"model.name {config.model.name!r}: {e}") from None
    slices = _slice_topologies(topology)
    hbm = topology.chip.hbm_bytes
    best: dict[int, PhasePlan | None] = {r: None for r in ranks}
    smallest: dict[int, str | None] = {r: None for r in ranks}
    tried: list[Tried] = []
    skipped: list[Tried] = []
    compiles = 0
    walked = []
    pending = list(ranks)
    for slice_topology in slices:
        if not pending:
            break
        walked.append(slice_topology.name)
        for rank in list(pending):
            rows, skips, n = _search_slice(config, phase, slice_topology, rank, policies,
                                           update_batch, eval_batch, groups, num_heads, mfu,
                                           max_compiles, say)
            tried += rows
            skipped += skips
            compiles += n
            fitting = [t for t in rows if t.fits]
            if fitting:
                winner = min(fitting, key=_speed_key)
                best[rank], smallest[rank] = winner.plan, slice_topology.name
                pending.remove(rank)
                say(f"{slice_topology.name}: lora rank {rank} fits; fastest {winner.label}")
            else:
                say(f"{slice_topology.name}: nothing fits for lora rank {rank}")
    found = [smallest[r] for r in ranks if smallest[r] is not None]
    order = [t.name for t in slices]
    first = min(found, key=order.index) if found else None
    return SearchResult(phase, topology.name, tuple(walked), hbm, first, smallest, best, tried,
                        skipped, compiles, slices[-1].name)


def _speed_key(t: Tried):
    seconds = t.update_seconds
    return (seconds is None, seconds if seconds is not None else 0.0,
            t.total_bytes or 0)


def _search_slice(config, phase, topology: Topology, rank, policies, update_batch, eval_batch,
                  groups, num_heads, mfu, max_compiles, say):
    hbm = topology.chip.hbm_bytes
    devices = topology.devices()
    rows: list[Tried] = []
    skips: list[Tried] = []
    candidates: list[Tried] = []
    static_cache: dict = {}
    for mesh in mesh_shapes(topology.num_chips, num_heads):
        for micro in _divisors(update_batch):
            for remat in policies:
                variant = Variant(mesh, remat, micro, update_batch // micro, rank)
                why = _unshardable(variant, groups, eval_batch)
                if why is not None:
                    skips.append(Tried(topology.name, variant, None, None, False, None, why))
                    continue
                # The state's bytes depend on the mesh, LoRA and whether gradients accumulate.
                key = (tuple(mesh.values()), variant.grad_accumulation > 1)
                if key not in static_cache:
                    try:
                        static_cache[key] = _static_bytes(config, phase, devices, variant,
                                                          topology.name)
                    except ConfigError as e:
                        static_cache[key] = str(e)
                static = static_cache[key]
                if isinstance(static, str):
                    skips.append(Tried(topology.name, variant, None, None, False, None,
                                       f"skipped: {static}"))
                elif static > hbm:
                    rows.append(Tried(topology.name, variant, static, None, False, None,
                                      f"static: > HBM ({_gib(static)} > {_gib(hbm)} GiB of "
                                      f"parameters, optimizer state and gradients)"))
                else:
                    candidates.append(Tried(topology.name, variant, static, None, None, None, ""))
    if not candidates:
        return rows, skips, 0

    def frugal(t: Tried):
        v = t.variant
        ways = v.mesh["data"] * v.mesh["fsdp"]
        return (t.static_bytes, _FRUGAL[v.remat], v.micro_batch / ways, -v.mesh["tensor"])

    def fast(t: Tried):
        v = t.variant
        return (_SLOW[v.remat], v.grad_accumulation, t.static_bytes, -v.mesh["data"])

    # Probes: each mesh's most frugal variant, the mesh with the smallest state first.
    probes: dict[tuple, Tried] = {}
    for t in sorted(candidates, key=lambda t: (_FRUGAL[t.variant.remat], t.variant.micro_batch)):
        probes.setdefault(tuple(t.variant.mesh.values()), t)
    probe_order = sorted(probes.values(), key=frugal)
    speed_order = sorted(candidates, key=fast)
    decided: set[int] = set()
    compiles = 0
    fitted: list[Tried] = []
    failed: list[Tried] = []
    while compiles < max_compiles:
        queue = speed_order if fitted else probe_order
        pick = None
        for t in queue:
            if id(t) in decided:
                continue
            reason = _dominated(t, fitted, failed)
            if reason is not None:
                t.reason = reason
                decided.add(id(t))
                continue
            pick = t
            break
        if pick is None:
            if fitted or not any(id(t) not in decided for t in speed_order):
                break
            # Every probe decided and none fits: the rest by speed (dominance prunes most).
            probe_order = speed_order
            continue
        decided.add(id(pick))
        compiles += 1
        say(f"{topology.name}: compiling {pick.label} ({compiles}/{max_compiles})")
        _compile(pick, config, phase, topology, mfu)
        (fitted if pick.fits else failed).append(pick)
    for t in candidates:
        if id(t) not in decided:
            t.reason = f"not compiled: max_compiles ({max_compiles}) reached on this slice"
    rows += sorted(candidates, key=fast)
    return rows, skips, compiles


def _dominated(t: Tried, fitted: list[Tried], failed: list[Tried]) -> str | None:
    v = t.variant
    for f in failed:
        u = f.variant
        # Accumulating gradients keeps a buffer of them: a micro-batch of the whole update
        # (no accumulation) may need less than a smaller one, so it is compared only with
        # its own kind.
        if (u.mesh == v.mesh and _FRUGAL[v.remat] >= _FRUGAL[u.remat]
                and v.micro_batch >= u.micro_batch
                and (v.grad_accumulation > 1) == (u.grad_accumulation > 1)):
            return f"not compiled: needs at least what {u.label()} needs, which does not fit"
    for f in fitted:
        u = f.variant
        if (u.mesh == v.mesh and _SLOW[v.remat] >= _SLOW[u.remat]
                and v.grad_accumulation >= u.grad_accumulation):
            return f"not compiled: no faster than {u.label()}, which fits"
    return None


def _static_bytes(config, phase, devices, variant: Variant, where: str) -> int:
    """One chip's parameters + optimizer state + gradients, from shapes alone
    (``PhaseBuild.static_bytes``)."""
    return build_phase(config, phase, devices, variant=variant, where=where).static_bytes()


def _compile(t: Tried, config, phase, topology: Topology, mfu: float) -> None:
    try:
        plan = plan_phase(config, phase, topology, variant=t.variant, mfu=mfu)
    except (ConfigError, TopologyError) as e:
        t.fits, t.reason = False, f"error: {e}"
        return
    except Exception as e:  # one variant the compiler rejects should not end the search
        first = (str(e).strip().splitlines() or [""])[0]
        t.fits, t.reason = False, f"compile error: {type(e).__name__}: {first[:200]}"
        return
    t.plan = plan
    t.total_bytes = plan.per_chip_bytes.get("total")
    t.estimate_seconds = plan.step_seconds.get("estimate")
    t.fits = bool(plan.fits and plan.eval_fits)
    if plan.fits and not plan.eval_fits:
        t.reason = "compiled: the eval step does not fit"
    elif plan.fits:
        t.reason = "compiled: fits"
    elif plan.compiler_error:
        t.reason = f"compiled: out of memory ({plan.compiler_error[:120]})"
    else:
        t.reason = f"compiled: > HBM by {_gib(plan.over_by_bytes)} GiB"


# --------------------------------------------------------------------------- rendering


def _gib(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = n / GIB
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def render_frontier(result: SearchResult) -> str:
    """The search as a plain-text table, one row per variant looked at, and what it found."""
    header = ("slice", "mesh dxfxt", "remat", "microxaccum", "lora", "GiB/chip", "fits",
              "step s", "update s", "chip-h", "note")
    table = [header]
    for t in result.tried:
        v = t.variant
        mesh = "x".join(str(v.mesh[a]) for a in sharding.MESH_AXES)
        if t.total_bytes is not None:
            gib = _gib(t.total_bytes)
        elif t.static_bytes is not None:
            gib = ">=" + _gib(t.static_bytes)
        else:
            gib = "-"
        fits = "?" if t.fits is None else ("yes" if t.fits else "no")
        table.append((t.slice, mesh, v.remat, f"{v.micro_batch}x{v.grad_accumulation}",
                      str(v.lora_rank), gib, fits, _num(t.estimate_seconds),
                      _num(t.update_seconds), _num(t.chip_hours), t.reason))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [f"{result.phase} on {result.topology}'s generation "
             f"({_gib(result.hbm_bytes)} GiB per chip); slices walked: {', '.join(result.slices)}"]
    for row in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    if result.skipped:
        lines.append(f"({len(result.skipped)} variants skipped: their micro-batch or eval batch "
                     f"does not shard over data x fsdp)")
    for rank, plan in result.best.items():
        what = "full fine-tuning" if rank == 0 else f"LoRA rank {rank}"
        if plan is None:
            budget = any(t.variant.lora_rank == rank and t.reason.startswith(
                "not compiled: max_compiles") for t in result.tried)
            note = " (some variants were left uncompiled by max_compiles)" if budget else ""
            lines.append(f"{what}: nothing fits up to {result.largest_slice}, the largest "
                         f"slice{note}")
            continue
        update = plan.step_seconds.get("estimate")
        update = update * plan.grad_accumulation if update is not None else None
        mesh = "x".join(str(plan.mesh[a]) for a in sharding.MESH_AXES)
        lines.append(f"{what}: smallest slice that fits: {result.smallest_slices[rank]}; "
                     f"fastest there: mesh {mesh} remat {plan.remat}, micro-batches of "
                     f"{plan.micro_batch_rows} rows x {plan.grad_accumulation}, "
                     f"{_gib(plan.per_chip_bytes['total'])} GiB per chip, "
                     f"{_num(update)} s per update, {_num(plan.chip_hours)} chip-hours")
    return "\n".join(lines)


__all__ = ["SearchResult", "Tried", "mesh_shapes", "render_frontier", "rows_per_example",
           "search_plans"]
