"""Hugging Face checkpoints in (config.json + safetensors / pytorch_model.bin -> Encoder) and out.

Supports BERT (``bert``), XLM-R (``xlm-roberta``, ``roberta``) and XLM-R XL/XXL
(``xlm-roberta-xl``), from a local directory, a named offline model
(``multilingual-e5-small``, see ``offline.py``) or, when online, a hub id. Every tensor of
the checkpoint is accounted for: encoder tensors are converted, known task-head tensors
(pooler, LM head, classifiers) are skipped *and reported*, anything else is an error, as is
any encoder tensor that is missing or mis-shaped.

Checkpoints out: ``save_hf_checkpoint`` writes an Encoder (one trained or pretrained here) as
an ordinary HF directory that this loader and ``transformers`` both read. The blocks' tensors
(``encoder.layer.<i>.*``) are slices of the Encoder's stacked per-block parameters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import struct
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.models.encoder import Encoder, EncoderConfig

log = logging.getLogger(__name__)

_MODEL_TYPES = {
    # model_type -> (position_style, pre_layer_norm, prefix used by *For<Task> checkpoints)
    "bert": ("absolute", False, "bert."),
    "roberta": ("roberta", False, "roberta."),
    "xlm-roberta": ("roberta", False, "roberta."),
    "xlm-roberta-xl": ("roberta", True, "roberta."),
}
# Tensors of task heads that an encoder checkpoint may carry; they are skipped and reported.
_HEAD_PREFIXES = ("pooler.", "lm_head.", "cls.", "classifier.", "qa_outputs.")
# Non-persistent buffers some older checkpoints saved.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be turned into an Encoder; the message says why."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What the loader did with each checkpoint tensor (nothing is dropped silently)."""

    path: pathlib.Path
    weights_file: pathlib.Path
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]  # task-head tensors and buffers, not part of the encoder


# --------------------------------------------------------------------------- locating


def resolve_model_dir(name_or_path: str | os.PathLike) -> pathlib.Path:
    """A local checkpoint directory for a path, an offline model name or a hub id."""
    path = pathlib.Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from xstilts_jax.models import offline

    name = str(name_or_path)
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


def encoder_config_from_hf(hf: Mapping[str, Any], *, source: str = "config.json",
                           **overrides) -> EncoderConfig:
    """EncoderConfig from an HF config dict; unsupported variants raise CheckpointError."""
    model_type = hf.get("model_type")
    if model_type not in _MODEL_TYPES:
        raise CheckpointError(
            f"{source}: model_type {model_type!r} is not supported; expected one of {sorted(_MODEL_TYPES)}")
    position_style, pre_ln, _ = _MODEL_TYPES[model_type]
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


