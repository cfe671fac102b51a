"""Exact k-nearest-neighbour search by inner product / cosine: the kernel under BUCC and Tatoeba.

``knn(queries, keys, k)`` returns, for every query row, the ``k`` keys with the highest
inner product (cosine similarity with ``normalize=True``, the default), exactly: every query
is scored against every key, nothing is approximated (no ``lax.approx_max_k``, no index).

How it is computed
    The score matrix is never built whole. Keys are cut into *key blocks* of ``key_block_size``
    rows and queries into *query blocks* of ``block_size`` rows; one jitted call scores one
    query block against one key block per device (``[block, d] @ [d, key_block]`` with float32
    accumulation, ``preferred_element_type=float32``), takes ``lax.top_k`` of it, and merges
    that into the query block's running top-k (``top_k`` of the running ``k`` and the new
    candidates side by side). Memory is O(block x key_block) for scores, plus one key chunk
    and one query block on the device: the embeddings themselves stay where the caller has
    them (host numpy arrays are streamed block by block, never copied whole; device arrays
    are sliced on the device).

    The loop over blocks is Python over jitted calls: each call is ~10 GFLOP with the CPU
    defaults (0.1 s on two cores), so dispatch costs nothing measurable, and streaming from
    the host is what keeps the peak memory at the two embedding sets plus a block. The key
    loop is the outer one: each key block is sent to the device once (normalised once), and
    the small query blocks are re-sent for every key chunk.

    Every block has a fixed shape: the last query block is padded with zero rows (dropped
    from the result) and the last key block with zero rows whose scores are masked to -inf
    before the top-k, so one compiled program (two: with and without the mask) serves every
    block.

Exactness and tie-breaking
    Results are ordered by score, highest first; equal scores are ordered by key index, lower
    first. ``lax.top_k`` documents that rule ("if two elements are equal, the lower-index
    element appears first"), and every merge puts the candidates in increasing key order
    (running top-k, then the new block, then devices in mesh order), so each merge is exact
    top-k under the total order (score descending, index ascending) and so is the result,
    whatever the order of merges. Duplicate key rows therefore come back lowest index first.
    (Tested: XLA:CPU's matmul gives bitwise equal scores for equal columns of a block, and all
    blocks share one shape.)

Devices (``mesh``)
    With a mesh, the *keys* are sharded: each step sends ``n_devices`` key blocks, one per
    device (over all mesh axes, flattened), and the query block replicated; each device
    scores its key block, takes its local top-k, the ``[block, k]`` candidates are
    all-gathered in device order and merged. This was chosen over sharding query rows
    because it is exact with O(key_block) memory per device (row sharding needs every key on
    every device), the collective is tiny (``k`` candidates per query per device) and the
    matmul per device has the same shape as on one device. Block shapes depend only on the
    data and the block sizes, never on the device count, and key blocks start at the same
    multiples of ``key_block_size`` everywhere, so a mesh of 8 gives bitwise the same scores
    and indices as one device (tested).

Precision
    With ``normalize=True`` both sides are L2-normalised in float32 (a zero vector stays zero
    and scores 0 with everything) before the product. ``compute_dtype`` (default float32)
    is the matmul input type; float32 runs at ``Precision.HIGHEST`` (no TF32 or bf16 passes
    on GPU/TPU). ``jnp.bfloat16`` halves the key memory and runs faster where
    the hardware has bf16 matmuls, accumulating in float32; its scores differ from float32 by
    bf16 rounding (~1e-2 relative), so near-ties may reorder. Inputs may be float32, bfloat16,
    float16 or float64 (cast to float32 per block).

On an accelerator pass device arrays (``jax.device_put``), so query blocks are sliced on the
device rather than sent from the host once per key chunk; on the CPU backend numpy inputs are
best (they are not copied whole).
"""

from __future__ import annotations

import collections
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Block sizes per backend: on CPU a [1024, 768] x [768, 8192] call is ~13 GFLOP, big enough
# that dispatch is free and small enough (32 MB of scores) to stay in cache-friendly sizes;
# accelerators need bigger calls to amortise dispatch.
_DEFAULT_BLOCKS = {"cpu": (1024, 8192)}
_ACCELERATOR_BLOCKS = (4096, 32768)
# Calls dispatched ahead of the one being waited on: bounds the query/key blocks in flight
# (each a fresh host->device copy) while keeping the device busy.
_MAX_IN_FLIGHT = 4
_CHECK_ROWS = 16384  # rows per chunk of the host-side finiteness check (bounded temporaries)


