"""A sweep: the grid of cells (model x intermediate x target x seeds) declared in a config file,
expanded into cells and the phases they share, run (or resumed) cell by cell, each finished
cell's scores appended to the run directory's store.

    DIR/sweep.json                the expanded plan (cells, their phase keys)
    DIR/phases/<key>/             one per distinct phase (content key: model, previous phase,
                                  section, seed); an intermediate phase is trained once for
                                  every target of its row
    DIR/cells/<name>/             config.json, cell.json (state, phase keys, error),
                                  results.json, predictions/, stats/
    DIR/store/                    scores.jsonl + examples/ (``store.py``)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections

from xstilts_jax.experiments.defaults import cell_config

NONE = "none"  # the intermediate "task" of direct fine-tuning


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One value of the model axis.

    ``name`` is what tables and plots call it (``xlmr-large``, ``synthetic-m``); ``path`` what
    ``config.model.name`` gets (a checkpoint directory, an offline name or a hub id);
    ``parameters`` the backbone's parameter count and ``languages`` its pretraining languages,
    where known (the report averages over the languages every model has seen); ``overrides``
    the config fields this model needs (``{"data.dir": ...}``); ``prepare`` makes ``path``
    exist (e.g. pretrains a synthetic model; idempotent), called once before its first phase.
    """

    name: str
    path: str
    parameters: int | None = None
    languages: tuple[str, ...] | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    prepare: Callable[[], None] | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass
class SweepSpec:
    """What ``configs/sweep.py:get_sweep(arg)`` returns: the axes and what every cell shares.

    ``intermediates``: ``none`` (direct fine-tuning), a task, a ``+`` mixture or ``all9``.
    ``overrides``: dotted config fields set on every cell (``{"target.num_steps": 20}``).
    ``base``: the config of one (intermediate, target) cell before overrides.
    ``resources``: what one phase asks of a Ray cluster (``--backend ray``).
    """

    name: str
    models: list[ModelSpec]
    intermediates: list[str]
    targets: list[str]
    intermediate_seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    target_seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    base: Callable[[str, str], ml_collections.ConfigDict] = cell_config
    resources: dict[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1})


__all__ = ["NONE", "ModelSpec", "SweepSpec"]
