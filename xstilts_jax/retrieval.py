"""Exact k-nearest-neighbour search by inner product / cosine: the kernel under BUCC and Tatoeba.

``knn(queries, keys, k)`` returns, for every query row, the ``k`` keys with the highest
inner product (cosine similarity with ``normalize=True``, the default), exactly: every query
is scored against every key, nothing is approximated (no ``lax.approx_max_k``, no index).
``knn_both_ways(queries, keys, k)`` also returns every key's top-k queries, from the same
score blocks: what BUCC's ratio margin needs (neighbours source -> target and target ->
source) for the FLOPs of one search instead of two.

How it is computed
    The score matrix is never built whole. Queries are cut into *query blocks* of about
    ``block_size`` rows and keys into *key blocks* of about ``key_block_size`` rows (spread
    evenly, rounded up to multiples of 8 / 32: ``block_shape``). The basic step scores one
    query block against one key block (``[block, d] @ [d, key_block]``, float32 accumulation
    via ``preferred_element_type``), takes the top k of it and merges that into the query
    block's running top-k (``lax.top_k`` of the running k and the new candidates side by
    side). Scores take O(block x key_block) memory (8 MB with the CPU defaults 512 x 4096),
    whatever N is.

    Keys are chunked too, not only queries, because the embeddings must not be copied whole:
    numpy inputs stay on the host and go to the device one key chunk and one query group at
    a time (``jax.device_put`` copies any numpy array that is not 64-byte aligned, which is
    most of them), so the peak memory is the two embedding sets plus a few blocks. The key
    loop is the outer one: each key chunk is sent and L2-normalised once; the smaller query
    blocks are re-sent for every chunk (Q x N/key_block bytes of copies: ~1 % of the time on
    CPU). Device arrays (``jax.Array`` inputs) are sliced on the device instead.

    Each jitted call takes a group of query blocks, ~2048 query rows (4 blocks of 512, 2 of
    1024), against one key chunk and runs them one after the other with ``lax.scan``. That is a Python loop over jitted calls where each call
    is ~13 GFLOP (~0.1 s on two CPU cores), so dispatch is free; grouping blocks into one
    call measured ~5 % faster on CPU than one block per call (XLA sets up the score buffer
    once per call) and as fast as one ``lax.map`` over every query block in a single jit
    (which would need all queries on the device: a full copy). Each call is waited for before
    the next is sent: queueing one ahead was no faster on CPU and kept a second query group
    and score buffer alive, ~40 MB more peak at N = 20k.

    Block shapes are fixed: the last query block is zero-padded (those rows are dropped) and
    the last key block zero-padded with its scores masked to -inf before the top-k, so one
    compiled program serves every step (two: with and without the mask; and one more group
    size when the query blocks do not divide into whole groups).

    The top-k of a [block, key_block] score block uses group maxima (``_top_k``): the top-k
    of 32-column group maxima, then a top-k over those groups' columns. It is exact (see
    there) and cuts the top-k from ~15 % to ~5 % of a step on CPU.

Both ways (``knn_both_ways``)
    The same loop, and each score block also gives its column-wise top-k (``_column_top_k``:
    maxima of 8-row groups, one element-wise max over the block's rows; the top-k groups
    picked through maxima of 8 groups (``_top_groups``), then their rows, each pick k passes
    of a column max over a few rows, so nothing is transposed), merged into the running
    top-k queries of the key chunk; that state ([k, key chunk] values and indices) is
    carried through the query groups (the ``scan``'s carry) and fetched to the host when the
    chunk is done. Padded query rows of the last block are masked like padded keys. With a
    mesh each device keeps its own key block's state: every device sees every query, so the
    backward direction needs no collective.
    On XLA:CPU the column work is bound by per-operation costs (each pass over a [rows,
    cols] array is its own loop, ~50-150 us), so the design counts passes: picking the top
    k of a 1024-row block's 128 group maxima directly took k passes over 128 rows, through
    16 super-groups it takes k passes over 16 + 32 rows; the k picked indices are sorted by
    a compare-exchange network (XLA:CPU's sort of a [4, cols] array along its rows took
    ~0.3 ms) and the picked groups gathered flat (``_take_groups``: XLA lowered
    ``take_along_axis`` to a select over every group, reading the whole score block). One
    jitted call (two 1024-row blocks against 3872 keys, 2 cores) measured 9.4 ms over the
    one-way call's 71 ms before, 7.3-9.4 ms after (medians of 20 alternating rounds on a
    noisy machine); each block's product takes ~33 ms and its row top-k ~2.3 ms.

Exactness and tie-breaking
    Results are ordered by score, highest first; equal scores are ordered by key index, lower
    first. ``lax.top_k`` documents that rule ("if two elements are equal, the lower-index
    element appears first"), and every merge puts the candidates in increasing key order
    (running top-k, then the new block, then devices in mesh order; the groups' columns in
    column order), so each merge is exact top-k under the total order (score descending,
    index ascending) and so is the result, whatever the order of merges. ``lax.top_k`` does
    order +0.0 before -0.0, so scores of -0.0 are made +0.0 first. Duplicate key rows come
    back lowest index first: XLA:CPU's matmul gives bitwise equal scores to equal columns of
    a block, and all key blocks share one shape (tested, with exact integer ties too).
    Backward (key -> queries) ties go to the lower query index by the same argument (running
    state first, then the block's rows in increasing order). Its scores are those of the
    forward products, so they can differ from ``knn(keys, queries)``'s in the last bit
    (another summation order), and a near-tie within that rounding may come out the other
    way round; exact ties never do (tested).

Devices (``mesh``)
    With a mesh, the *keys* are sharded: each step sends ``n_devices`` key blocks, one per
    device (over all mesh axes, flattened), and the query group replicated; each device
    scores its key block, takes its local top-k, the ``[block, k]`` candidates are
    all-gathered in device order and merged (``jax.shard_map``). This was chosen over
    sharding query rows because it is exact with O(key_block) memory per device (row
    sharding needs every key on every device, or every key chunk sent to every device), the
    collective is tiny (k candidates per query per device) and the matmul per device has the
    same shape as on one device. Block shapes depend only on the data sizes and block sizes,
    never on the device count, and key blocks start at the same multiples of the key block
    everywhere, so a mesh of 8 gives bitwise the same scores and indices as one device
    (tested; on XLA:CPU a matmul over the same keys cut at other offsets or widths does
    *not* always give the same bits, which is why the layout is fixed). Devices whose block lies past the
    last key only score padding.

Precision
    With ``normalize=True`` both sides are L2-normalised in float32 before the product (each
    row is first divided by its largest component, so huge or tiny rows normalise too; a
    zero vector stays zero and scores 0 with everything). ``compute_dtype`` (default float32)
    is the matmul input type; float32 runs at ``Precision.HIGHEST`` (no TF32 or bf16 passes
    on GPU/TPU). ``jnp.bfloat16`` halves the key chunk and runs faster where the hardware has
    bf16 matmuls (not on XLA:CPU here: slower), accumulating in float32; its scores differ
    from float32 by bf16 rounding (~1e-2), so near-ties may reorder. Inputs may be float32,
    bfloat16, float16 or float64 (cast to float32 per block).

Measured (``benchmarks/retrieval.py --sizes 20000 50000 --methods ours faiss``, 2 CPU cores,
N x N, d = 768, float32, top-4; the peers' OpenBLAS without ``OPENBLAS_CORETYPE``/
``OPENBLAS_L2_SIZE``, ours with the C heap held as ``xstilts`` runs): 1.14x faiss-cpu's
``IndexFlatIP`` at N = 20k (4.26 s vs 4.86 s), 0.97x at 50k (25.3 s vs 24.5 s, 79 % and
81 % of the measured matmul peak); on glibc's default heap 1.02x and 1.02x, numpy blockwise
0.37-0.40x of faiss. Exact search is GEMM-bound, so that is parity at the BLAS peak, not a
lead. Peak memory 1.15-1.34x (both embedding sets + one score block; 1.45-1.5x on glibc's
default heap): what sits on top of the data is one key chunk, one query group and one score
block, plus allocator slack (trimmed once per key chunk). Both ways (``--bucc --sizes
20000 50000 --repeats 5``, k = 4, inputs unit rows as mining passes them): ``knn_both_ways`` 1.85x faiss's two searches at 20k (5.01 s vs 9.27 s), the same
neighbours both ways; 1.93x at 50k (29.1 s vs 56.1 s), the same neighbours but for
near-ties (3e-8 apart); other runs the same day 1.73-2.03x (20k) and 1.72-1.93x (50k).
``mine_pairs`` end to end (``--mine``, 20k, an earlier kernel) 1.62x, the same 15250 pairs.

On an accelerator pass device arrays (``jax.device_put``), so query blocks are sliced on the
device rather than sent from the host for every key chunk.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xstilts_jax import heap

# Upper bounds of the block sizes per backend (block_shape evens them out). On 2 CPU cores
# 512 x 4096 and 1024 x 4096 were fastest of {256..4096} x {2048..20000} (1024 x 8192 was
# ~20 % slower); 512 halves the score block. Both ways, 1024 x 4096 was ~10 % faster than
# 512 x 4096 and than 2048 x 4096 or 1024 x 8192 at N = 20k (the column top-k's cost per
# block does not grow with the query rows). Accelerators need bigger calls to amortise
# dispatch (not measured here: no GPU).
_DEFAULT_BLOCKS = {"cpu": (512, 4096)}
_DEFAULT_BLOCKS_BOTH_WAYS = {"cpu": (1024, 4096)}
_ACCELERATOR_BLOCKS = (4096, 32768)
_ROWS_PER_CALL = 2048  # query rows per jitted call, in whole blocks (lax.scan over them)
_GROUP = 32  # columns per group in _top_k
_ROW_GROUP = 8  # rows per group in _column_top_k (query blocks are multiples of 8)
_CHECK_ROWS = 16384  # rows per chunk of the host-side finiteness check (bounded temporaries)


def default_block_sizes(backend: str | None = None, *,
                        both_ways: bool = False) -> tuple[int, int]:
    """(query block, key block) rows used when ``knn`` (or ``knn_both_ways``) is not given
    them."""
    backend = backend or jax.default_backend()
    table = _DEFAULT_BLOCKS_BOTH_WAYS if both_ways else _DEFAULT_BLOCKS
    return table.get(backend, _ACCELERATOR_BLOCKS)


def _l2_normalize(x: jax.Array) -> jax.Array:
    """Rows scaled to unit L2 norm in float32; zero rows stay zero.

    Each row is first divided by its largest |component|, so the sum of squares can neither
    overflow (components near 1e20) nor underflow to 0 (components near 1e-25).
    """
    x = x.astype(jnp.float32)
    scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    x = x / jnp.where(scale > 0, scale, 1.0)
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.where(norm > 0, norm, 1.0)


@functools.partial(jax.jit, static_argnames=("normalize", "compute_dtype"))
def _prepare(x, *, normalize: bool, compute_dtype):
    """A block as the matmul consumes it: normalised in float32 (optionally), then cast."""
    x = _l2_normalize(x) if normalize else x.astype(jnp.float32)
    return x.astype(compute_dtype)


def _plus_zero(x: jax.Array) -> jax.Array:
    """-0.0 -> +0.0: ``lax.top_k`` orders +0 before -0, which would break the tie rule."""
    return jnp.where(x == 0, 0.0, x)


def _top_k(scores: jax.Array, k: int, columns_left=None) -> tuple[jax.Array, jax.Array]:
    """``lax.top_k`` of each row (ties: lower column first), via group maxima when it pays.

    ``columns_left``: when given, columns at or past it are padding (scored -inf, never
    selected). Both that mask and the -0.0 fix are applied to the small arrays (group maxima,
    gathered candidates), not to the block, so XLA keeps one [rows, cols] buffer (the
    product's) instead of two: a masked copy of the block measured 8 MB more per step.

    The columns are cut into contiguous groups of ``_GROUP``; the top-k groups by maximum
    (ties: lower group first) contain the top-k columns: a column outside them has k groups
    ahead of its own, each holding a column that beats or ties it at a lower index. Their
    columns, gathered in increasing column order, go through ``lax.top_k``, so ties keep
    the lower column first. Exact, and it replaces a top-k over the block by a max-reduction
    (a cheaper, vectorised pass) plus two small top-ks: ~10 % of a [1024, 4096] step on CPU.
    """
    rows, cols = scores.shape

    def masked(values, column):
        values = _plus_zero(values)
        return values if columns_left is None else jnp.where(column < columns_left, values, -jnp.inf)

    if cols % _GROUP or cols // _GROUP <= k:
        return lax.top_k(masked(scores, lax.broadcasted_iota(jnp.int32, (1, cols), 1)), k)
    n_groups = cols // _GROUP
    grouped = scores.reshape(rows, n_groups, _GROUP)
    maxima = jnp.max(grouped, axis=2)  # straight off the product: no masked copy of the block
    if columns_left is not None:
        # Groups wholly past the end score -inf; the one group the end cuts (if any) gets the
        # maximum of its real columns only (a padding column scores 0, which could beat them).
        edge = jnp.clip(columns_left // _GROUP, 0, n_groups - 1)
        edge_values = lax.dynamic_index_in_dim(grouped, edge, axis=1, keepdims=False)
        edge_columns = edge * _GROUP + jnp.arange(_GROUP)
        edge_max = jnp.max(jnp.where(edge_columns < columns_left, edge_values, -jnp.inf), axis=1)
        group = jnp.arange(n_groups)
        maxima = jnp.where(group * _GROUP >= columns_left, -jnp.inf, maxima)
        maxima = jnp.where(group == edge, edge_max[:, None], maxima)
    # -0.0 and +0.0 maxima are equal; _plus_zero after the max keeps group ties by index.
    _, groups = lax.top_k(_plus_zero(maxima), k)
    groups = jnp.sort(groups, axis=1)  # column order, for the tie rule (TopK stays a TopK)
    candidates = _take_groups(grouped, groups, 1).reshape(rows, k * _GROUP)
    columns = _members(groups, _GROUP, 1).reshape(rows, -1)
    values, pos = lax.top_k(masked(candidates, columns), k)
    return values, jnp.take_along_axis(columns, pos, axis=1)


def _top_k_down(values: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Top k of each column of ``values`` [n, cols] and the ``index`` entries there: [k, cols]
    each, best first; equal values: the lower row first.

    k passes of a column max, the first row holding it, and a mask of that row: element-wise
    work across rows, vectorised over the columns, where ``lax.top_k`` would need the array
    transposed and measured ~4x slower on CPU for a [125, 4000] block of group maxima. A row
    once picked is marked taken, so -inf rows (padding) are picked in row order too, never
    twice (``n >= k``).
    """
    rows = values.shape[0]
    row = lax.broadcasted_iota(jnp.int32, values.shape, 0)
    taken = jnp.zeros(values.shape, bool)
    out_v, out_i = [], []
    for _ in range(k):
        best = jnp.max(values, axis=0)
        first = jnp.min(jnp.where((values == best) & ~taken, row, rows), axis=0)
        hit = row == first
        out_v.append(best)
        out_i.append(jnp.sum(jnp.where(hit, index, 0), axis=0, dtype=index.dtype))
        values = jnp.where(hit, -jnp.inf, values)
        taken = taken | hit
    return jnp.stack(out_v), jnp.stack(out_i)


def _sort_small(x: jax.Array, axis: int) -> jax.Array:
    """``jnp.sort`` along a short ``axis`` (k <= 16 entries) by a compare-exchange network of
    element-wise minima and maxima: one fused loop, where XLA:CPU's sort of a [4, 3872]
    array along its rows measured ~0.3 ms (a tenth of a block's column top-k)."""
    n = x.shape[axis]
    if n > 16:
        return jnp.sort(x, axis=axis)
    parts = [lax.index_in_dim(x, i, axis, keepdims=True) for i in range(n)]
    for step in range(n):  # odd-even transposition: n rounds sort n entries
        for i in range(step % 2, n - 1, 2):
            parts[i], parts[i + 1] = (jnp.minimum(parts[i], parts[i + 1]),
                                      jnp.maximum(parts[i], parts[i + 1]))
    return jnp.concatenate(parts, axis=axis)


def _members(chosen: jax.Array, size: int, axis: int) -> jax.Array:
    """Positions of the members of the ``chosen`` groups of ``size`` contiguous positions,
    in increasing order: axis 0, chosen [k, cols] -> [k, size, cols]; axis 1, chosen
    [rows, k] -> [rows, k, size]."""
    if axis == 0:
        return chosen[:, None, :] * size + jnp.arange(size, dtype=chosen.dtype)[:, None]
    return chosen[:, :, None] * size + jnp.arange(size, dtype=chosen.dtype)


def _take_groups(grouped: jax.Array, chosen: jax.Array, axis: int) -> jax.Array:
    """The ``chosen`` groups of ``grouped``, as one flat gather of just their elements.

    axis 0: grouped [n, g, cols], chosen [k, cols] -> [k, g, cols] (group ``chosen[j, c]``
    of column c); axis 1: grouped [rows, n, g], chosen [rows, k] -> [rows, k, g].
    ``jnp.take_along_axis`` gives the same, but XLA:CPU lowered it to a select over every
    group, reading the whole score block (~0.6 ms of a [1024, 3872] block) for k of them.
    """
    if axis == 0:
        n, g, cols = grouped.shape
        flat = _members(chosen, g, 0) * cols + jnp.arange(cols, dtype=chosen.dtype)
    else:
        rows, n, g = grouped.shape
        flat = jnp.arange(rows, dtype=chosen.dtype)[:, None, None] * (n * g) + _members(chosen, g, 1)
    return grouped.reshape(-1).at[flat].get(mode="promise_in_bounds")


def _top_groups(maxima: jax.Array, k: int) -> jax.Array:
    """Indices [k, cols] of the top-k rows of each column of ``maxima`` [n, cols] (group
    maxima; ties: lower row first), sorted increasingly (row order, for the tie rule below).

    When the rows themselves fall into more than k groups of ``_ROW_GROUP``, their maxima
    are taken again and the top-k rows are looked for only inside the top-k of those
    super-groups (exact by ``_top_k``'s argument, one level up; the super-groups' rows are
    gathered in increasing row order, so ties still go to the lower row): each level costs
    k passes over ``k * _ROW_GROUP`` rows instead of over all ``n``. For a 1024-row block
    that is 16 + 32 rows instead of 128.
    """
    n, cols = maxima.shape
    if n % _ROW_GROUP or n // _ROW_GROUP <= k:
        _, rows = _top_k_down(maxima, lax.broadcasted_iota(jnp.int32, maxima.shape, 0), k)
        return _sort_small(rows, 0)
    grouped = maxima.reshape(n // _ROW_GROUP, _ROW_GROUP, cols)
    supers = _top_groups(jnp.max(grouped, axis=1), k)  # [k, cols], row order
    values = _take_groups(grouped, supers, 0).reshape(k * _ROW_GROUP, cols)
    rows = _members(supers, _ROW_GROUP, 0).reshape(k * _ROW_GROUP, cols)
    _, rows = _top_k_down(values, rows, k)
    return _sort_small(rows, 0)


def _column_top_k(scores: jax.Array, k: int, rows_left=None, best_v=None, best_i=None,
                  first_row=0) -> tuple[jax.Array, jax.Array]:
    """Top k rows of each *column* of ``scores`` [rows, cols] -> [k, cols] values and row
    indices (+ ``first_row``), merged into the running ``best_v`` / ``best_i`` [k, cols] when
    given (they come first: lower indices). Ties: lower row first.

    ``rows_left``: rows at or past it are padding (never selected). The mirror image of
    ``_top_k``, with groups of ``_ROW_GROUP`` contiguous rows: their maxima are an
    element-wise max of ``_ROW_GROUP`` rows of the block (vectorised, no transpose); the
    top-k groups of each column (ties: lower group first) contain its top-k rows by the same
    argument as there; their rows are gathered in increasing row order. Both selections are
    ``_top_k_down``, so nothing is transposed: the state stays [k, cols].
    """
    rows, cols = scores.shape

    def masked(values, row):
        values = _plus_zero(values)
        return values if rows_left is None else jnp.where(row < rows_left, values, -jnp.inf)

    if rows % _ROW_GROUP or rows // _ROW_GROUP <= k:
        row = lax.broadcasted_iota(jnp.int32, (rows, cols), 0)
        values, index = masked(scores, row), row + first_row
    else:
        n_groups = rows // _ROW_GROUP
        grouped = scores.reshape(n_groups, _ROW_GROUP, cols)
        maxima = jnp.max(grouped, axis=1)  # [groups, cols]
        if rows_left is not None:  # as in _top_k: the edge group's maximum over its real rows
            edge = jnp.clip(rows_left // _ROW_GROUP, 0, n_groups - 1)
            edge_values = lax.dynamic_index_in_dim(grouped, edge, axis=0, keepdims=False)
            edge_rows = edge * _ROW_GROUP + jnp.arange(_ROW_GROUP)
            edge_max = jnp.max(jnp.where(edge_rows[:, None] < rows_left, edge_values, -jnp.inf),
                               axis=0)
            group = jnp.arange(n_groups)[:, None]
            maxima = jnp.where(group * _ROW_GROUP >= rows_left, -jnp.inf, maxima)
            maxima = jnp.where(group == edge, edge_max[None, :], maxima)
        groups = _top_groups(_plus_zero(maxima), k)  # [k, cols], in row order
        values = _take_groups(grouped, groups, 0).reshape(k * _ROW_GROUP, cols)
        row = _members(groups, _ROW_GROUP, 0).reshape(k * _ROW_GROUP, cols)
        values = masked(values, row)
        index = row + first_row
    if best_v is not None:
        values = jnp.concatenate([best_v, values], axis=0)
        index = jnp.concatenate([best_i, index], axis=0)
    return _top_k_down(values, index, k)


def _merge(best_v, best_i, values, index, k: int):
    """Top k of the running candidates and new ones; the running ones must come first (they
    have the lower indices), so lax.top_k's lower-position-first keeps the tie rule."""
    values = jnp.concatenate([best_v, values], axis=1)
    index = jnp.concatenate([best_i, index], axis=1)
    values, pos = lax.top_k(values, k)
    return values, jnp.take_along_axis(index, pos, axis=1)


def _block_step(carry, xs, keys, offset, n_keys, n_queries, *, k: int, k_back: int,
                normalize: bool, compute_dtype, masked: bool, masked_queries: bool,
                axes: tuple[str, ...] | None):
    """One query block against this device's key block: both running top-ks updated.

    carry: (col_v, col_i) [k_back, KB], the running top-k queries of this device's key block
    (``()`` when ``k_back`` is 0); xs: q [B, d] raw queries, best_v/best_i [B, k] their
    running top-k keys, q_start the index of the block's first query; offset: key index of
    the first row of this step's chunk.
    """
    q, best_v, best_i, q_start = xs
    qn = _prepare(q, normalize=normalize, compute_dtype=compute_dtype)
    # HIGHEST: a true float32 product where the default would be TF32/bf16 passes (GPU/TPU).
    precision = lax.Precision.HIGHEST if compute_dtype == jnp.float32 else None
    scores = lax.dot_general(qn, keys, (((1,), (1,)), ((), ())), precision=precision,
                             preferred_element_type=jnp.float32)  # [B, KB]
    block = keys.shape[0]
    start = offset if axes is None else offset + lax.axis_index(axes) * block
    # zero-padded key rows past the end are never selected
    values, index = _top_k(scores, k, n_keys - start if masked else None)
    index = index + start
    if axes is not None:  # [B, n_devices * k], devices in key order
        values = lax.all_gather(values, axes, axis=1, tiled=True, to="invarying")
        index = lax.all_gather(index, axes, axis=1, tiled=True, to="invarying")
    best = _merge(best_v, best_i, values, index, k)
    if k_back:  # this device's key columns: no collective, every device has every query
        carry = _column_top_k(scores, k_back, n_queries - q_start if masked_queries else None,
                              *carry, first_row=q_start)
    return carry, best


def _group_step(q, keys, best_v, best_i, cols, q_first, offset, n_keys, n_queries, **static):
    """``_block_step`` over a group of query blocks [m, B, d], one after the other
    (``lax.scan``, carrying the key block's running top-k queries)."""
    m, rows = q.shape[:2]
    starts = q_first + jnp.arange(m, dtype=jnp.int32) * rows

    def one(carry, xs):
        return _block_step(carry, xs, keys, offset, n_keys, n_queries, **static)

    cols, (best_v, best_i) = lax.scan(one, cols, (q, best_v, best_i, starts))
    return best_v, best_i, cols


@functools.lru_cache(maxsize=64)
def _step_fn(k: int, k_back: int, normalize: bool, compute_dtype, masked: bool,
             masked_queries: bool, mesh: Mesh | None):
    """The jitted step for these static settings (one per mesh)."""
    kernel = functools.partial(_group_step, k=k, k_back=k_back, normalize=normalize,
                               compute_dtype=compute_dtype, masked=masked,
                               masked_queries=masked_queries,
                               axes=None if mesh is None else tuple(mesh.axis_names))
    if mesh is None:
        return jax.jit(kernel)
    rep, keys = PartitionSpec(), PartitionSpec(tuple(mesh.axis_names), None)
    cols = PartitionSpec(None, tuple(mesh.axis_names))  # [k_back, key chunk]
    mapped = jax.shard_map(kernel, mesh=mesh,
                           in_specs=(rep, keys, rep, rep, cols, rep, rep, rep, rep),
                           out_specs=(rep, rep, cols))
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


def _balanced(n: int, limit: int, multiple: int) -> int:
    """Rows per block: as few blocks of at most ~`limit` rows as cover n, sized evenly and
    rounded up to `multiple` (so 5000 keys in blocks of 4096 are 2 x 2528, not 2 x 4096)."""
    size = -(-n // -(-n // limit))
    return -(-size // multiple) * multiple


def block_shape(n_queries: int, n_keys: int, k: int = 1, *, block_size: int | None = None,
                key_block_size: int | None = None, k_back: int = 0) -> tuple[int, int]:
    """(query rows, key rows) of the blocks ``knn`` / ``knn_both_ways`` use for these sizes.

    ``block_size`` / ``key_block_size`` (default ``default_block_sizes()``, the both-ways ones
    when ``k_back`` is given, as ``knn_both_ways`` does) are upper bounds,
    give or take rounding: the rows are spread evenly over as few blocks as that allows, then
    rounded up to a multiple of 8 (queries; the column top-k's row groups) or 32 (keys; the
    row top-k's column groups), so the padding is small; a block holds at least ``k`` keys
    and ``k_back`` queries. Passing the returned sizes back gives the same sizes.
    """
    default_q, default_kb = default_block_sizes(both_ways=bool(k_back))
    block_size = default_q if block_size is None else block_size
    key_block_size = default_kb if key_block_size is None else key_block_size
    for name, value in (("block_size", block_size), ("key_block_size", key_block_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    shape = (max(k_back, _balanced(n_queries, int(block_size), _ROW_GROUP)),
             max(k, _balanced(n_keys, int(key_block_size), _GROUP)))
    if shape[0] * shape[1] >= 2**31:  # the group gathers index the block with int32
        raise ValueError(f"a {shape[0]} x {shape[1]} score block has 2**31 or more entries; "
                         f"pass smaller block_size / key_block_size")
    return shape


def blocks_per_call(q_rows: int, n_qblocks: int) -> int:
    """Query blocks per jitted call (the last call takes the rest): one program run per
    group amortises XLA's per-run setup, e.g. fresh pages for the score buffer. ~2048 rows:
    4 blocks of 1024 rows (both ways) held 12 MB of queries per call, and RSS measured
    ~25 MB higher at N = 20k than 2 blocks of 1024."""
    return max(1, min(n_qblocks, _ROWS_PER_CALL // q_rows))


def _input_dtype(x):
    """float32 or bfloat16 stay as they are on the way to the device; others become float32."""
    return x.dtype if x.dtype in (jnp.float32, jnp.bfloat16) else jnp.dtype(jnp.float32)


def _check_k(name: str, k, n: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"{name}={k} is larger than the number of {what} ({n})")
    return int(k)


def knn(queries, keys, k: int, *, block_size: int | None = None, key_block_size: int | None = None,
        mesh: Mesh | None = None, normalize: bool = True,
        compute_dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` keys of every query by inner product (cosine when ``normalize``).

    Args:
      queries: ``[n_q, d]`` float array (numpy or jax).
      keys: ``[n_k, d]`` float array (numpy or jax), ``k <= n_k``.
      k: neighbours per query.
      block_size: about this many query rows per block (default: 512 on CPU, 4096 on
        accelerators; ``block_shape`` gives the exact sizes).
      key_block_size: about this many key rows per device per step (default: 4096 on CPU,
        32768 on accelerators). Results depend on block sizes only through float rounding
        order, never on the device count.
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
    forward, _ = _search(queries, keys, k, None, block_size=block_size,
                         key_block_size=key_block_size, mesh=mesh, normalize=normalize,
                         compute_dtype=compute_dtype)
    return forward


def knn_both_ways(queries, keys, k: int, k_back: int | None = None, *,
                  block_size: int | None = None, key_block_size: int | None = None,
                  mesh: Mesh | None = None, normalize: bool = True, compute_dtype=None
                  ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Every query's top-``k`` keys *and* every key's top-``k_back`` queries, in one pass.

    What BUCC's margin needs (neighbours source -> target and target -> source): each score
    block is computed once and gives both its row-wise and its column-wise top-k, so this
    costs one search's matmul instead of two. Exact, with ``knn``'s tie rule both ways
    (equal scores: lower index first). The forward result is bitwise what ``knn(queries,
    keys, k)`` gives with the same blocks; the backward one equals ``knn(keys, queries,
    k_back)`` up to float rounding (the products are summed in another order there, so
    near-ties within ~1e-7 may come out the other way round).

    Args are ``knn``'s, plus ``k_back`` (default ``k``), ``<= n_q``; the default blocks are
    ``default_block_sizes(both_ways=True)`` (1024 x 4096 on CPU).

    Returns:
      ``((scores [n_q, k], indices [n_q, k]), (scores [n_k, k_back], indices [n_k, k_back]))``,
      numpy float32 / int32, best first; backward indices are query rows.
    """
    k_back = k if k_back is None else k_back
    forward, backward = _search(queries, keys, k, k_back, block_size=block_size,
                                key_block_size=key_block_size, mesh=mesh,
                                normalize=normalize, compute_dtype=compute_dtype)
    return forward, backward


def _search(queries, keys, k, k_back, *, block_size, key_block_size, mesh, normalize,
            compute_dtype):
    """The blockwise search: forward top-k, and backward top-k_back unless it is None."""
    queries = _validate("queries", queries)
    keys = _validate("keys", keys)
    n_q, d = queries.shape
    n_k, d_k = keys.shape
    if d != d_k:
        raise ValueError(f"queries and keys have different dimensions: {d} vs {d_k}")
    k = _check_k("k", k, n_k, "keys")
    if k_back is not None:
        k_back = _check_k("k_back", k_back, n_q, "queries")
    for n, what in ((n_k, "keys"), (n_q, "queries")):
        if n >= 2**31 - 1:
            raise ValueError(f"{n} {what} do not fit int32 indices")
    block_shape(max(n_q, 1), n_k, k, block_size=block_size, key_block_size=key_block_size,
                k_back=k_back or 0)
    compute_dtype = jnp.dtype(jnp.float32 if compute_dtype is None else compute_dtype)
    if compute_dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
        raise ValueError(f"compute_dtype must be float32, bfloat16 or float16, got {compute_dtype}")
    for name, x in (("queries", queries), ("keys", keys)):
        if not _all_finite(x):
            raise ValueError(f"{name} contain NaN or infinite values")
    if n_q == 0:
        return (np.zeros((0, k), np.float32), np.zeros((0, k), np.int32)), None

    # Shapes depend on the data and block sizes only (not on the mesh): bitwise equal results.
    q_rows, kb_rows = block_shape(n_q, n_k, k, block_size=block_size,
                                  key_block_size=key_block_size, k_back=k_back or 0)
    n_dev = 1 if mesh is None else mesh.devices.size
    chunk = kb_rows * n_dev  # key rows per step (one key block per device)
    n_chunks = -(-n_k // chunk)
    n_qblocks = -(-n_q // q_rows)
    if mesh is None:
        q_sharding = key_sharding = col_sharding = None
    else:
        q_sharding = NamedSharding(mesh, PartitionSpec())
        key_sharding = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names), None))
        col_sharding = NamedSharding(mesh, PartitionSpec(None, tuple(mesh.axis_names)))

    def put(x, sharding):
        return jax.device_put(x) if sharding is None else jax.device_put(x, sharding)

    per_call = blocks_per_call(q_rows, n_qblocks)
    groups = [(b, min(per_call, n_qblocks - b)) for b in range(0, n_qblocks, per_call)]
    q_dtype, k_dtype = _input_dtype(queries), _input_dtype(keys)
    best_v = [put(np.full((m, q_rows, k), -np.inf, np.float32), q_sharding) for _, m in groups]
    best_i = [put(np.full((m, q_rows, k), -1, np.int32), q_sharding) for _, m in groups]
    back_v, back_i = [], []  # per key chunk, on the host
    key_block = None
    for c in range(n_chunks):
        del key_block  # the previous chunk's calls are done: one key chunk alive at a time
        # every call frees XLA's score buffer and the chunk's query copies, megabytes each;
        # kept, the RSS of a search crept up chunk by chunk (~70 MB at N = 20k), trimmed
        # ~45 MB, for well under a millisecond a chunk
        heap.release_free_memory()
        start = c * chunk
        raw = _rows(keys, start, min(start + chunk, n_k), chunk, k_dtype)
        key_block = put(raw, key_sharding)
        del raw
        if normalize or key_block.dtype != compute_dtype:
            key_block = _prepare(key_block, normalize=normalize, compute_dtype=compute_dtype)
        cols = () if k_back is None else (
            put(np.full((k_back, chunk), -np.inf, np.float32), col_sharding),
            put(np.full((k_back, chunk), -1, np.int32), col_sharding))
        offset, count, n_queries = np.int32(start), np.int32(n_k), np.int32(n_q)
        for g, (first, m) in enumerate(groups):
            q0 = first * q_rows
            padded = q0 + m * q_rows > n_q
            step = _step_fn(k, k_back or 0, normalize, compute_dtype, start + chunk > n_k,
                            k_back is not None and padded, mesh)
            q = _rows(queries, q0, min(q0 + m * q_rows, n_q), m * q_rows, q_dtype)
            q = put(q.reshape(m, q_rows, d), q_sharding)
            best_v[g], best_i[g], cols = step(q, key_block, best_v[g], best_i[g], cols,
                                              np.int32(q0), offset, count, n_queries)
            # Wait before sending the next query group: a call queued ahead measured no
            # faster on CPU and kept a second query group and score buffer alive (~40 MB).
            best_v[g].block_until_ready()
            del q
        if k_back is not None:
            back_v.append(np.asarray(cols[0]).T[:n_k - start])
            back_i.append(np.asarray(cols[1]).T[:n_k - start])
    scores = np.concatenate([np.asarray(v).reshape(-1, k) for v in best_v])[:n_q]
    indices = np.concatenate([np.asarray(i).reshape(-1, k) for i in best_i])[:n_q]
    backward = None if k_back is None else (np.concatenate(back_v), np.concatenate(back_i))
    if not np.isfinite(scores).all() or (backward is not None and not np.isfinite(backward[0]).all()):
        raise ValueError("scores overflowed float32 (inner products of very large vectors); "
                         "normalize or rescale the inputs")
    return (scores, indices), backward