def default_block_sizes(backend: str | None = None) -> tuple[int, int]:
    """(query block, key block) rows used when ``knn`` is not given them."""
    backend = backend or jax.default_backend()
    return _DEFAULT_BLOCKS.get(backend, _ACCELERATOR_BLOCKS)


def _l2_normalize(x: jax.Array) -> jax.Array:
    """Rows scaled to unit L2 norm in float32; zero rows stay zero."""
    x = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x * jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("normalize", "compute_dtype"))
def _prepare(x, *, normalize: bool, compute_dtype):
    """A block as the matmul consumes it: normalised in float32 (optionally), then cast."""
    x = _l2_normalize(x) if normalize else x.astype(jnp.float32)
    return x.astype(compute_dtype)


def _block_top_k(q, keys, best_v, best_i, offset, n_keys, *, k: int, normalize: bool,
                 compute_dtype, masked: bool, axes: tuple[str, ...] | None):
    """One query block against this device's key block, merged into the running top-k.

    q [B, d] raw queries; keys [KB, d] prepared; best_v/best_i [B, k] running top-k (key
    order preserved on ties); offset: key index of the first row of this step's chunk.
    """
    qn = _prepare(q, normalize=normalize, compute_dtype=compute_dtype)
    # HIGHEST: a true float32 product where the default would be TF32/bf16 passes (GPU/TPU).
    precision = lax.Precision.HIGHEST if compute_dtype == jnp.float32 else None
    scores = lax.dot_general(qn, keys, (((1,), (1,)), ((), ())), precision=precision,
                             preferred_element_type=jnp.float32)  # [B, KB]
    block = keys.shape[0]
    start = offset if axes is None else offset + lax.axis_index(axes) * block
    if masked:  # zero-padded key rows past the end: never selected
        column = start + lax.broadcasted_iota(jnp.int32, (1, block), 1)
        scores = jnp.where(column < n_keys, scores, -jnp.inf)
    values, index = lax.top_k(scores, k)
    index = index + start
    if axes is not None:  # [B, n_devices * k], devices in key order
        values = lax.all_gather(values, axes, axis=1, tiled=True, to="invarying")
        index = lax.all_gather(index, axes, axis=1, tiled=True, to="invarying")
    # Running candidates first: they all have lower key indices than this step's.
    values = jnp.concatenate([best_v, values], axis=1)
    index = jnp.concatenate([best_i, index], axis=1)
    values, pos = lax.top_k(values, k)
    return values, jnp.take_along_axis(index, pos, axis=1)


@functools.lru_cache(maxsize=64)
def _step_fn(k: int, normalize: bool, compute_dtype, masked: bool, mesh: Mesh | None):
    """The jitted step for these static settings (one per mesh)."""
    kernel = functools.partial(_block_top_k, k=k, normalize=normalize,
                               compute_dtype=compute_dtype, masked=masked,
                               axes=None if mesh is None else tuple(mesh.axis_names))
    if mesh is None:
        return jax.jit(kernel)
    rep, keys = PartitionSpec(), PartitionSpec(tuple(mesh.axis_names), None)
    mapped = jax.shard_map(kernel, mesh=mesh, in_specs=(rep, keys, rep, rep, rep, rep),
                           out_specs=(rep, rep))
    return jax.jit(mapped)


def _validate(name: str, x) -> Any:
    """2-D floating array (numpy or jax); numpy array-likes are converted."""
    if not isinstance(x, jax.Array):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be floating point (float32 or bfloat16), got {x.dtype}")
    return x


def _all_finite(x) -> bool:
    if isinstance(x, jax.Array):
        return bool(jnp.isfinite(x).all())
    # chunked, so the temporary boolean array stays small
    return all(np.isfinite(x[i:i + _CHECK_ROWS]).all() for i in range(0, x.shape[0], _CHECK_ROWS))


def _rows(x, start: int, stop: int, size: int, dtype) -> Any:
    """Rows [start, stop) of x zero-padded to `size` rows (host numpy or device array)."""
    part = x[start:stop]
    if isinstance(x, jax.Array):
        part = part.astype(dtype) if part.dtype != dtype else part
        return part if stop - start == size else jnp.pad(part, ((0, size - (stop - start)), (0, 0)))
    if stop - start == size:
        return part if part.dtype == dtype else part.astype(dtype)
    padded = np.zeros((size, x.shape[1]), dtype)
    padded[:stop - start] = part
    return padded


def _input_dtype(x):
    """float32 or bfloat16 stay as they are on the way to the device; others become float32."""
    return x.dtype if x.dtype in (jnp.float32, jnp.bfloat16) else jnp.dtype(jnp.float32)


