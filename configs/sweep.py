"""Sweeps: the grid of cells a study runs, ``get_sweep(NAME)`` -> a ``SweepSpec``.

    xstilts sweep --config configs/sweep.py:demo --workdir runs/demo      # the miniature study
    xstilts sweep --config configs/sweep.py:paper --workdir gs://b/paper --dry-run
    xstilts sweep --status runs/demo
    xstilts report runs/demo

- ``paper``: the paper's grid, XLM-R large x {direct, each of the nine intermediate tasks,
  all nine together} x the seven XTREME targets x 3 target seeds (intermediate seed 0).
- ``scale``: the same question across sizes: XLM-R base, large, XL, XXL (0.28B -> 10.7B) and
  BLOOM 560M, 1B1, 1B7, 3B, 7B1, 176B (the decoder family) x {direct, MNLI, SQuAD, all9} x the
  seven targets x 3 target seeds. Each model carries its pretraining languages (XLM-R's CC-100,
  BLOOM's ROOTS: 18 of XTREME's 40 languages), so the report can average over the languages
  every model has seen.
- ``demo``: the miniature study that runs on 2 CPU cores, offline: the synthetic testbed's
  model-size ladder (``demo/ladder.py``, each size MLM-pretrained once and cached) x {direct,
  synthetic NLI} x the synthetic paraphrase target x 3 target seeds.

A sweep's ``overrides`` are dotted config fields set on every cell (``experiments/defaults.py``
holds every field); a model's own overrides come first.
"""

from xstilts_jax.experiments.defaults import ALL_NINE, TARGETS
from xstilts_jax.experiments.sweep import NONE, ModelSpec, SweepSpec
from xstilts_jax.models.presets import HUB_IDS, PRESETS, pretraining_languages

# The published checkpoint of each preset (``HUB_IDS``); backbone sizes (embeddings included)
# come from the presets' shapes, pretraining languages from their model cards
# (models/presets.py).
CHECKPOINTS = HUB_IDS


def published(name: str) -> ModelSpec:
    """The model axis entry of a preset with a published checkpoint."""
    return ModelSpec(name=name, path=CHECKPOINTS[name], parameters=PRESETS[name].num_params(),
                     languages=pretraining_languages(name))


def paper() -> SweepSpec:
    return SweepSpec(name="paper", models=[published("xlmr-large")],
                     intermediates=[NONE, *ALL_NINE, "all9"], targets=list(TARGETS),
                     intermediate_seeds=[0], target_seeds=[0, 1, 2])


def scale() -> SweepSpec:
    return SweepSpec(name="scale", models=[published(name) for name in CHECKPOINTS],
                     intermediates=[NONE, "mnli", "squad", "all9"], targets=list(TARGETS),
                     intermediate_seeds=[0], target_seeds=[0, 1, 2],
                     overrides={"model.remat": "dots_saveable"},
                     resources={"TPU": 8})


def demo() -> SweepSpec:
    from xstilts_jax.demo.ladder import ladder_models, study_overrides
    from xstilts_jax.tasks.catalog.synthetic import SYNTHETIC_NLI, SYNTHETIC_PARAPHRASE

    return SweepSpec(name="demo", models=ladder_models(seed=0),
                     intermediates=[NONE, SYNTHETIC_NLI.name],
                     targets=[SYNTHETIC_PARAPHRASE.name], intermediate_seeds=[0],
                     target_seeds=[0, 1, 2], overrides=study_overrides())


SWEEPS = {"paper": paper, "scale": scale, "demo": demo}


def get_sweep(name: str = "demo") -> SweepSpec:
    if name not in SWEEPS:
        raise KeyError(f"unknown sweep {name!r}; known: {', '.join(SWEEPS)}")
    return SWEEPS[name]()