def read_hf_config(model_dir: pathlib.Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json (expected a Hugging Face checkpoint directory)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e


# --------------------------------------------------------------------------- weights

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Memory-mapped arrays of a .safetensors file (bf16 included, via ml_dtypes)."""
    import ml_dtypes

    dtypes = dict(_ST_DTYPES, BF16=ml_dtypes.bfloat16)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: unreadable safetensors header: {e}") from e
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        if end > data.size:
            raise CheckpointError(f"{path}: tensor {name} extends past the end of the file (truncated?)")
        out[name] = data[begin:end].view(dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def _read_torch_bin(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise CheckpointError(
            f"{path}: reading pytorch_model.bin needs torch (pip install torch), "
            "or convert the checkpoint to model.safetensors") from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in state.items()}


def read_weights(model_dir: pathlib.Path) -> tuple[dict[str, np.ndarray], pathlib.Path]:
    """All tensors of a checkpoint directory (single file or sharded with an index)."""
    candidates: list[tuple[str, Callable[[pathlib.Path], dict]]] = [
        ("model.safetensors", read_safetensors), ("pytorch_model.bin", _read_torch_bin)]
    for filename, reader in candidates:
        single, index = model_dir / filename, model_dir / f"{filename}.index.json"
        if single.is_file():
            return reader(single), single
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            tensors: dict[str, np.ndarray] = {}
            for shard in sorted(set(weight_map.values())):
                tensors.update(reader(model_dir / shard))
            return tensors, index
    raise CheckpointError(
        f"{model_dir}: no weights found (expected model.safetensors, pytorch_model.bin "
        "or a sharded *.index.json)")


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where one HF tensor lives in the Encoder's parameters, and how its layout maps."""

    path: tuple[str, ...]  # in the Encoder's param state
    layer: int | None  # index on the blocks' stacked "layers" axis; None outside the blocks
    to_ours: Callable[[np.ndarray], np.ndarray]  # torch layout -> ours
    to_hf: Callable[[np.ndarray], np.ndarray]  # ours -> torch layout


def _hf_to_encoder_names(config: EncoderConfig) -> dict[str, _Slot]:
    """HF tensor name -> its slot in the Encoder (the blocks' tensors share stacked params)."""
    n, d, h = config.num_heads, config.head_dim, config.hidden_size
    same = (lambda w: w, lambda w: w)
    transpose = (lambda w: w.T, lambda w: w.T)
    heads_in = (lambda w: w.T.reshape(h, n, d),  # [n*d, h] -> [h, n, d]
                lambda w: w.reshape(h, n * d).T)
    heads_bias = (lambda b: b.reshape(n, d), lambda b: b.reshape(n * d))
    heads_out = (lambda w: w.T.reshape(n, d, h),  # [h, n*d] -> [n, d, h]
                 lambda w: w.reshape(n * d, h).T)

    m: dict[str, _Slot] = {
        "embeddings.word_embeddings.weight": _Slot(("embeddings", "word"), None, *same),
        "embeddings.position_embeddings.weight": _Slot(("embeddings", "position"), None, *same),
        "embeddings.token_type_embeddings.weight": _Slot(("embeddings", "token_type"), None,
                                                         *same),
    }
    if config.pre_layer_norm:
        m["encoder.LayerNorm.weight"] = _Slot(("final_norm", "scale"), None, *same)
        m["encoder.LayerNorm.bias"] = _Slot(("final_norm", "bias"), None, *same)
    else:
        m["embeddings.LayerNorm.weight"] = _Slot(("embeddings", "norm", "scale"), None, *same)
        m["embeddings.LayerNorm.bias"] = _Slot(("embeddings", "norm", "bias"), None, *same)
    attn_ln = "attention.self_attn_layer_norm" if config.pre_layer_norm else "attention.output.LayerNorm"
    ffn_ln = "LayerNorm" if config.pre_layer_norm else "output.LayerNorm"
    for i in range(config.num_layers):
        hf = f"encoder.layer.{i}."

        def slot(*path, layout):
            return _Slot(("layers", *path), i, *layout)

        for proj in ("query", "key", "value"):
            m[f"{hf}attention.self.{proj}.weight"] = slot("attention", f"{proj}_kernel", layout=heads_in)
            m[f"{hf}attention.self.{proj}.bias"] = slot("attention", f"{proj}_bias", layout=heads_bias)
        m[f"{hf}attention.output.dense.weight"] = slot("attention", "out_kernel", layout=heads_out)
        m[f"{hf}attention.output.dense.bias"] = slot("attention", "out_bias", layout=same)
        m[f"{hf}intermediate.dense.weight"] = slot("ffn", "in_kernel", layout=transpose)
        m[f"{hf}intermediate.dense.bias"] = slot("ffn", "in_bias", layout=same)
        m[f"{hf}output.dense.weight"] = slot("ffn", "out_kernel", layout=transpose)
        m[f"{hf}output.dense.bias"] = slot("ffn", "out_bias", layout=same)
        for torch_name, ours_name in (("weight", "scale"), ("bias", "bias")):
            m[f"{hf}{attn_ln}.{torch_name}"] = slot("attention_norm", ours_name, layout=same)
            m[f"{hf}{ffn_ln}.{torch_name}"] = slot("ffn_norm", ours_name, layout=same)
    return m


def _strip_prefix(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Checkpoints of *For<Task> models nest the encoder under e.g. 'roberta.'."""
    if any(k.startswith(prefix) for k in tensors):
        return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}
    return tensors


def _abstract_encoder(config: EncoderConfig):
    """Graph and shapes of the Encoder without allocating (or initialising) its weights."""
    abstract = nnx.eval_shape(lambda: Encoder(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    return graphdef, state


def encoder_from_tensors(config: EncoderConfig, tensors: Mapping[str, np.ndarray], *,
                         source: str, prefix: str = "") -> tuple[Encoder, tuple[str, ...], tuple[str, ...]]:
    """Build an Encoder from HF-named tensors; returns (encoder, loaded names, skipped names)."""
    tensors = _strip_prefix(dict(tensors), prefix) if prefix else dict(tensors)
    names = _hf_to_encoder_names(config)
    graphdef, state = _abstract_encoder(config)
    flat = dict(nnx.to_flat_state(state))

    missing = sorted(k for k in names if k not in tensors)
    skipped = sorted(k for k in tensors if k not in names
                     and (k.startswith(_HEAD_PREFIXES) or k.endswith(_BUFFER_SUFFIXES)))
    unexpected = sorted(k for k in tensors if k not in names and k not in skipped)
    wrong_shape, values = [], {}
    for hf_name, slot in names.items():
        if hf_name not in tensors:
            continue
        shape = flat[slot.path].shape
        want = shape if slot.layer is None else shape[1:]  # one block's slice of the stack
        array = np.asarray(tensors[hf_name])
        try:
            value = slot.to_ours(array)
        except ValueError:
            value = None
        if value is None or value.shape != want:
            wrong_shape.append(f"{hf_name}: got {tuple(array.shape)}, expected "
                               f"{_torch_shape(hf_name, want)} for this config")
            continue
        if slot.layer is None:
            values[slot.path] = value
        else:  # the blocks' tensors are written into their stacked parameter, layer by layer
            if slot.path not in values:
                values[slot.path] = np.empty(shape, np.float32)
            values[slot.path][slot.layer] = value
    problems = []
    if missing:
        problems.append(f"missing tensors ({len(missing)}): {', '.join(missing)}")
    if wrong_shape:
        problems.append(f"tensors with the wrong shape ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
    if unexpected:
        problems.append(f"unexpected tensors ({len(unexpected)}): {', '.join(unexpected)}")
    if problems:
        raise CheckpointError(f"{source}: cannot load into {_describe(config)}:\n  " + "\n  ".join(problems))
    if skipped:
        log.warning("%s: skipped %d tensors that are not part of the encoder: %s",
                    source, len(skipped), ", ".join(skipped))

    for path, variable in flat.items():
        variable.set_value(jnp.asarray(values[path], dtype=jnp.float32))
    encoder = nnx.merge(graphdef, nnx.from_flat_state(flat))
    return encoder, tuple(sorted(names)), tuple(skipped)


def _torch_shape(hf_name: str, ours: tuple[int, ...]) -> tuple[int, ...]:
    """Our param shape expressed in the checkpoint's (torch) layout, for error messages."""
    if hf_name.endswith(("query.weight", "key.weight", "value.weight")):
        return (ours[1] * ours[2], ours[0])
    if hf_name.endswith("attention.output.dense.weight"):
        return (ours[2], ours[0] * ours[1])
    if hf_name.endswith(("query.bias", "key.bias", "value.bias")):
        return (ours[0] * ours[1],)
    if hf_name.endswith(("intermediate.dense.weight", "output.dense.weight")):
        return (ours[1], ours[0])
    return ours


def _describe(config: EncoderConfig) -> str:
    return (f"an encoder with {config.num_layers} layers, hidden {config.hidden_size}, "
            f"{config.num_heads} heads, ffn {config.intermediate_size}, vocab {config.vocab_size}")


def load_encoder(name_or_path: str | os.PathLike, **config_overrides) -> tuple[Encoder, LoadReport]:
    """Encoder with the weights of an HF checkpoint (directory, offline name or hub id).

    ``config_overrides`` replace EncoderConfig fields (e.g. ``dtype="bfloat16"``,
    ``hidden_dropout=0.0``, ``remat="full"``); shapes come from the checkpoint.
    """
    model_dir = resolve_model_dir(name_or_path)
    hf = read_hf_config(model_dir)
    config = encoder_config_from_hf(hf, source=str(model_dir / "config.json"), **config_overrides)
    tensors, weights_file = read_weights(model_dir)
    prefix = _MODEL_TYPES[hf["model_type"]][2]
    encoder, loaded, skipped = encoder_from_tensors(config, tensors, source=str(weights_file),
                                                    prefix=prefix)
    return encoder, LoadReport(model_dir, weights_file, loaded, skipped)


# --------------------------------------------------------------------------- checkpoints out

# (position_style, pre_layer_norm) -> (model_type, architecture) of the HF model that computes
# exactly what the Encoder does.
_EXPORT_TYPES = {
    ("absolute", False): ("bert", "BertModel"),
    ("roberta", False): ("xlm-roberta", "XLMRobertaModel"),
    ("roberta", True): ("xlm-roberta-xl", "XLMRobertaXLModel"),
}


def hf_config_dict(config: EncoderConfig) -> dict[str, Any]:
    """The HF ``config.json`` of an encoder: ``encoder_config_from_hf`` of it gives ``config``
    back (up to ``dtype`` and ``remat``, which are run-time choices, not the checkpoint's)."""
    key = (config.position_style, config.pre_layer_norm)
    if key not in _EXPORT_TYPES:
        raise CheckpointError(
            f"no Hugging Face model has {'pre' if config.pre_layer_norm else 'post'}-LN blocks "
            f"with {config.position_style} positions; cannot export {_describe(config)}")
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


def save_hf_checkpoint(encoder: Encoder, directory: str | os.PathLike, *,
                       tokenizer=None) -> pathlib.Path:
    """Write ``encoder`` as an ordinary Hugging Face checkpoint directory.

    ``config.json`` (``hf_config_dict``) and ``model.safetensors`` with HF's tensor names and
    torch layouts, float32; plus the tokenizer's files when one is given
    (``tokenizer.save_pretrained``). ``load_encoder(directory)`` reads back the same
    parameters bit for bit, and ``transformers.AutoModel.from_pretrained(directory)`` is the
    same model (its pooler, which the Encoder does not have, starts random). The parameters
    are gathered to this host: call it where they are fully addressable (process 0 after
    ``multihost_utils.process_allgather`` on a pod).
    """
    import safetensors.numpy

    config = encoder.config
    hf_config = hf_config_dict(config)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = {path: np.asarray(variable[...], np.float32)
              for path, variable in nnx.to_flat_state(nnx.state(encoder, nnx.Param))}
    tensors = {}
    for hf_name, slot in _hf_to_encoder_names(config).items():
        value = params[slot.path] if slot.layer is None else params[slot.path][slot.layer]
        tensors[hf_name] = np.ascontiguousarray(slot.to_hf(value))
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
    from flax import nnx

    from xstilts_jax.models.heads import MaskedLMHead

    model_dir = resolve_model_dir(name_or_path)
    tensors, weights_file = read_weights(model_dir)
    head = MaskedLMHead(config, rngs=nnx.Rngs(params=0))
    found = {}
    for names, (ours, transpose) in _MLM_HEAD_NAMES.items():
        present = [n for n in names if n in tensors]
        if present:
            value = np.asarray(tensors[present[0]], np.float32)
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
