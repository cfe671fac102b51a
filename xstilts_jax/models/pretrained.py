"""Hugging Face checkpoints in (config.json + safetensors / pytorch_model.bin -> a backbone) and out.

Two backbone families, chosen by the checkpoint's ``model_type`` (``MODEL_FAMILIES``):

* the encoder (``models/encoder.py``): BERT (``bert``), XLM-R (``xlm-roberta``, ``roberta``)
  and XLM-R XL/XXL (``xlm-roberta-xl``);
* the decoder (``models/decoder.py``): BLOOM (``bloom``).

``load_backbone`` loads either, from a local directory, a named offline model
(``multilingual-e5-small``, see ``offline.py``) or, when online, a hub id; ``load_encoder`` is
the same for encoder checkpoints only. Every tensor of the checkpoint is accounted for:
backbone tensors are converted, known task-head tensors (pooler, LM heads, classifiers) are
skipped *and reported*, anything else is an error, as is any backbone tensor that is missing
or mis-shaped; one ``CheckpointError`` lists them all and names the file.

Tensors are read lazily (``safetensors.safe_open`` + ``get_slice``; ``torch.load(mmap=True)``
for ``pytorch_model.bin``). Given a mesh, each parameter is built shard by shard with
``jax.make_array_from_callback``: a device's callback reads only its slice of the checkpoint
tensors (one block's tensor per entry of the stacked ``layers`` axis; of a fused BLOOM
``query_key_value``, only the rows of the heads in the slice), so no host materialises the
whole model.

Checkpoints out: ``save_hf_checkpoint`` writes a backbone (one trained or pretrained here) as
an ordinary HF directory that this loader and ``transformers`` both read. The blocks' tensors
are slices of the backbone's stacked per-block parameters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import struct
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.models.decoder import Decoder, DecoderConfig
from xstilts_jax.models.encoder import Encoder, EncoderConfig
from xstilts_jax.models.presets import HUB_IDS, PRESETS, ShapeOnlyRngs, get_preset
from xstilts_jax.sharding import DEFAULT_RULES, shardings_from_metadata

log = logging.getLogger(__name__)

# config.json's model_type -> the backbone family that loads it.
MODEL_FAMILIES: dict[str, str] = {
    "bert": "encoder", "roberta": "encoder", "xlm-roberta": "encoder",
    "xlm-roberta-xl": "encoder", "bloom": "decoder",
}
_ENCODER_TYPES = {
    # model_type -> (position_style, pre_layer_norm, prefix used by *For<Task> checkpoints)
    "bert": ("absolute", False, "bert."),
    "roberta": ("roberta", False, "roberta."),
    "xlm-roberta": ("roberta", False, "roberta."),
    "xlm-roberta-xl": ("roberta", True, "roberta."),
}
# Tensors of task heads that a checkpoint may carry; they are skipped and reported.
_ENCODER_HEAD_PREFIXES = ("pooler.", "lm_head.", "cls.", "classifier.", "qa_outputs.")
# BloomForCausalLM's lm_head (tied to the word embeddings), BloomForSequenceClassification's
# score, BloomForTokenClassification's classifier, BloomForQuestionAnswering's qa_outputs.
_DECODER_HEAD_PREFIXES = ("lm_head.", "score.", "classifier.", "qa_outputs.")
# Non-persistent buffers some older encoder checkpoints saved.
_ENCODER_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
# BloomFor<Task> checkpoints nest BloomModel under this prefix.
_DECODER_PREFIX = "transformer."


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be turned into a backbone; the message says why."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What the loader did with each checkpoint tensor (nothing is dropped silently)."""

    path: pathlib.Path
    weights_file: pathlib.Path
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]  # task-head tensors and buffers, not part of the backbone


# --------------------------------------------------------------------------- locating