def knn(queries, keys, k: int, *, block_size: int | None = None, key_block_size: int | None = None,
        mesh: Mesh | None = None, normalize: bool = True,
        compute_dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` keys of every query by inner product (cosine when ``normalize``).

    Args:
      queries: ``[n_q, d]`` float array (numpy or jax).
      keys: ``[n_k, d]`` float array (numpy or jax), ``k <= n_k``.
      k: neighbours per query.
      block_size: query rows per step (default: 1024 on CPU, 4096 on accelerators).
      key_block_size: key rows per device per step (default: 8192 on CPU, 32768 on
        accelerators; capped at ``n_k``). Results depend on block sizes only through float
        rounding order, never on the device count.
      mesh: devices to shard the keys over (all its axes, flattened); None: the default device.
      normalize: L2-normalise both sides (float32) first, i.e. cosine similarity.
      compute_dtype: matmul input type, float32 (default) or bfloat16; accumulation is float32.

    Returns:
      ``(scores, indices)``: numpy ``float32 [n_q, k]`` and ``int32 [n_q, k]``, best first;
      equal scores are ordered by key index, lower first.

    Raises:
      ValueError: non-2-D or non-float inputs, different ``d``, ``k`` not in ``[1, n_k]``,
        non-finite values, bad block sizes, or scores that overflow float32.
    """
    queries = _validate("queries", queries)
    keys = _validate("keys", keys)
    n_q, d = queries.shape
    n_k, d_k = keys.shape
    if d != d_k:
        raise ValueError(f"queries and keys have different dimensions: {d} vs {d_k}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if k > n_k:
        raise ValueError(f"k={k} is larger than the number of keys ({n_k})")
    if n_k >= 2**31 - 1:
        raise ValueError(f"{n_k} keys do not fit int32 indices")
    default_q, default_kb = default_block_sizes()
    block_size = default_q if block_size is None else block_size
    key_block_size = default_kb if key_block_size is None else key_block_size
    for name, value in (("block_size", block_size), ("key_block_size", key_block_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    compute_dtype = jnp.dtype(jnp.float32 if compute_dtype is None else compute_dtype)
    if compute_dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
        raise ValueError(f"compute_dtype must be float32, bfloat16 or float16, got {compute_dtype}")
    for name, x in (("queries", queries), ("keys", keys)):
        if not _all_finite(x):
            raise ValueError(f"{name} contain NaN or infinite values")
    if n_q == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int32)

    # Shapes depend on the data and block sizes only (not on the mesh): bitwise equal results.
    q_rows = min(int(block_size), n_q)
    kb_rows = max(k, min(int(key_block_size), n_k))
    n_dev = 1 if mesh is None else mesh.devices.size
    chunk = kb_rows * n_dev  # key rows per step (one key block per device)
    n_chunks = -(-n_k // chunk)
    n_qblocks = -(-n_q // q_rows)
    if mesh is None:
        q_sharding = key_sharding = None
    else:
        q_sharding = NamedSharding(mesh, PartitionSpec())
        key_sharding = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names), None))

    def put(x, sharding):
        return jax.device_put(x) if sharding is None else jax.device_put(x, sharding)

    q_dtype, k_dtype = _input_dtype(queries), _input_dtype(keys)
    best_v = [put(np.full((q_rows, k), -np.inf, np.float32), q_sharding)] * n_qblocks
    best_i = [put(np.full((q_rows, k), -1, np.int32), q_sharding)] * n_qblocks
    in_flight: collections.deque = collections.deque()
    for c in range(n_chunks):
        start = c * chunk
        raw = _rows(keys, start, min(start + chunk, n_k), chunk, k_dtype)
        key_block = put(raw, key_sharding)
        if normalize or key_block.dtype != compute_dtype:
            key_block = _prepare(key_block, normalize=normalize, compute_dtype=compute_dtype)
        step = _step_fn(k, normalize, compute_dtype, start + chunk > n_k, mesh)
        offset, count = np.int32(start), np.int32(n_k)
        for j in range(n_qblocks):
            q0 = j * q_rows
            q = put(_rows(queries, q0, min(q0 + q_rows, n_q), q_rows, q_dtype), q_sharding)
            best_v[j], best_i[j] = step(q, key_block, best_v[j], best_i[j], offset, count)
            in_flight.append(best_v[j])
            if len(in_flight) > _MAX_IN_FLIGHT:
                in_flight.popleft().block_until_ready()
    scores = np.concatenate([np.asarray(v) for v in best_v])[:n_q]
    indices = np.concatenate([np.asarray(i) for i in best_i])[:n_q]
    if not np.isfinite(scores).all():
        raise ValueError("scores overflowed float32 (inner products of very large vectors); "
                         "normalize or rescale the inputs")
    return scores, indices
