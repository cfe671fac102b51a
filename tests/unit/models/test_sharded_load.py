"""Loading a checkpoint onto a mesh shard by shard: on 8 fake CPU devices (fsdp 4 x tensor 2),
each device holds only its part of each parameter, every read from the checkpoint files is at
most a device's part of a weight matrix (a fused BLOOM query_key_value included: only the rows
of the heads in the slice), and the values are those of the unsharded load."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import torch
import transformers as T
from flax import nnx

from xstilts_jax.models import pretrained
from xstilts_jax.models.pretrained import load_backbone
from xstilts_jax.sharding import DEFAULT_RULES, activation_sharding, make_mesh

FSDP, TENSOR = 4, 2

pytestmark = pytest.mark.skipif(jax.device_count() < FSDP * TENSOR,
                                reason="needs 8 devices (tests/conftest.py fakes 8 CPU devices)")


@pytest.fixture(scope="module")
def bloom_sharded_checkpoint(tmp_path_factory):
    """A random tiny BloomModel (4 heads: 2 per tensor shard), bf16, in several files with
    model.safetensors.index.json, as the hub's large checkpoints come."""
    torch.manual_seed(0)
    model = T.BloomModel(T.BloomConfig(vocab_size=128, hidden_size=64, n_layer=2, n_head=4,
                                       pad_token_id=3))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "ln_f" in name:
                p.add_(0.1 * torch.randn_like(p))
    directory = tmp_path_factory.mktemp("bloom-sharded")
    model.to(torch.bfloat16).save_pretrained(directory, max_shard_size="40KB")
    assert (directory / "model.safetensors.index.json").is_file()
    return directory


class _CountingSlicer:
    """Records the size of every read from one checkpoint tensor."""

    def __init__(self, inner, name, log):
        self.inner, self.name, self.log = inner, name, log

    def __getitem__(self, index):
        part = self.inner[index]
        self.log.append((self.name, part.size))
        return part


def test_each_device_reads_and_holds_only_its_shard(bloom_sharded_checkpoint, monkeypatch):
    mesh = make_mesh({"data": 1, "fsdp": FSDP, "tensor": TENSOR})
    unsharded, _ = load_backbone(bloom_sharded_checkpoint)

    reads: list[tuple[str, int]] = []
    sizes: dict[str, int] = {}
    opened = pretrained.open_weights

    def counting_open(model_dir):
        tensors = opened(model_dir)
        slicer = tensors.slicer
        for name in tensors.names:
            sizes[name] = math.prod(tensors.shape(name))
        monkeypatch.setattr(tensors, "slicer",
                            lambda name: _CountingSlicer(slicer(name), name, reads))
        return tensors

    monkeypatch.setattr(pretrained, "open_weights", counting_open)
    sharded, _ = load_backbone(bloom_sharded_checkpoint, mesh=mesh, rules=DEFAULT_RULES)

    # No read of a weight matrix is more than a device's part of it. (Vectors may be read
    # whole: LayerNorms are replicated, and the fused qkv bias is read for whole heads.)
    matrices = {name for name in sizes if not name.endswith("bias") and "layernorm" not in name
                and not name.startswith("ln_f")}
    assert matrices and {name for name, _ in reads} >= matrices
    too_big = [(name, size, sizes[name]) for name, size in reads
               if name in matrices and size > sizes[name] // FSDP]
    assert not too_big, too_big
    qkv = [size for name, size in reads if name == "h.0.self_attention.query_key_value.weight"]
    # one head's rows (16) of one component x 16 embedding columns per read
    assert set(qkv) == {16 * 64 // FSDP}

    flat_sharded = dict(nnx.to_flat_state(nnx.state(sharded, nnx.Param)))
    flat_plain = dict(nnx.to_flat_state(nnx.state(unsharded, nnx.Param)))
    assert flat_sharded.keys() == flat_plain.keys()
    for path, variable in flat_sharded.items():
        array = variable[...]
        assert isinstance(array.sharding, jax.sharding.NamedSharding), path
        assert array.sharding.mesh == mesh
        # Equal to the unsharded load, bit for bit.
        np.testing.assert_array_equal(np.asarray(array), np.asarray(flat_plain[path][...]),
                                      err_msg=str(path))
        # Each device holds 1/(product of the mesh axes the spec names) of the parameter.
        split = math.prod(mesh.shape[axis] for entry in array.sharding.spec if entry is not None
                          for axis in ((entry,) if isinstance(entry, str) else entry))
        assert len(array.addressable_shards) == FSDP * TENSOR
        for shard in array.addressable_shards:
            assert shard.data.nbytes * split == array.nbytes, (path, shard.data.shape)

    # The placements the rules give: embed over fsdp, heads / mlp / vocab over tensor.
    layers = flat_sharded
    spec = lambda *path: tuple(layers[path][...].sharding.spec)  # noqa: E731
    assert spec("layers", "attention", "query_kernel") == (None, "fsdp", "tensor", None)
    assert spec("layers", "attention", "out_kernel") == (None, "tensor", None, "fsdp")
    assert spec("layers", "ffn", "in_kernel") == (None, "fsdp", "tensor")
    assert spec("embeddings", "word") == ("tensor", "fsdp")
    query = layers[("layers", "attention", "query_kernel")][...]
    assert query.addressable_shards[0].data.shape == (2, 64 // FSDP, 4 // TENSOR, 16)

    # The sharded model computes what the unsharded one does.
    ids = np.array([[5, 6, 7, 8, 9, 10, 11, 12]] * 8)
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    graphdef, params = nnx.split(sharded)

    @jax.jit
    def forward(params, ids, mask):
        with activation_sharding(mesh):
            return nnx.merge(graphdef, params)(ids, mask).last_hidden_state

    np.testing.assert_allclose(np.asarray(forward(params, ids, mask)) * mask[..., None],
                               np.asarray(unsharded(ids, mask).last_hidden_state) * mask[..., None],
                               atol=1e-5, rtol=0)


def test_encoder_loads_sharded_too(tiny_checkpoints):
    """The same placement for the encoder family (its per-head q/k/v read by head ranges)."""
    mesh = make_mesh({"data": 1, "fsdp": FSDP, "tensor": TENSOR})
    directory = tiny_checkpoints("xlmr")
    plain, _ = pretrained.load_encoder(directory)
    sharded, _ = pretrained.load_encoder(directory, mesh=mesh)
    flat_plain = dict(nnx.to_flat_state(nnx.state(plain, nnx.Param)))
    for path, variable in nnx.to_flat_state(nnx.state(sharded, nnx.Param)):
        array = variable[...]
        np.testing.assert_array_equal(np.asarray(array), np.asarray(flat_plain[path][...]),
                                      err_msg=str(path))
    query = sharded.layers.attention.query_kernel[...]
    assert tuple(query.sharding.spec) == (None, "fsdp", "tensor", None)
    assert query.addressable_shards[0].data.shape == (2, 32 // FSDP, 4 // TENSOR, 8)