def resolve_model_dir(name_or_path: str | os.PathLike) -> pathlib.Path:
    """A local checkpoint directory for a path, an offline model name or a hub id."""
    path = pathlib.Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from xstilts_jax.models import offline

    name = str(name_or_path)
    if name in HUB_IDS:  # a preset name: its published checkpoint
        name = HUB_IDS[name]
    if offline.is_offline_model(name):
        try:
            return offline.materialize(name)
        except (ImportError, ValueError) as e:  # package not installed, or a corrupt file
            raise CheckpointError(f"{name}: cannot build the offline model: {e}") from e
    if path.exists():
        raise CheckpointError(f"{path}: expected a checkpoint directory, found a file")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        # A hub id ("FacebookAI/xlm-roberta-base"). Untestable offline; kept to one call.
        try:
            from huggingface_hub import snapshot_download

            return pathlib.Path(snapshot_download(
                name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
        except Exception as e:  # offline, unknown repo, ...
            raise CheckpointError(f"{name}: not a local directory, and the hub lookup failed: {e}") from e
    raise CheckpointError(
        f"{name}: no such checkpoint directory, and not an offline model "
        f"({', '.join(sorted(offline.OFFLINE_MODELS))}) or a hub id of the form 'org/name'")


# --------------------------------------------------------------------------- config


def _model_type(hf: Mapping[str, Any], source: str, family: str | None = None) -> str:
    """The checkpoint's supported ``model_type``, of ``family`` when one is required."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_FAMILIES:
        raise CheckpointError(
            f"{source}: model_type {model_type!r} is not supported; expected one of "
            f"{sorted(MODEL_FAMILIES)}")
    found = MODEL_FAMILIES[model_type]
    if family is not None and found != family:
        article = {"encoder": "an", "decoder": "a"}
        raise CheckpointError(f"{source}: model_type {model_type!r} is {article[found]} {found}, "
                              f"not {article[family]} {family} (use load_backbone)")
    return model_type


def encoder_config_from_hf(hf: Mapping[str, Any], *, source: str = "config.json",
                           **overrides) -> EncoderConfig:
    """EncoderConfig from an HF config dict; unsupported variants raise CheckpointError."""
    model_type = _model_type(hf, source, "encoder")
    position_style, pre_ln, _ = _ENCODER_TYPES[model_type]
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{source}: hidden_act {hf['hidden_act']!r} is not supported (only exact 'gelu')")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{source}: position_embedding_type {hf['position_embedding_type']!r} is not supported")
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings")
    missing = [k for k in required if k not in hf]
    if missing:
        raise CheckpointError(f"{source}: missing required fields {missing}")
    fields = dict(
        vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        pad_token_id=hf.get("pad_token_id", 1) if hf.get("pad_token_id") is not None else 1,
        position_style=position_style, pre_layer_norm=pre_ln,
        hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        initializer_range=hf.get("initializer_range", 0.02),
    )
    fields.update(overrides)
    return EncoderConfig(**fields)


def _first(hf: Mapping[str, Any], *keys: str):
    """The value of the first of ``keys`` that the config has (BLOOM's configs name a field
    ``n_embed`` or ``hidden_size``, ``n_head`` or ``num_attention_heads``...), or None."""
    for key in keys:
        if hf.get(key) is not None:
            return hf[key]
    return None


def decoder_config_from_hf(hf: Mapping[str, Any], *, source: str = "config.json",
                           **overrides) -> DecoderConfig:
    """DecoderConfig from a BLOOM config dict (``BloomConfig``'s fields and their aliases)."""
    _model_type(hf, source, "decoder")
    fields = dict(vocab_size=_first(hf, "vocab_size"),
                  hidden_size=_first(hf, "hidden_size", "n_embed"),
                  num_layers=_first(hf, "n_layer", "num_hidden_layers"),
                  num_heads=_first(hf, "n_head", "num_attention_heads"))
    missing = [k for k, v in fields.items() if v is None]
    if missing:
        raise CheckpointError(f"{source}: missing required fields {missing}")
    if hf.get("slow_but_exact") and hf.get("pretraining_tp", 1) > 1:
        # HF then sums the output projections over pretraining_tp column slices: the same
        # function, summed in another order (float32 rounding apart).
        log.info("%s: slow_but_exact with pretraining_tp=%s is computed as one product",
                 source, hf["pretraining_tp"])
    fields.update(
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        pad_token_id=hf.get("pad_token_id"),
        hidden_dropout=hf.get("hidden_dropout", 0.0),
        attention_dropout=hf.get("attention_dropout", 0.0),
        initializer_range=hf.get("initializer_range", 0.02),
        apply_residual_connection_post_layernorm=bool(
            hf.get("apply_residual_connection_post_layernorm", False)),
    )
    fields.update(overrides)
    try:
        return DecoderConfig(**fields)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from e


def backbone_config_from_hf(hf: Mapping[str, Any], *, source: str = "config.json",
                            **overrides) -> EncoderConfig | DecoderConfig:
    """The config of whichever family the checkpoint's ``model_type`` names."""
    family = MODEL_FAMILIES[_model_type(hf, source)]
    return _FAMILIES[family].config_from_hf(hf, source=source, **overrides)


def read_hf_config(model_dir: pathlib.Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json (expected a Hugging Face checkpoint directory)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e


PRESET_OF_HUB_ID = {hub_id: preset for preset, hub_id in HUB_IDS.items()}


def model_shape(name_or_path: str | os.PathLike, **overrides) -> EncoderConfig | DecoderConfig:
    """The backbone config of a model without its weights: a preset name (``xlmr-xxl``,
    ``bloom-176b``: the published shape) or a checkpoint's ``config.json``. What the planner
    builds an abstract model from."""
    name = str(name_or_path)
    name = PRESET_OF_HUB_ID.get(name, name)  # a published checkpoint's id: its preset's shape
    if name in PRESETS:
        try:
            return get_preset(name, **overrides)
        except TypeError as e:
            raise CheckpointError(f"preset {name}: {e}") from None
    model_dir = resolve_model_dir(name_or_path)
    return backbone_config_from_hf(read_hf_config(model_dir), source=str(model_dir / "config.json"),
                                   **overrides)


def checkpoint_family(name_or_path: str | os.PathLike) -> str:
    """``"encoder"`` or ``"decoder"``: which backbone a checkpoint is (reads config.json only)."""
    model_dir = resolve_model_dir(name_or_path)
    return MODEL_FAMILIES[_model_type(read_hf_config(model_dir), str(model_dir / "config.json"))]


# --------------------------------------------------------------------------- weights


class _TorchSlicer:
    """A torch tensor sliced like a safetensors slice: numpy out (bf16 as float32)."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __getitem__(self, index) -> np.ndarray:
        import torch

        part = self.tensor[index]
        return (part.float() if part.dtype == torch.bfloat16 else part).numpy()


@dataclasses.dataclass(frozen=True)
class _Entry:
    slicer: Any  # supports [tuple of slices] -> np.ndarray
    shape: tuple[int, ...]
    dtype: str
    file: pathlib.Path | None


class CheckpointTensors:
    """The tensors of a checkpoint, read lazily: names, shapes and any slice of one.

    ``open_weights`` builds one from a directory; ``from_arrays`` wraps in-memory arrays (a
    torch ``state_dict`` converted to numpy, say). Reading a slice reads only its bytes from
    the memory-mapped files; bf16 tensors come back as ``ml_dtypes.bfloat16`` arrays.
    """

    def __init__(self, entries: Mapping[str, _Entry], file: pathlib.Path | None):
        self._entries = dict(entries)
        self.file = file  # the weights file or index, for messages; None for arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> "CheckpointTensors":
        entries = {}
        for name, value in arrays.items():
            value = np.asarray(value)
            entries[name] = _Entry(value, tuple(value.shape), str(value.dtype), None)
        return cls(entries, None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name].shape

    def dtype(self, name: str) -> str:
        return self._entries[name].dtype

    def slicer(self, name: str):
        """An object whose ``[index]`` (a tuple of slices) reads that part of the tensor."""
        return self._entries[name].slicer

    def read(self, name: str, index: tuple[slice, ...] | None = None) -> np.ndarray:
        entry = self._entries[name]
        return np.asarray(entry.slicer[index if index is not None
                                       else tuple(slice(None) for _ in entry.shape)])


def _safetensors_problem(path: pathlib.Path, error: Exception) -> CheckpointError:
    """The CheckpointError for a file safetensors refused: the tensor that runs past the end
    of a truncated file when the header shows one, else the library's message."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        available = path.stat().st_size - 8 - n
        for name, info in header.items():
            if name != "__metadata__" and info["data_offsets"][1] > available:
                return CheckpointError(f"{path}: tensor {name} extends past the end of the file "
                                       "(truncated?)")
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        pass
    return CheckpointError(f"{path}: unreadable safetensors file: {error}")


def _open_safetensors(path: pathlib.Path) -> dict[str, _Entry]:
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(path, framework="numpy")
        entries = {}
        for name in handle.keys():
            part = handle.get_slice(name)
            entries[name] = _Entry(part, tuple(part.get_shape()), part.get_dtype(), path)
    except SafetensorError as e:
        raise _safetensors_problem(path, e) from e
    return entries


def _open_torch_bin(path: pathlib.Path) -> dict[str, _Entry]:
    try:
        import torch
    except ImportError as e:
        raise CheckpointError(
            f"{path}: reading pytorch_model.bin needs torch (pip install torch), "
            "or convert the checkpoint to model.safetensors") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (pre-zip) format cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {name: _Entry(_TorchSlicer(t), tuple(t.shape), str(t.dtype).removeprefix("torch."), path)
            for name, t in state.items()}


def open_weights(model_dir: pathlib.Path) -> CheckpointTensors:
    """The tensors of a checkpoint directory (single file or sharded with an index), lazily."""
    candidates: list[tuple[str, Callable[[pathlib.Path], dict[str, _Entry]]]] = [
        ("model.safetensors", _open_safetensors), ("pytorch_model.bin", _open_torch_bin)]
    for filename, opener in candidates:
        single, index = model_dir / filename, model_dir / f"{filename}.index.json"
        if single.is_file():
            return CheckpointTensors(opener(single), single)
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: not a weights index (expected JSON with a "
                                      f"'weight_map'): {e}") from e
            shards = sorted(set(weight_map.values()))
            absent = [s for s in shards if not (model_dir / s).is_file()]
            if absent:
                raise CheckpointError(f"{index}: shard files not found: {', '.join(absent)}")
            entries: dict[str, _Entry] = {}
            for shard in shards:
                entries.update(opener(model_dir / shard))
            unlisted = sorted(set(weight_map) - set(entries))
            if unlisted:
                raise CheckpointError(f"{index}: tensors listed but not in their shard files: "
                                      f"{', '.join(unlisted)}")
            return CheckpointTensors(entries, index)
    raise CheckpointError(
        f"{model_dir}: no weights found (expected model.safetensors, pytorch_model.bin "
        "or a sharded *.index.json)")


def read_weights(model_dir: pathlib.Path) -> tuple[dict[str, np.ndarray], pathlib.Path]:
    """Every tensor of a checkpoint directory, read whole (``open_weights`` reads lazily)."""
    tensors = open_weights(model_dir)
    return {name: tensors.read(name) for name in tensors.names}, tensors.file


# --------------------------------------------------------------------------- layouts


def _range(index: slice) -> tuple[int, int]:
    assert index.step in (None, 1), index
    return index.start, index.stop


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How one checkpoint tensor's torch layout maps onto our (one block's) parameter.

    ``read(t, index)`` reads the part of our parameter at ``index`` (one step-1 slice per
    dimension of our layout) from ``t``, a sliceable checkpoint tensor, touching only the
    rows and columns that part needs. ``to_hf(*values)`` goes back: our full arrays (one per
    slot that shares the tensor, in slot order) -> the tensor.
    """

    hf_shape: Callable[[tuple[int, ...]], tuple[int, ...]]  # our shape -> the checkpoint's
    read: Callable[[Any, tuple[slice, ...]], np.ndarray]
    to_hf: Callable[..., np.ndarray]


SAME = _Layout(lambda s: tuple(s), lambda t, i: t[i], lambda w: w)
TRANSPOSE = _Layout(lambda s: (s[1], s[0]),  # torch Linear [out, in] <-> our [in, out]
                    lambda t, i: t[i[1], i[0]].T, lambda w: w.T)


def _heads_in(n: int, d: int, h: int) -> _Layout:
    """Torch [n*d, h] (an encoder's query/key/value) <-> ours [h, n, d]."""
    def read(t, i):
        (e0, e1), (n0, n1) = _range(i[0]), _range(i[1])
        rows = t[slice(n0 * d, n1 * d), slice(e0, e1)]  # [heads*d, embed]
        return rows.reshape(n1 - n0, d, e1 - e0)[:, i[2]].transpose(2, 0, 1)
    return _Layout(lambda s: (s[1] * s[2], s[0]), read, lambda w: w.reshape(h, n * d).T)


def _heads_bias(n: int, d: int) -> _Layout:
    """Torch [n*d] <-> ours [n, d]."""
    def read(t, i):
        n0, n1 = _range(i[0])
        return t[(slice(n0 * d, n1 * d),)].reshape(n1 - n0, d)[:, i[1]]
    return _Layout(lambda s: (s[0] * s[1],), read, lambda b: b.reshape(n * d))


def _heads_out(n: int, d: int, h: int) -> _Layout:
    """Torch [h, n*d] (the attention output projection) <-> ours [n, d, h]."""
    def read(t, i):
        (n0, n1), (e0, e1) = _range(i[0]), _range(i[2])
        cols = t[slice(e0, e1), slice(n0 * d, n1 * d)]  # [embed, heads*d]
        return cols.reshape(e1 - e0, n1 - n0, d).transpose(1, 2, 0)[:, i[1]]
    return _Layout(lambda s: (s[2], s[0] * s[1]), read, lambda w: w.reshape(n * d, h).T)


def _fused_qkv(component: int, n: int, d: int, h: int) -> _Layout:
    """BLOOM's fused ``query_key_value.weight``, torch [n*3*d, h] with rows laid out per head
    as (heads, 3, head_dim) <-> ours [h, n, d] for q (0), k (1) or v (2). A slice reads, per
    head it covers, only that head's rows of this component."""
    def read(t, i):
        (e0, e1), (n0, n1), (d0, d1) = _range(i[0]), _range(i[1]), _range(i[2])
        rows = [t[slice((j * 3 + component) * d + d0, (j * 3 + component) * d + d1),
                  slice(e0, e1)] for j in range(n0, n1)]  # each [kv, embed]
        if not rows:
            return np.zeros((e1 - e0, 0, d1 - d0), np.float32)
        return np.stack(rows).transpose(2, 0, 1)

    def to_hf(q, k, v):  # three [h, n, d] -> [n*3*d, h]
        return np.stack([q, k, v], axis=2).reshape(h, n * 3 * d).T
    return _Layout(lambda s: (3 * s[1] * s[2], s[0]), read, to_hf)


def _fused_qkv_bias(component: int, n: int, d: int) -> _Layout:
    """BLOOM's ``query_key_value.bias``, torch [n*3*d] <-> ours [n, d] for one component."""
    def read(t, i):
        n0, n1 = _range(i[0])
        return t[(slice(n0 * 3 * d, n1 * 3 * d),)].reshape(n1 - n0, 3, d)[:, component, i[1]]

    def to_hf(q, k, v):  # three [n, d] -> [n*3*d]
        return np.stack([q, k, v], axis=1).reshape(n * 3 * d)
    return _Layout(lambda s: (3 * s[0] * s[1],), read, to_hf)


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where (part of) one HF tensor lives in the backbone's parameters."""

    hf_name: str
    path: tuple[str, ...]  # in the backbone's param state
    layer: int | None  # index on the blocks' stacked "layers" axis; None outside the blocks
    layout: _Layout


def _encoder_slots(config: EncoderConfig) -> list[_Slot]:
    n, d, h = config.num_heads, config.head_dim, config.hidden_size
    slots = [_Slot("embeddings.word_embeddings.weight", ("embeddings", "word"), None, SAME),
             _Slot("embeddings.position_embeddings.weight", ("embeddings", "position"), None, SAME),
             _Slot("embeddings.token_type_embeddings.weight", ("embeddings", "token_type"), None,
                   SAME)]
    if config.pre_layer_norm:
        slots += [_Slot("encoder.LayerNorm.weight", ("final_norm", "scale"), None, SAME),
                  _Slot("encoder.LayerNorm.bias", ("final_norm", "bias"), None, SAME)]
    else:
        slots += [_Slot("embeddings.LayerNorm.weight", ("embeddings", "norm", "scale"), None, SAME),
                  _Slot("embeddings.LayerNorm.bias", ("embeddings", "norm", "bias"), None, SAME)]
    attn_ln = "attention.self_attn_layer_norm" if config.pre_layer_norm else "attention.output.LayerNorm"
    ffn_ln = "LayerNorm" if config.pre_layer_norm else "output.LayerNorm"
    heads_in, heads_bias, heads_out = _heads_in(n, d, h), _heads_bias(n, d), _heads_out(n, d, h)
    for i in range(config.num_layers):
        hf = f"encoder.layer.{i}."

        def slot(name, *path, layout=SAME):
            return _Slot(hf + name, ("layers", *path), i, layout)

        for proj in ("query", "key", "value"):
            slots.append(slot(f"attention.self.{proj}.weight", "attention", f"{proj}_kernel",
                              layout=heads_in))
            slots.append(slot(f"attention.self.{proj}.bias", "attention", f"{proj}_bias",
                              layout=heads_bias))
        slots += [slot("attention.output.dense.weight", "attention", "out_kernel", layout=heads_out),
                  slot("attention.output.dense.bias", "attention", "out_bias"),
                  slot("intermediate.dense.weight", "ffn", "in_kernel", layout=TRANSPOSE),
                  slot("intermediate.dense.bias", "ffn", "in_bias"),
                  slot("output.dense.weight", "ffn", "out_kernel", layout=TRANSPOSE),
                  slot("output.dense.bias", "ffn", "out_bias")]
        for torch_name, ours in (("weight", "scale"), ("bias", "bias")):
            slots += [slot(f"{attn_ln}.{torch_name}", "attention_norm", ours),
                      slot(f"{ffn_ln}.{torch_name}", "ffn_norm", ours)]
    return slots


def _decoder_slots(config: DecoderConfig) -> list[_Slot]:
    """BloomModel's tensor names (no prefix) -> the Decoder's parameters."""
    n, d, h = config.num_heads, config.head_dim, config.hidden_size
    slots = [_Slot("word_embeddings.weight", ("embeddings", "word"), None, SAME),
             _Slot("word_embeddings_layernorm.weight", ("embeddings", "norm", "scale"), None, SAME),
             _Slot("word_embeddings_layernorm.bias", ("embeddings", "norm", "bias"), None, SAME),
             _Slot("ln_f.weight", ("final_norm", "scale"), None, SAME),
             _Slot("ln_f.bias", ("final_norm", "bias"), None, SAME)]
    for i in range(config.num_layers):
        hf = f"h.{i}."

        def slot(name, *path, layout=SAME):
            return _Slot(hf + name, ("layers", *path), i, layout)

        for c, proj in enumerate(("query", "key", "value")):
            slots.append(slot("self_attention.query_key_value.weight", "attention",
                              f"{proj}_kernel", layout=_fused_qkv(c, n, d, h)))
            slots.append(slot("self_attention.query_key_value.bias", "attention", f"{proj}_bias",
                              layout=_fused_qkv_bias(c, n, d)))
        slots += [slot("self_attention.dense.weight", "attention", "out_kernel",
                       layout=_heads_out(n, d, h)),
                  slot("self_attention.dense.bias", "attention", "out_bias"),
                  slot("mlp.dense_h_to_4h.weight", "ffn", "in_kernel", layout=TRANSPOSE),
                  slot("mlp.dense_h_to_4h.bias", "ffn", "in_bias"),
                  slot("mlp.dense_4h_to_h.weight", "ffn", "out_kernel", layout=TRANSPOSE),
                  slot("mlp.dense_4h_to_h.bias", "ffn", "out_bias")]
        for torch_name, ours in (("weight", "scale"), ("bias", "bias")):
            slots += [slot(f"input_layernorm.{torch_name}", "attention_norm", ours),
                      slot(f"post_attention_layernorm.{torch_name}", "ffn_norm", ours)]
    return slots


# --------------------------------------------------------------------------- families


def _describe_encoder(config: EncoderConfig) -> str:
    return (f"an encoder with {config.num_layers} layers, hidden {config.hidden_size}, "
            f"{config.num_heads} heads, ffn {config.intermediate_size}, vocab {config.vocab_size}")


def _describe_decoder(config: DecoderConfig) -> str:
    return (f"a BLOOM decoder with {config.num_layers} layers, hidden {config.hidden_size}, "
            f"{config.num_heads} heads, vocab {config.vocab_size}")


@dataclasses.dataclass(frozen=True)
class _Family:
    module: type
    config_from_hf: Callable[..., Any]
    slots: Callable[[Any], list[_Slot]]
    head_prefixes: tuple[str, ...]
    buffer_suffixes: tuple[str, ...]
    describe: Callable[[Any], str]


_FAMILIES: dict[str, _Family] = {
    "encoder": _Family(Encoder, encoder_config_from_hf, _encoder_slots, _ENCODER_HEAD_PREFIXES,
                       _ENCODER_BUFFER_SUFFIXES, _describe_encoder),
    "decoder": _Family(Decoder, decoder_config_from_hf, _decoder_slots, _DECODER_HEAD_PREFIXES,
                       (), _describe_decoder),
}


def _family_of_config(config) -> _Family:
    if isinstance(config, DecoderConfig):
        return _FAMILIES["decoder"]
    if isinstance(config, EncoderConfig):
        return _FAMILIES["encoder"]
    raise TypeError(f"not a backbone config: {type(config).__name__}")


def _prefix(model_type: str) -> str:
    return _DECODER_PREFIX if MODEL_FAMILIES[model_type] == "decoder" else _ENCODER_TYPES[model_type][2]


# --------------------------------------------------------------------------- building


def _backbone_from_tensors(config, tensors: CheckpointTensors | Mapping[str, Any], *, source: str,
                           prefix: str, mesh=None, rules=None):
    """Build the config's backbone from HF-named tensors: (module, loaded names, skipped names).

    Without a mesh every parameter is read whole onto the default device. With one, each
    parameter is a global array placed by its logical names and ``rules``, and each device's
    shard is read from the checkpoint by itself (``jax.make_array_from_callback``).
    """
    family = _family_of_config(config)
    if not isinstance(tensors, CheckpointTensors):
        tensors = CheckpointTensors.from_arrays(tensors)
    # Checkpoints of *For<Task> models nest the backbone under a prefix ('roberta.',
    # 'transformer.'); names below are the stripped ones.
    strip = bool(prefix) and any(n.startswith(prefix) for n in tensors.names)
    local = {(n[len(prefix):] if strip and n.startswith(prefix) else n): n for n in tensors.names}

    slots = family.slots(config)
    groups: dict[str, list[_Slot]] = {}
    for slot in slots:
        groups.setdefault(slot.hf_name, []).append(slot)
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: family.module(config, rngs=ShapeOnlyRngs()))
    graphdef, state = nnx.split(abstract)
    flat = dict(nnx.to_flat_state(state))

    missing = sorted(k for k in groups if k not in local)
    skipped = sorted(k for k in local if k not in groups
                     and (k.startswith(family.head_prefixes) or k.endswith(family.buffer_suffixes)))
    unexpected = sorted(k for k in local if k not in groups and k not in skipped)
    wrong_shape = []
    for hf_name, group in groups.items():
        if hf_name not in local:
            continue
        slot = group[0]
        shape = flat[slot.path].shape
        ours = shape if slot.layer is None else shape[1:]  # one block's slice of the stack
        want, got = slot.layout.hf_shape(ours), tensors.shape(local[hf_name])
        if tuple(got) != tuple(want):
            wrong_shape.append(f"{hf_name}: got {tuple(got)}, expected {tuple(want)} for this config")
    problems = []
    if missing:
        problems.append(f"missing tensors ({len(missing)}): {', '.join(missing)}")
    if wrong_shape:
        problems.append(f"tensors with the wrong shape ({len(wrong_shape)}): "
                        f"{'; '.join(sorted(wrong_shape))}")
    if unexpected:
        problems.append(f"unexpected tensors ({len(unexpected)}): {', '.join(unexpected)}")
    if problems:
        raise CheckpointError(f"{source}: cannot load into {family.describe(config)}:\n  "
                              + "\n  ".join(problems))
    if skipped:
        log.warning("%s: skipped %d tensors that are not part of the backbone: %s",
                    source, len(skipped), ", ".join(skipped))

    by_path: dict[tuple[str, ...], dict[int | None, _Slot]] = {}
    for slot in slots:
        by_path.setdefault(slot.path, {})[slot.layer] = slot
    shardings = None
    if mesh is not None:
        shardings = dict(nnx.to_flat_state(shardings_from_metadata(
            state, mesh, DEFAULT_RULES if rules is None else rules)))

    for path, variable in flat.items():
        per_layer = by_path[path]
        shape = tuple(variable.shape)
        stacked = None not in per_layer

        def read(index: tuple[slice, ...], per_layer=per_layer, stacked=stacked,
                 shape=shape) -> np.ndarray:
            index = tuple(slice(*s.indices(dim)) for s, dim in zip(index, shape, strict=True))
            if not stacked:
                slot = per_layer[None]
                part = slot.layout.read(tensors.slicer(local[slot.hf_name]), index)
            else:
                part = np.stack([per_layer[layer].layout.read(
                    tensors.slicer(local[per_layer[layer].hf_name]), index[1:])
                    for layer in range(*index[0].indices(shape[0]))])
            want = tuple(len(range(*s.indices(dim))) for s, dim in zip(index, shape))
            if part.shape != want:
                raise AssertionError(f"{path}: read {part.shape} for the slice {index}, expected {want}")
            return np.ascontiguousarray(part, dtype=np.float32)

        full = tuple(slice(None) for _ in shape)
        if shardings is None:
            value = jnp.asarray(read(full))
        else:
            sharding = shardings[path]
            sharding = sharding.get_value() if isinstance(sharding, nnx.Variable) else sharding
            value = jax.make_array_from_callback(shape, sharding, read)
        variable.set_value(value)
    module = nnx.merge(graphdef, nnx.from_flat_state(flat))
    return module, tuple(sorted(groups)), tuple(skipped)


def encoder_from_tensors(config: EncoderConfig, tensors: CheckpointTensors | Mapping[str, Any], *,
                         source: str, prefix: str = "", mesh=None,
                         rules=None) -> tuple[Encoder, tuple[str, ...], tuple[str, ...]]:
    """Build an Encoder from HF-named tensors; returns (encoder, loaded names, skipped names)."""
    return _backbone_from_tensors(config, tensors, source=source, prefix=prefix, mesh=mesh,
                                  rules=rules)


def decoder_from_tensors(config: DecoderConfig, tensors: CheckpointTensors | Mapping[str, Any], *,
                         source: str, prefix: str = _DECODER_PREFIX, mesh=None,
                         rules=None) -> tuple[Decoder, tuple[str, ...], tuple[str, ...]]:
    """Build a Decoder from HF-named tensors (``BloomModel`` names, or ``BloomFor*`` ones
    under ``transformer.``); returns (decoder, loaded names, skipped names)."""
    return _backbone_from_tensors(config, tensors, source=source, prefix=prefix, mesh=mesh,
                                  rules=rules)


def load_backbone(name_or_path: str | os.PathLike, *, mesh=None,
                  rules: Sequence[tuple[str, Any]] | None = None,
                  **config_overrides) -> tuple[Encoder | Decoder, LoadReport]:
    """The backbone of an HF checkpoint (directory, offline name or hub id), of whichever
    family its ``model_type`` names (``MODEL_FAMILIES``): an Encoder or a Decoder.

    ``config_overrides`` replace config fields (e.g. ``dtype="bfloat16"``,
    ``hidden_dropout=0.0``, ``remat="full"``); shapes come from the checkpoint. With ``mesh``
    (and ``rules``, default ``sharding.DEFAULT_RULES``) the parameters are global arrays
    placed by their logical axis names, each device's shard read on its own from the files.
    """
    model_dir = resolve_model_dir(name_or_path)
    hf = read_hf_config(model_dir)
    source = str(model_dir / "config.json")
    model_type = _model_type(hf, source)
    family = _FAMILIES[MODEL_FAMILIES[model_type]]
    config = family.config_from_hf(hf, source=source, **config_overrides)
    tensors = open_weights(model_dir)
    backbone, loaded, skipped = _backbone_from_tensors(
        config, tensors, source=str(tensors.file), prefix=_prefix(model_type), mesh=mesh,
        rules=rules)
    if "lm_head.weight" in skipped and hf.get("tie_word_embeddings", True) is False:
        log.warning("%s: the checkpoint's LM head is not tied to the word embeddings and is "
                    "skipped; output_embedding() gives the word embeddings", tensors.file)
    return backbone, LoadReport(model_dir, tensors.file, loaded, skipped)


def load_encoder(name_or_path: str | os.PathLike, *, mesh=None,
                 rules: Sequence[tuple[str, Any]] | None = None,
                 **config_overrides) -> tuple[Encoder, LoadReport]:
    """``load_backbone`` for encoder checkpoints only; a decoder checkpoint is refused."""
    model_dir = resolve_model_dir(name_or_path)
    source = str(model_dir / "config.json")
    _model_type(read_hf_config(model_dir), source, "encoder")
    return load_backbone(model_dir, mesh=mesh, rules=rules, **config_overrides)


# --------------------------------------------------------------------------- checkpoints out

# (position_style, pre_layer_norm) -> (model_type, architecture) of the HF model that computes
# exactly what the Encoder does.
_EXPORT_TYPES = {
    ("absolute", False): ("bert", "BertModel"),
    ("roberta", False): ("xlm-roberta", "XLMRobertaModel"),
    ("roberta", True): ("xlm-roberta-xl", "XLMRobertaXLModel"),
}


def hf_config_dict(config: EncoderConfig | DecoderConfig) -> dict[str, Any]:
    """The HF ``config.json`` of a backbone: ``backbone_config_from_hf`` of it gives ``config``
    back (up to ``dtype`` and ``remat``, which are run-time choices, not the checkpoint's)."""
    if isinstance(config, DecoderConfig):
        return {
            "architectures": ["BloomModel"], "model_type": "bloom",
            "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "n_layer": config.num_layers, "n_head": config.num_heads,
            "layer_norm_epsilon": config.layer_norm_eps,
            "initializer_range": config.initializer_range,
            "hidden_dropout": config.hidden_dropout,
            "attention_dropout": config.attention_dropout,
            "apply_residual_connection_post_layernorm":
                config.apply_residual_connection_post_layernorm,
            "pad_token_id": config.pad_token_id, "pretraining_tp": 1, "slow_but_exact": False,
            "tie_word_embeddings": True, "dtype": "float32",
        }
    key = (config.position_style, config.pre_layer_norm)
    if key not in _EXPORT_TYPES:
        raise CheckpointError(
            f"no Hugging Face model has {'pre' if config.pre_layer_norm else 'post'}-LN blocks "
            f"with {config.position_style} positions; cannot export {_describe_encoder(config)}")
    model_type, architecture = _EXPORT_TYPES[key]
    return {
        "architectures": [architecture], "model_type": model_type,
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size, "hidden_act": "gelu",
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id, "position_embedding_type": "absolute",
        "dtype": "float32",
    }


def save_hf_checkpoint(backbone: Encoder | Decoder, directory: str | os.PathLike, *,
                       tokenizer=None) -> pathlib.Path:
    """Write ``backbone`` as an ordinary Hugging Face checkpoint directory.

    ``config.json`` (``hf_config_dict``) and ``model.safetensors`` with HF's tensor names and
    torch layouts, float32 (a Decoder as ``BloomModel``: fused ``query_key_value``, no prefix);
    plus the tokenizer's files when one is given (``tokenizer.save_pretrained``).
    ``load_backbone(directory)`` reads back the same parameters bit for bit, and
    ``transformers.AutoModel.from_pretrained(directory)`` is the same model (an encoder's
    pooler, which the Encoder does not have, starts random). The parameters are gathered to
    this host: call it where they are fully addressable (process 0 after
    ``multihost_utils.process_allgather`` on a pod).
    """
    import safetensors.numpy

    if getattr(backbone, "lora", None) is not None:
        raise ValueError("this backbone has LoRA adapters, which an HF checkpoint has no place "
                         "for: save models.lora.merge(backbone), the weights with the "
                         "adapters folded in")
    config = backbone.config
    hf_config = hf_config_dict(config)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = {path: np.asarray(variable[...], np.float32)
              for path, variable in nnx.to_flat_state(nnx.state(backbone, nnx.Param))}
    groups: dict[str, list[_Slot]] = {}
    for slot in _family_of_config(config).slots(config):
        groups.setdefault(slot.hf_name, []).append(slot)
    tensors = {}
    for hf_name, group in groups.items():
        values = [params[s.path] if s.layer is None else params[s.path][s.layer] for s in group]
        tensors[hf_name] = np.ascontiguousarray(group[0].layout.to_hf(*values))
    # format=pt: transformers refuses safetensors files without it.
    safetensors.numpy.save_file(tensors, directory / "model.safetensors",
                                metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


# The masked-LM head's tensors: (RoBERTa / XLM-R names, BERT names) -> our MaskedLMHead's.
_MLM_HEAD_NAMES = {
    ("lm_head.dense.weight", "cls.predictions.transform.dense.weight"): ("dense_kernel", True),
    ("lm_head.dense.bias", "cls.predictions.transform.dense.bias"): ("dense_bias", False),
    ("lm_head.layer_norm.weight", "cls.predictions.transform.LayerNorm.weight"): ("norm.scale",
                                                                                  False),
    ("lm_head.layer_norm.bias", "cls.predictions.transform.LayerNorm.bias"): ("norm.bias", False),
    ("lm_head.bias", "cls.predictions.bias"): ("out_bias", False),
}


def load_mlm_head(name_or_path: str | os.PathLike, config: EncoderConfig):
    """The checkpoint's own masked-LM head (``*ForMaskedLM`` checkpoints: dense, LayerNorm,
    output bias; the decoder is tied to the word embeddings) as a ``MaskedLMHead``, or None
    when the checkpoint has none (an encoder-only export). Continued MLM should start from
    it: a fresh head's first updates would push random gradients into the encoder."""
    from xstilts_jax.models.heads import MaskedLMHead

    model_dir = resolve_model_dir(name_or_path)
    tensors = open_weights(model_dir)
    weights_file = tensors.file
    head = MaskedLMHead(config, rngs=nnx.Rngs(params=0))
    found = {}
    for names, (ours, transpose) in _MLM_HEAD_NAMES.items():
        present = [n for n in names if n in tensors]
        if present:
            value = np.asarray(tensors.read(present[0]), np.float32)
            found[ours] = value.T if transpose else value
    if not found:
        return None
    if len(found) != len(_MLM_HEAD_NAMES):
        missing = [names[0] for names, (ours, _) in _MLM_HEAD_NAMES.items() if ours not in found]
        raise CheckpointError(f"{weights_file}: a partial masked-LM head (missing "
                              f"{', '.join(missing)})")
    for ours, value in found.items():
        module, _, leaf = ours.rpartition(".")
        param = getattr(getattr(head, module) if module else head, leaf)
        if param.shape != value.shape:
            raise CheckpointError(f"{weights_file}: masked-LM head tensor for {ours} has shape "
                                  f"{value.shape}, expected {param.shape}")
        param.set_value(jnp.asarray(value))
    log.info("%s: loaded the masked-LM head (%d tensors)", weights_file, len(found))
    return head
