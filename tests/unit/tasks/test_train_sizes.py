"""Published English training-set sizes in the catalog (``TaskSpec.train_examples``): every
trainable intermediate and target task has one, for planning costs before data is present."""

from __future__ import annotations

import pytest

from xstilts_jax.tasks import get_task, task_names
from xstilts_jax.tasks.catalog import TASKS
from xstilts_jax.tasks.spec import TaskSpec, at, split


def _trainable(role: str) -> list[str]:
    return [name for name in task_names(role) if get_task(name).trainable]


@pytest.mark.parametrize("name", sorted(set(_trainable("intermediate") + _trainable("target"))))
def test_every_trainable_intermediate_and_target_task_has_a_training_size(name):
    size = get_task(name).train_examples
    assert isinstance(size, int) and size > 0, (name, size)


def test_the_roles_are_populated():
    assert len(_trainable("intermediate")) == 9  # the paper's nine (its Table 1)
    assert len(_trainable("target")) == 7  # XTREME's seven trainable targets


def test_every_trainable_catalog_task_but_the_demos_has_a_training_size():
    # The demo's synthetic tasks are sized by the demo's settings, not fixed in the catalog.
    for task in TASKS:
        if task.trainable and "demo" not in task.roles:
            assert task.train_examples, task.name


@pytest.mark.parametrize("name, size", [
    ("mnli", 392_702), ("qqp", 363_846), ("sst2", 67_349), ("squad_v2", 130_319),
    ("hellaswag", 39_905), ("cosmosqa", 25_262), ("commonsenseqa", 9_741), ("ccg", 39_604),
    ("anli_plus", 1_104_934), ("squad", 87_599), ("pawsx", 49_401), ("udpos", 21_253),
    ("panx", 20_000), ("tydiqa", 3_696),
])
def test_published_sizes(name, size):
    assert get_task(name).train_examples == size


def test_tasks_trained_on_another_tasks_data_share_its_size():
    assert get_task("xnli").train_examples == get_task("mnli").train_examples
    for name in task_names("target"):
        task = get_task(name)
        same_as = task.split(task.train_split).same_as
        if same_as is not None:
            assert task.train_examples == get_task(same_as[0]).train_examples, name
    assert get_task("xquad").train_examples == get_task("mlqa").train_examples == 87_599
    # ANLI+ is ANLI + MNLI + SNLI train, concatenated.
    assert get_task("anli_plus").train_examples == sum(
        get_task(n).train_examples for n in ("anli", "mnli", "snli"))


def test_a_bad_training_size_is_refused():
    train = split("train", at("xtreme_tsv", "t/train.tsv"))
    with pytest.raises(ValueError, match="train_examples=0"):
        TaskSpec(name="t", family="classification", roles=("extra",), labels=("a",),
                 languages=("en",), splits=(train,), dev_split=None, train_examples=0)
    with pytest.raises(ValueError, match="train_examples=5: only a task with a train_split"):
        TaskSpec(name="t", family="retrieval", roles=("retrieval",), labels=(),
                 languages=("en",), splits=(train,), train_split=None, dev_split=None,
                 train_examples=5)
