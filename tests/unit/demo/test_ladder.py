"""The model-size ladder of the offline testbed: sizes, cached paths, preparation, study config."""

from __future__ import annotations

import json
import pathlib
import pickle

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.demo import synthetic
from xstilts_jax.demo.ladder import (LADDER, LADDER_DIR, ladder_models,
                                     prepare_ladder_model, study_overrides)
from xstilts_jax.demo.run import DEMO_PHASES, demo_cell_config, demo_encoder_config
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.models.pretrained import load_encoder

# The recipe at smoke size, on a smaller world (both part of the cache key).
TINY_PRETRAIN = dict(num_steps=2, eval_every=2, max_length=32, buckets=(32,))
SMALL_WORLD = dict(intermediate_train_size=300, intermediate_dev_size=100,
                   intermediate_test_size=100, target_train_size=100, target_dev_size=100,
                   target_test_size=100, mlm_sentences_per_language=300)
TINY = dict(pretrain_overrides=TINY_PRETRAIN, world_overrides=SMALL_WORLD)


def _apply(config, overrides: dict):
    """Dotted overrides onto a ConfigDict, as a sweep sets them (every key must exist)."""
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        assert leaf in node, key
        node[leaf] = value
    return config


def test_parameters_increase_and_span_thirty_fold(tmp_path):
    specs = ladder_models(cache_dir=tmp_path)
    assert [s.name for s in specs] == list(LADDER) == [
        "synthetic-xs", "synthetic-s", "synthetic-m", "synthetic-l"]
    counts = [s.parameters for s in specs]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    assert counts[-1] / counts[0] >= 30, counts
    # The demo's encoder is a rung.
    world = synthetic.make_world()
    assert demo_encoder_config(world.vocab_size) in [
        demo_encoder_config(world.vocab_size, **size.encoder) for size in LADDER.values()]
    for spec in specs:
        assert spec.languages == world.languages
        overrides = spec.overrides
        assert overrides["model.hidden_dropout"] == overrides["model.attention_dropout"] == 0.1
        assert pickle.loads(pickle.dumps(spec)) == spec  # a Ray worker can prepare it
    assert not tmp_path.joinpath(LADDER_DIR).exists()  # nothing trained or written


def test_paths_are_deterministic_and_differ_by_size_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path / "env-cache"))
    specs = ladder_models()
    root = tmp_path / "env-cache" / LADDER_DIR
    assert all(pathlib.Path(s.path).is_relative_to(root) for s in specs)
    assert [s.path for s in specs] == [s.path for s in ladder_models()]
    assert len({s.path for s in specs}) == len(specs)
    assert len({s.overrides["data.dir"] for s in specs}) == 1  # one world, its files shared
    seed1 = ladder_models(seed=1)
    assert not {s.path for s in specs} & {s.path for s in seed1}
    assert seed1[0].overrides["data.dir"] != specs[0].overrides["data.dir"]
    tiny = ladder_models(sizes=["synthetic-m"], pretrain_overrides=TINY_PRETRAIN)
    assert tiny[0].path != specs[2].path and tiny[0].parameters == specs[2].parameters
    small = ladder_models(sizes=["synthetic-m"], world_overrides=SMALL_WORLD)
    assert small[0].path != specs[2].path
    assert small[0].overrides["data.dir"] != specs[2].overrides["data.dir"]
    assert pathlib.Path(specs[0].path).parent.name.startswith("synthetic-xs-")
    with pytest.raises(ValueError, match="unknown ladder size"):
        ladder_models(sizes=["synthetic-xxl"])


def test_prepare_pretrains_once_and_the_checkpoint_loads(tmp_path):
    tiny = {**TINY, "cache_dir": tmp_path}
    (spec,) = ladder_models(sizes=["synthetic-xs"], **tiny)
    path = prepare_ladder_model("synthetic-xs", **tiny)
    assert str(path) == spec.path
    weights, record = path / "model.safetensors", path.parent / "ladder.json"
    stamps = (weights.stat().st_mtime_ns, record.stat().st_mtime_ns)
    info = json.loads(record.read_text())
    assert info["parameters"] == spec.parameters and info["pretrain"]["num_steps"] == 2
    assert 0 <= info["pretrain_dev_mlm_accuracy"] <= 100
    encoder, report = load_encoder(path)
    assert encoder.config == demo_encoder_config(synthetic.make_world().vocab_size,
                                                 **LADDER["synthetic-xs"].encoder)
    assert not report.skipped and report.path == path
    # The count (from shapes) is what the encoder holds, embeddings included.
    assert spec.parameters == encoder.config.num_params() == sum(
        int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(encoder, nnx.Param)))
    data = pathlib.Path(spec.overrides["data.dir"]) / "synthetic"
    assert (data / "nli" / "train-en.tsv").is_file()
    assert {p.name for p in (data / "paraphrase").iterdir()} >= {f"test-{lang}.tsv"
                                                                for lang in spec.languages}
    # Again, through the spec: nothing is trained or written.
    spec.prepare()
    assert prepare_ladder_model("synthetic-xs", **tiny) == path
    assert (weights.stat().st_mtime_ns, record.stat().st_mtime_ns) == stamps


@pytest.mark.parametrize("arm", ["xstilts", "direct"])
def test_study_overrides_give_the_demo_cell(tmp_path, arm):
    spec = ladder_models(sizes=["synthetic-l"], cache_dir=tmp_path)[0]
    world = synthetic.make_world()
    expected = demo_cell_config(arm, seed=0, target_seed=2, model_dir=spec.path,
                                data_dir=spec.overrides["data.dir"], phases=DEMO_PHASES,
                                encoder=demo_encoder_config(world.vocab_size))
    config = cell_config("synthetic_nli" if arm == "xstilts" else "none", "synthetic_paraphrase")
    config = _apply(config, {**study_overrides(), **spec.overrides, "model.name": spec.path,
                             "seed": 0, "target.seed": 2})
    assert config.to_dict() == expected.to_dict()
    shorter = study_overrides({"target": {"num_steps": 6, "num_epochs": None}})
    assert shorter["target.num_steps"] == 6 and shorter["intermediate.num_epochs"] == 4.0
