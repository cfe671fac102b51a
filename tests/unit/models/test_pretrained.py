"""Loader errors: every bad checkpoint names the file and lists what is wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import safetensors.numpy

from xstilts_jax.models.pretrained import CheckpointError, load_encoder


def _copy(source, target):
    shutil.copytree(source, target)
    return target


def _edit_weights(directory, edit):
    path = directory / "model.safetensors"
    tensors = dict(safetensors.numpy.load_file(path))
    edit(tensors)
    safetensors.numpy.save_file(tensors, path)
    return path


def _edit_config(directory, **changes):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_missing_tensor_is_listed(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")

    def drop(t):
        del t["encoder.layer.1.attention.self.key.weight"]
        del t["embeddings.LayerNorm.bias"]

    weights = _edit_weights(directory, drop)
    with pytest.raises(CheckpointError) as e:
        load_encoder(directory)
    message = str(e.value)
    assert str(weights) in message
    assert "missing tensors (2)" in message
    assert "encoder.layer.1.attention.self.key.weight" in message
    assert "embeddings.LayerNorm.bias" in message


def test_wrong_shape_is_listed_in_checkpoint_layout(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("bert"), tmp_path / "ckpt")

    def reshape(t):
        t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((48, 32), np.float32)

    _edit_weights(directory, reshape)
    with pytest.raises(CheckpointError, match=r"wrong shape \(1\).*"
                       r"encoder\.layer\.0\.intermediate\.dense\.weight: got \(48, 32\), "
                       r"expected \(64, 32\)"):
        load_encoder(directory)


def test_unexpected_tensor_is_listed(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr-xl"), tmp_path / "ckpt")
    _edit_weights(directory, lambda t: t.update({"encoder.layer.7.adapter.weight": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors \(1\): encoder\.layer\.7\.adapter\.weight"):
        load_encoder(directory)


def test_config_and_weights_disagree(tmp_path, tiny_checkpoints):
    """A config saying 3 layers for 2-layer weights: layer 2's tensors are all missing."""
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    _edit_config(directory, num_hidden_layers=3)
    with pytest.raises(CheckpointError, match=r"missing tensors \(16\).*encoder\.layer\.2\."):
        load_encoder(directory)


def test_missing_config(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    (directory / "config.json").unlink()
    with pytest.raises(CheckpointError, match=rf"{directory}: no config.json"):
        load_encoder(directory)


def test_broken_config_json_names_the_line(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    (directory / "config.json").write_text('{\n  "model_type": "xlm-roberta",\n  "hidden_size": ,\n}')
    with pytest.raises(CheckpointError, match=r"config\.json:3: invalid JSON"):
        load_encoder(directory)


def test_unsupported_model_type(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    _edit_config(directory, model_type="gpt2")
    with pytest.raises(CheckpointError, match=r"model_type 'gpt2' is not supported"):
        load_encoder(directory)


def test_missing_weights_file(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no weights found"):
        load_encoder(directory)


def test_truncated_safetensors(tmp_path, tiny_checkpoints):
    directory = _copy(tiny_checkpoints("xlmr"), tmp_path / "ckpt")
    path = directory / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor .* extends past the end"):
        load_encoder(directory)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such checkpoint directory"):
        load_encoder(tmp_path / "nowhere")


def test_sharded_safetensors_with_index(tmp_path, tiny_checkpoints):
    """Large checkpoints come in shards with model.safetensors.index.json."""
    source = tiny_checkpoints("xlmr")
    directory = _copy(source, tmp_path / "ckpt")
    tensors = dict(safetensors.numpy.load_file(directory / "model.safetensors"))
    (directory / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        safetensors.numpy.save_file({k: tensors[k] for k in keys}, directory / shard)
        weight_map.update({k: shard for k in keys})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded, report = load_encoder(directory)
    single, _ = load_encoder(source)
    assert report.weights_file.name == "model.safetensors.index.json"
    ids = np.array([[0, 5, 6, 2]])
    np.testing.assert_array_equal(np.asarray(sharded(ids).last_hidden_state),
                                  np.asarray(single(ids).last_hidden_state))
