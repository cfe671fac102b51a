"""The model-size ladder of the offline testbed: synthetic encoders of four sizes, each
MLM-pretrained by ``xstilts demo``'s recipe (``run.pretrain``) on the same synthetic world, as
the model axis of a miniature sweep ("how does the X-STILTs gain change with model size?").

    LADDER                      name -> LadderSize (shape; the vocabulary is the world's)
    ladder_models(seed=0)       the sweep's model axis: one ModelSpec per size, its checkpoint
                                path and parameter count known before anything is trained
    prepare_ladder_model(size)  pretrains a size once (what ModelSpec.prepare runs)
    study_overrides()           the demo's intermediate/target phase settings, for every cell

Pretrained models are cached, shared by every sweep and run of this machine::

    <cache>/synthetic-ladder/world-<hash of the world config>/data/    the world's task files
    <cache>/synthetic-ladder/<name>-<hash of (world, encoder, pretraining)>/
        pretrain/      the masked-LM phase (checkpoints: an interrupted pretraining resumes)
        pretrained/    the Hugging Face checkpoint with the world's tokenizer (ModelSpec.path)
        ladder.json    written last: the model is complete (shape, parameters, dev MLM accuracy)

``<cache>`` is ``models.offline.default_cache_dir()`` (``$XSTILTS_CACHE``). Each directory is
built under an exclusive ``flock`` (``<dir>.lock``): two processes preparing one model train
it once, the second waits and finds it done.

Sizes (parameters of the backbone, embeddings included, with the default world's 184-word
vocabulary): xs 7,296; s 27,232; m 87,232; l 305,536 (the demo's encoder, pretrained exactly
as ``xstilts demo`` does it): 42x from xs to l, about 3.5x a rung. Every size gets the demo's
1,500 pretraining steps; the larger ones end better pretrained (dev MLM accuracy, seed 0, on a
2-core CPU: 25.6, 40.3, 47.4, 50.6). Pretraining takes 0.5 (xs) to 1.5 (l) minutes there, and
the whole miniature study (4 sizes x {direct, NLI intermediate} x 3 target seeds, the demo's
phases: ``study_overrides``) about 11 to 14 minutes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import pathlib
import shutil
import time
from typing import Any, Iterator

from xstilts_jax.demo import synthetic
from xstilts_jax.demo.run import (DEMO_PHASES, demo_encoder_config, pretrain,
                                  write_synthetic_data)
from xstilts_jax.experiments.rundir import write_json_atomic
from xstilts_jax.experiments.sweep import ModelSpec
from xstilts_jax.models.encoder import EncoderConfig
from xstilts_jax.models.offline import default_cache_dir
from xstilts_jax.sharding import make_mesh

LADDER_DIR = "synthetic-ladder"
_RECORD = "ladder.json"  # written last in a model's directory: it is complete
_WORLD_RECORD = "world.json"  # likewise for the world's data directory
_VERSION = 1  # bump when what a cached model is made from changes outside its hashed settings


@dataclasses.dataclass(frozen=True)
class LadderSize:
    """One rung: the encoder's shape (the rest of ``demo_encoder_config``: positions, dropout)
    and its pretraining's departures from ``DEMO_PHASES["pretrain"]`` (none by default)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    pretrain: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def encoder(self) -> dict[str, int]:
        """The ``demo_encoder_config`` overrides of this size."""
        return dict(hidden_size=self.hidden_size, num_layers=self.num_layers,
                    num_heads=self.num_heads, intermediate_size=self.intermediate_size)


