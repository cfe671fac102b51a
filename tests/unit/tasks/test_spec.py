"""Task specs and the registry: a bad spec is refused with every problem named; every split of
every catalog task resolves to file locations (and to TFDS or a reason) in every language."""

from __future__ import annotations

import pytest

from xstilts_jax.tasks import get_task, register_task, registry, task_names
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.sources import files, tfds
from xstilts_jax.tasks.spec import Split, TaskSpec, at, split

_TRAIN = split("train", at("xtreme_tsv", "t/train.tsv"))


def test_a_bad_spec_names_every_problem():
    with pytest.raises(ValueError) as e:
        TaskSpec(name="bad", family="regression", roles=("target", "sideline"), labels=(),
                 languages=("de",), splits=(_TRAIN, _TRAIN, split("x", at("f", "x"),
                                                                   translates="nope")),
                 test_split="test", xtreme_group="misc", metric="bleu")
    message = str(e.value)
    for part in ("task spec 'bad'", "family 'regression' is not one of", "role 'sideline'",
                 "xtreme_group 'misc'", "metric 'bleu'", "splits repeat: train, train, x",
                 "split 'test' is not one of its splits", "split 'dev' is not one of its",
                 "split 'x' translates 'nope'", "train_language 'en' is not one of its languages"):
        assert part in message, part
    with pytest.raises(ValueError, match="split 'train': every part needs a candidate"):
        Split("train", ((),))
    with pytest.raises(ValueError, match="is \\('squad', 'train'\\): it has no parts of its own"):
        Split("train", ((at("f", "x"),),), same_as=("squad", "train"))


def test_registry_refuses_a_second_spec_under_a_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = TaskSpec(name="mnli", family="classification", roles=("extra",), labels=("a",),
                    languages=("en",), dev_split=None, splits=(_TRAIN,))
    with pytest.raises(ValueError, match="task 'mnli' is defined twice"):
        register_task(spec)
    assert register_task(spec, replace=True) is get_task("mnli") is spec
    with pytest.raises(TypeError, match="expected a TaskSpec"):
        register_task({"name": "x"})


def test_task_lists_by_role_and_family():
    assert task_names(role="retrieval") == ("bucc2018", "tatoeba")
    assert task_names(role="demo") == ("synthetic_nli", "synthetic_paraphrase")
    assert task_names(family="multiple_choice") == ("commonsenseqa", "cosmosqa", "hellaswag")
    assert task_names(role="target", family="qa") == ("mlqa", "tydiqa", "xquad")
    assert set(task_names(role="intermediate")) <= set(task_names())


@pytest.mark.parametrize("name", task_names())
def test_every_split_resolves_in_every_language(name):
    """The catalog is consistent: each declared split in each of its languages has file
    candidates (placeholders filled, a known format) and a TFDS mapping or a reason."""
    task = get_task(name)
    for split_name in task.split_names:
        for language in task.split_languages(split_name):
            parts = files.parts(task, split_name, language)
            assert parts and all(parts), (name, split_name, language)
            for candidates in parts:
                for location in candidates:
                    assert location.format in files.FORMATS, location
                    assert "{" not in "".join(location.patterns), location
            try:
                tfds_parts = tfds.tfds_parts(task, split_name, language)
            except DataError as e:
                assert "is not in TFDS" in str(e), e
            else:
                assert all(p for p in tfds_parts)
                names = [d.name for part in tfds_parts for d in part]
                assert all("{" not in n for n in names), names
