"""The paper's grid as configs: every intermediate (each of the nine, the all-nine mixture,
none) with every target, from ``configs/xtreme.py:INTERMEDIATE,TARGET`` arguments."""

from __future__ import annotations


import pytest

from conftest import REPO
from xstilts_jax.config import ConfigError, apply_overrides, load_config_file
from xstilts_jax.experiments.phases import phase_tasks
from xstilts_jax.tasks import get_task, task_names
from xstilts_jax.tasks.families import FAMILIES

CONFIG = REPO / "configs" / "xtreme.py"
NINE = ("anli_plus", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "squad_v2",
        "sst2")
TARGETS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa")


@pytest.mark.parametrize("intermediate", NINE + ("all9", "none", "mnli+squad_v2+mlm"))
def test_every_grid_cell_resolves(intermediate):
    for target in TARGETS:
        config = load_config_file(f"{CONFIG}:{intermediate},{target}")
        assert config.target.task == target
        target_task = get_task(target)
        assert target_task.test_split and target_task.trainable  # a zero-shot target
        if intermediate == "none":
            assert config.intermediate.task == ""
            continue
        names = phase_tasks(config.intermediate.task)
        assert names == (NINE if intermediate == "all9" else tuple(intermediate.split("+")))
        for name in names:
            if name != "mlm":
                task = get_task(name)
                assert task.family in FAMILIES and task.trainable, name
        qa = any(get_task(n).family == "qa" for n in names if n != "mlm")
        assert config.intermediate.max_length == (384 if qa else 128)


def test_tiny_and_overrides():
    config = load_config_file(f"{CONFIG}:all9,xnli,tiny")
    assert config.intermediate.num_steps == 20 and config.intermediate.max_length == 96
    config = apply_overrides(config, ["intermediate.sampling=temperature",
                                      "intermediate.temperature=2.0",
                                      "intermediate.examples_cap=16384",
                                      "intermediate.train_languages=('en','de')",
                                      "mlm.languages=('en','sw')"])
    assert config.intermediate.sampling == "temperature" and config.intermediate.examples_cap == 16384
    assert tuple(config.intermediate.train_languages) == ("en", "de")
    with pytest.raises(ConfigError, match="did you mean intermediate.sampling"):
        apply_overrides(config, ["intermediate.samplng=uniform"])


def test_grid_lists_come_from_the_catalog():
    """The configs' task lists are the catalog's: the nine, the targets, QA's lengths."""
    assert task_names(role="intermediate") == NINE
    assert set(task_names(role="target")) == set(TARGETS)
    assert {t for t in task_names() if get_task(t).max_length == 384} == {
        "squad", "squad_v2", "xquad", "mlqa", "tydiqa"}


def test_phase_seeds_default_to_the_top_level_seed():
    config = load_config_file(f"{CONFIG}:mnli,xnli")
    assert config.intermediate.seed is None and config.target.seed is None
    config = apply_overrides(config, ["seed=3", "target.seed=7"])
    from xstilts_jax.experiments.cell import phase_seed

    assert phase_seed(config, config.intermediate) == 3
    assert phase_seed(config, config.target) == 7


def test_a_cells_phase_section_is_phaseconfigs_schema():
    """Every PhaseConfig field (but its name) is a key of a cell's phase section, with
    PhaseConfig's default except where the cell changes it on purpose (defaults.phase says
    why); the other keys are the ones only a cell's phase has."""
    import dataclasses

    from xstilts_jax.experiments.defaults import phase
    from xstilts_jax.experiments.phases import SECTION_ONLY_FIELDS
    from xstilts_jax.train.loop import PhaseConfig

    section = phase("xnli")
    fields = {f.name: f.default for f in dataclasses.fields(PhaseConfig) if f.name != "name"}
    assert set(section) == set(fields) | {"task", *SECTION_ONLY_FIELDS}
    changed = {k for k, v in fields.items() if section[k] != v}
    assert changed == {"num_epochs", "buckets", "seed"}  # and max_length, per task
    assert phase("xquad").max_length == 384 and section.max_length == PhaseConfig.max_length