LADDER: dict[str, LadderSize] = {s.name: s for s in (
    LadderSize("synthetic-xs", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
    LadderSize("synthetic-s", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
    LadderSize("synthetic-m", hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
    LadderSize("synthetic-l", hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256),
)}


def _size(size: str | LadderSize) -> LadderSize:
    if isinstance(size, LadderSize):
        return size
    try:
        return LADDER[size]
    except KeyError:
        raise ValueError(f"unknown ladder size {size!r}; expected one of "
                         f"{', '.join(LADDER)}") from None


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Where one (size, seed, pretraining) lives and what it is made of; no training."""

    size: LadderSize
    world: synthetic.SyntheticConfig
    encoder: EncoderConfig
    phase: dict[str, Any]
    data_dir: pathlib.Path
    model_root: pathlib.Path

    @property
    def checkpoint(self) -> pathlib.Path:
        return self.model_root / "pretrained"


def _plan(size: str | LadderSize, *, seed: int, cache_dir, pretrain_overrides,
          world_overrides) -> _Plan:
    size = _size(size)
    world = synthetic.SyntheticConfig(**{**(world_overrides or {}), "seed": seed})
    vocab_size = synthetic.make_world(world).vocab_size  # the vocabulary is built lazily: cheap
    encoder = demo_encoder_config(vocab_size, **size.encoder)
    phase = {**DEMO_PHASES["pretrain"], **size.pretrain, **(pretrain_overrides or {})}
    world_fields = dataclasses.asdict(world)
    identity = {"version": _VERSION, "world": world_fields,
                "encoder": dataclasses.asdict(encoder), "pretrain": phase}
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = cache.absolute() / LADDER_DIR  # absolute: cells may run from another directory
    world_key = _hash({"version": _VERSION, "world": world_fields})
    return _Plan(size, world, encoder, phase, data_dir=root / f"world-{world_key}" / "data",
                 model_root=root / f"{size.name}-{_hash(identity)}")


@contextlib.contextmanager
def _locked(directory: pathlib.Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<directory>.lock`` (released on exit, or when the process
    dies)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prepare_world(plan: _Plan, world: synthetic.SyntheticWorld) -> None:
    if (plan.data_dir / _WORLD_RECORD).is_file():
        return
    with _locked(plan.data_dir.parent):
        if (plan.data_dir / _WORLD_RECORD).is_file():
            return
        write_synthetic_data(world, plan.data_dir)  # per-file atomic, skips finished files
        write_json_atomic(plan.data_dir / _WORLD_RECORD, dataclasses.asdict(plan.world))


def prepare_ladder_model(size: str | LadderSize, *, seed: int = 0, cache_dir=None,
                         progress: bool = False,
                         pretrain_overrides: dict[str, Any] | None = None,
                         world_overrides: dict[str, Any] | None = None) -> pathlib.Path:
    """Pretrain ``size`` (a name of ``LADDER`` or a ``LadderSize``) on the world of ``seed``,
    once: its Hugging Face checkpoint directory (``ladder_models``' ``path``).

    Cached under ``cache_dir`` (default ``default_cache_dir()``) by the hash of the world, the
    encoder and the pretraining settings (``DEMO_PHASES["pretrain"]``, the size's own, then
    ``pretrain_overrides``; ``world_overrides``: ``SyntheticConfig`` fields, e.g. a smaller
    world for tests); a finished model is returned as it is, an interrupted pretraining
    resumes from its last checkpoint, and concurrent callers train it once."""
    plan = _plan(size, seed=seed, cache_dir=cache_dir, pretrain_overrides=pretrain_overrides,
                 world_overrides=world_overrides)
    record = plan.model_root / _RECORD
    if record.is_file():
        return plan.checkpoint
    world = synthetic.make_world(plan.world)
    _prepare_world(plan, world)
    with _locked(plan.model_root):
        if record.is_file():  # another process finished it while this one waited
            return plan.checkpoint
        started = time.perf_counter()
        # A checkpoint half written by a killed process: write it again from the phase's
        # (complete) final state; the phase itself resumes from its checkpoints.
        shutil.rmtree(plan.checkpoint, ignore_errors=True)
        checkpoint, accuracy = pretrain(world, plan.model_root, seed=seed, phase=plan.phase,
                                        encoder=plan.size.encoder, mesh=make_mesh({"data": -1}),
                                        progress=progress)
        assert checkpoint == plan.checkpoint, (checkpoint, plan.checkpoint)
        write_json_atomic(record, {
            "name": plan.size.name, "seed": seed, "parameters": plan.encoder.num_params(),
            "encoder": dataclasses.asdict(plan.encoder), "pretrain": plan.phase,
            "world": dataclasses.asdict(plan.world), "data_dir": str(plan.data_dir),
            "pretrain_dev_mlm_accuracy": accuracy,
            "seconds": time.perf_counter() - started})
    return plan.checkpoint


def ladder_models(*, seed: int = 0, sizes=None, cache_dir=None,
                  pretrain_overrides: dict[str, Any] | None = None,
                  world_overrides: dict[str, Any] | None = None) -> list[ModelSpec]:
    """The sweep's model axis: a ``ModelSpec`` per size (``sizes``: names or ``LadderSize``s,
    default all of ``LADDER``, smallest first) of the world of ``seed``. Paths and parameter
    counts are computed, not trained: ``prepare`` pretrains (``prepare_ladder_model``, which
    also takes the ``*_overrides``)."""
    specs = []
    for size in (sizes if sizes is not None else LADDER.values()):
        plan = _plan(size, seed=seed, cache_dir=cache_dir, pretrain_overrides=pretrain_overrides,
                     world_overrides=world_overrides)
        specs.append(ModelSpec(
            name=plan.size.name, path=str(plan.checkpoint),
            parameters=plan.encoder.num_params(), languages=tuple(plan.world.languages),
            overrides={"data.dir": str(plan.data_dir),
                       "model.hidden_dropout": plan.encoder.hidden_dropout,
                       "model.attention_dropout": plan.encoder.attention_dropout},
            prepare=functools.partial(prepare_ladder_model, plan.size, seed=seed,
                                      cache_dir=plan.model_root.parent.parent,
                                      pretrain_overrides=pretrain_overrides,
                                      world_overrides=world_overrides)))
    return specs


def study_overrides(phases: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The dotted config fields every cell of the miniature study sets: the demo's
    intermediate and target phases (``DEMO_PHASES``, fields overridden by ``phases``), with
    ``num_epochs``/``num_steps`` as the demo sets them. ``cell_config(intermediate,
    "synthetic_paraphrase")`` with these, a ladder model's ``overrides`` and its ``path`` as
    ``model.name`` is ``demo_cell_config``'s cell (up to the seeds, which the sweep sets)."""
    overrides = {}
    for name in ("intermediate", "target"):
        fields = {"num_epochs": None, "num_steps": None, **DEMO_PHASES[name],
                  **(phases or {}).get(name, {})}
        overrides.update({f"{name}.{key}": value for key, value in fields.items()})
    return overrides


__all__ = ["LADDER", "LADDER_DIR", "LadderSize", "ladder_models",
           "prepare_ladder_model", "study_overrides"]
