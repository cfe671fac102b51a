"""Exact blockwise top-k (xstilts_jax.retrieval.knn) against brute-force numpy.

Sizes are not multiples of the blocks (1000 queries x 777 keys, blocks of 96/128 queries and
64/128/256 keys), so padded query rows and masked key columns are exercised, and so are both
top-k paths (group maxima when a key block has more than k groups of 32 columns, plain
lax.top_k otherwise). The mesh tests use the 8 fake CPU devices of conftest.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xstilts_jax.retrieval import knn, knn_both_ways
from xstilts_jax.sharding import make_mesh

N_Q, N_K, D = 1000, 777, 40
TOL = 1e-5


def _data(seed=0, n_q=N_Q, n_k=N_K, d=D):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_q, d), dtype=np.float32),
            rng.standard_normal((n_k, d), dtype=np.float32))


def brute_force(queries, keys, k, normalize=True):
    """(full float64 score matrix, top-k scores, top-k indices); ties: lower index first."""
    q, kk = queries.astype(np.float64), keys.astype(np.float64)
    if normalize:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        kk = kk / np.linalg.norm(kk, axis=1, keepdims=True)
    scores = q @ kk.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return scores, np.take_along_axis(scores, order, axis=1), order


def separated(scores, k, gap=TOL):
    """Rows whose top k+1 scores are pairwise further apart than `gap` (no near-ties)."""
    top = -np.sort(-scores, axis=1)[:, :k + 1]
    return (np.abs(np.diff(top, axis=1)) > gap).all(axis=1)


@pytest.fixture(scope="module")
def mesh8():
    assert len(jax.devices()) >= 8, "conftest.py configures 8 CPU devices"
    return make_mesh({"data": 8}, jax.devices()[:8])


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("key_block", [128, 256])
def test_matches_brute_force(normalize, k, key_block):
    queries, keys = _data()
    scores, indices = knn(queries, keys, k, block_size=128, key_block_size=key_block,
                          normalize=normalize)
    assert scores.dtype == np.float32 and indices.dtype == np.int32
    assert scores.shape == indices.shape == (N_Q, k)
    full, ref_scores, ref_indices = brute_force(queries, keys, k, normalize)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=TOL * (1 if normalize else D))
    clear = separated(full, k, gap=TOL * (1 if normalize else D))
    assert clear.mean() > 0.95  # near-ties (float32 vs float64 order) are rare
    np.testing.assert_array_equal(indices[clear], ref_indices[clear])
    # near-tie rows: same scores at each rank, i.e. an equally good neighbour
    got = np.take_along_axis(full, indices.astype(np.int64), axis=1)
    np.testing.assert_allclose(got, ref_scores, rtol=0, atol=TOL * (1 if normalize else D))


def test_exact_ties_lower_index_first(mesh8):
    """Small integer vectors: every score is an exact integer, so ties are everywhere;
    indices must equal the stable argsort exactly, on 1 and 8 devices, both top-k paths."""
    rng = np.random.default_rng(1)
    queries = rng.integers(-2, 3, size=(300, 24)).astype(np.float32)
    keys = rng.integers(-2, 3, size=(N_K, 24)).astype(np.float32)
    _, ref_scores, ref_indices = brute_force(queries, keys, 5, normalize=False)
    for key_block in (64, 256):  # 2 groups (plain top_k) / 8 groups (group maxima)
        for mesh in (None, mesh8):
            scores, indices = knn(queries, keys, 5, block_size=96, key_block_size=key_block,
                                  normalize=False, mesh=mesh)
            np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
            np.testing.assert_array_equal(indices, ref_indices)


def test_duplicate_keys_lower_index_first(mesh8):
    queries, keys = _data(seed=2, n_q=50)
    duplicates = [3, 130, 400, 776]  # across key blocks, and the last (padded) block
    keys[duplicates] = keys[3]
    queries[7] = 2.0 * keys[3]  # cosine 1 with all four
    for mesh in (None, mesh8):
        scores, indices = knn(queries, keys, 4, block_size=32, key_block_size=128, mesh=mesh)
        np.testing.assert_array_equal(indices[7], duplicates)
        assert len(set(scores[7].tolist())) == 1 and abs(scores[7, 0] - 1) < TOL
        tied = np.isin(indices, duplicates)  # any query: the duplicates in index order
        for row, mask in zip(indices, tied):
            assert list(row[mask]) == sorted(row[mask])


@pytest.mark.parametrize("compute_dtype", [jnp.float32, jnp.bfloat16])
def test_mesh_identical_to_one_device(mesh8, compute_dtype):
    queries, keys = _data(seed=3)
    # 64-row key blocks: 13 blocks = 2 steps of 8 devices (3 devices all padding in the last)
    one = knn(queries, keys, 4, block_size=96, key_block_size=64, compute_dtype=compute_dtype)
    eight = knn(queries, keys, 4, block_size=96, key_block_size=64, compute_dtype=compute_dtype,
                mesh=mesh8)
    np.testing.assert_array_equal(eight[0], one[0])
    np.testing.assert_array_equal(eight[1], one[1])
    if compute_dtype == jnp.float32:  # a mesh over several axes is flattened the same way
        mesh3 = make_mesh({"data": 2, "fsdp": 2, "tensor": 2}, jax.devices()[:8])
        three = knn(queries, keys, 4, block_size=96, key_block_size=64, mesh=mesh3)
        np.testing.assert_array_equal(three[0], one[0])
        np.testing.assert_array_equal(three[1], one[1])


def test_bfloat16_within_tolerance():
    queries, keys = _data(seed=4)
    scores, indices = knn(queries, keys, 4, block_size=128, key_block_size=256,
                          compute_dtype=jnp.bfloat16)
    full, ref_scores, _ = brute_force(queries, keys, 4)
    tol = 2e-2  # bf16 inputs (8-bit mantissa), float32 accumulation over d=40
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=tol)
    # where indices differ from float32's, the chosen key is as good within tolerance
    got = np.take_along_axis(full, indices.astype(np.int64), axis=1)
    np.testing.assert_allclose(got, ref_scores, rtol=0, atol=tol)
    assert all(len(set(row)) == 4 for row in indices.tolist())


def test_device_and_float64_inputs_match_numpy():
    queries, keys = _data(seed=5, n_q=200)
    expected = knn(queries, keys, 3, block_size=64, key_block_size=256)
    for q, kk in ((jnp.asarray(queries), jnp.asarray(keys)),
                  (queries.astype(np.float64), keys.astype(np.float64))):
        got = knn(q, kk, 3, block_size=64, key_block_size=256)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("n_k,key_block", [(777, 128), (777, 384), (800, 256)])
def test_padding_never_selected(mesh8, n_k, key_block):
    """All real scores negative: the zero-padded key rows (score 0) must still never win.

    128-key blocks take the plain top-k (4 groups <= k); the others the group maxima (blocks
    of 288 and 224 keys, ``block_shape``), with the end inside a group (777 = 2 x 288 + 201:
    6 whole groups and 9 columns) and on a group boundary (800 = 3 x 224 + 128).
    """
    queries, keys = _data(seed=7, n_q=64, n_k=n_k)
    queries, keys = -np.abs(queries), np.abs(keys)
    _, ref_scores, ref_indices = brute_force(queries, keys, 4)
    assert (ref_scores < 0).all()
    for mesh in (None, mesh8):
        scores, indices = knn(queries, keys, 4, block_size=64, key_block_size=key_block,
                              mesh=mesh)
        assert (indices < n_k).all()
        np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=TOL)
        np.testing.assert_array_equal(indices, ref_indices)


def test_zero_vectors_and_empty_queries():
    queries, keys = _data(seed=6, n_q=20, n_k=50)
    queries[0] = 0.0
    keys[10] = 0.0
    scores, indices = knn(queries, keys, 50, key_block_size=64)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[0], 0.0)  # zero query: every score 0, index order
    np.testing.assert_array_equal(indices[0], np.arange(50))
    scores, indices = knn(queries[:0], keys, 2)
    assert scores.shape == indices.shape == (0, 2)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("n_k", [40, 400])  # plain top-k; group maxima (one 416-key block)
def test_signed_zero_scores_tie_by_index(normalize, n_k):
    """A zero query scores -0.0 against all-negative keys and +0.0 against the others;
    both are the same score, so the order is by index (lax.top_k alone puts +0 first)."""
    keys = np.ones((n_k, 4), np.float32)
    keys[::2] = -1.0
    keys[:32] = -1.0  # a whole group of -0.0 scores: its maximum is -0.0 too
    scores, indices = knn(np.zeros((3, 4), np.float32), keys, 6, normalize=normalize)
    np.testing.assert_array_equal(indices, np.tile(np.arange(6), (3, 1)))
    assert not np.signbit(scores).any()


def test_extreme_magnitudes_normalize():
    """Rows of ~1e20 and ~1e-25 (squares overflow / underflow float32) still normalise."""
    queries, keys = _data(seed=8, n_q=30, n_k=60)
    _, ref_scores, ref_indices = brute_force(queries, keys, 3)
    scores, indices = knn(queries * 1e20, keys * 1e-25, 3)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=TOL)
    np.testing.assert_array_equal(indices, ref_indices)


@pytest.mark.parametrize("queries, keys, k, kwargs, message", [
    (np.ones((4, 8)), np.ones((3, 8)), 4, {}, "larger than the number of keys"),
    (np.ones((4, 8)), np.ones((3, 8)), 0, {}, "positive integer"),
    (np.ones((4, 8)), np.ones((3, 8)), 1.5, {}, "positive integer"),
    (np.ones((4, 8)), np.ones((5, 6)), 1, {}, "different dimensions: 8 vs 6"),
    (np.ones(8), np.ones((5, 8)), 1, {}, "queries must be a 2-D array"),
    (np.ones((4, 8)), np.ones((5, 8), np.int32), 1, {}, "keys must be floating point"),
    (np.array([[1.0, np.nan]]), np.ones((5, 2)), 1, {}, "queries contain NaN or infinite"),
    (np.ones((4, 2)), np.array([[1.0, 2.0], [np.inf, 0.0]]), 1, {}, "keys contain NaN or infinite"),
    (np.ones((4, 2)), np.ones((5, 2)), 1, {"block_size": 0}, "block_size must be a positive"),
    (np.ones((4, 2)), np.ones((5, 2)), 1, {"compute_dtype": jnp.int8}, "compute_dtype must be"),
])
def test_input_errors(queries, keys, k, kwargs, message):
    with pytest.raises(ValueError, match=message):
        knn(queries, keys, k, **kwargs)


def test_block_of_2_31_entries_raises():
    """The group gathers index a score block with int32: 65536 x 32768 entries is the limit."""
    from xstilts_jax.retrieval import block_shape

    assert block_shape(65536, 32736, block_size=65536, key_block_size=32736) == (65536, 32736)
    with pytest.raises(ValueError, match="2\\*\\*31 or more entries"):
        block_shape(65536, 32768, block_size=65536, key_block_size=32768)


def test_overflowing_scores_raise():
    big = np.full((2, 4), 3e19, np.float32)
    with pytest.raises(ValueError, match="overflowed float32"):
        knn(big, big, 1, normalize=False)


@pytest.mark.parametrize("columns_left", [None, -5, 0, 9, 32, 100, 201, 256, 300])
def test_block_top_k_masks_padding_exactly(columns_left):
    """The step's top-k of one [rows, 256] score block (group-maxima path: 8 groups > k)
    equals a stable argsort of the block with columns at or past ``columns_left`` removed.
    All scores are <= 0 and many are -0.0 or +0.0, so a padding column (or the wrong zero)
    would win if the mask or the signed-zero rule were applied to the wrong array."""
    from xstilts_jax.retrieval import _top_k

    rng = np.random.default_rng(11)
    scores = -np.abs(rng.standard_normal((64, 256), dtype=np.float32))
    scores[:32, :] = np.where(rng.random((32, 256)) < 0.5, -0.0, 0.0)  # ties at zero
    scores[:32, :32] = -0.0  # a whole group whose maximum is -0.0
    scores[40:48, 9:32] = 0.0  # padding-like zeros right after column 9 (an edge group)
    k = 4
    left = 256 if columns_left is None else columns_left
    reference = np.where(np.arange(256) < left, scores, -np.inf)
    order = np.argsort(-reference, axis=1, kind="stable")[:, :k]  # -0.0 == +0.0 here
    values, indices = jax.jit(_top_k, static_argnums=1)(
        jnp.asarray(scores), k, None if columns_left is None else jnp.int32(columns_left))
    np.testing.assert_array_equal(np.asarray(indices)[:, :min(k, max(left, 0))],
                                  order[:, :min(k, max(left, 0))])
    np.testing.assert_array_equal(np.asarray(values),
                                  np.take_along_axis(reference, order, axis=1) + 0.0)


# --------------------------------------------------------------------------- both ways


def brute_force_both(queries, keys, k, k_back, normalize=True):
    """Brute-force top-k keys per query and top-k_back queries per key (ties: lower index)."""
    full, fwd_scores, fwd_indices = brute_force(queries, keys, k, normalize)
    back = np.argsort(-full.T, axis=1, kind="stable")[:, :k_back]
    return full, (fwd_scores, fwd_indices), (np.take_along_axis(full.T, back, axis=1), back)


@pytest.mark.parametrize("n_q,n_k", [(300, 777), (777, 300), (61, 50)])
def test_both_ways_exact_ties(mesh8, n_q, n_k):
    """Integer vectors (exact scores, ties everywhere): both directions equal the stable
    argsort exactly, on 1 and 8 devices; blocks of 96 / 64 / 16 queries (12 / 8 / 2 row
    groups: the grouped and the plain column top-k), 64 / 128 / 256 keys, none dividing the
    sizes. 777 queries in blocks of 64 leave 9 in the last: fewer real row groups there
    than k_back, so padding groups (-inf) are picked and must not repeat a real one."""
    rng = np.random.default_rng(12)
    queries = rng.integers(-2, 3, size=(n_q, 24)).astype(np.float32)
    keys = rng.integers(-2, 3, size=(n_k, 24)).astype(np.float32)
    _, fwd, back = brute_force_both(queries, keys, 5, 3, normalize=False)
    for block, key_block in ((96, 64), (96, 256), (16, 64), (64, 128)):
        for mesh in (None, mesh8):
            got_fwd, got_back = knn_both_ways(queries, keys, 5, 3, block_size=block,
                                              key_block_size=key_block, normalize=False,
                                              mesh=mesh)
            for got, want in ((got_fwd, fwd), (got_back, back)):
                np.testing.assert_array_equal(got[0], want[0].astype(np.float32))
                np.testing.assert_array_equal(got[1], want[1])
            # the forward half is knn itself, bit for bit
            one_way = knn(queries, keys, 5, block_size=block, key_block_size=key_block,
                          normalize=False, mesh=mesh)
            np.testing.assert_array_equal(got_fwd[0], one_way[0])
            np.testing.assert_array_equal(got_fwd[1], one_way[1])


def test_both_ways_matches_two_searches():
    """Float data, cosine: forward is knn(queries, keys) bitwise; backward is knn(keys,
    queries) wherever the scores are not near-tied (those sum the products in another
    order), and its scores agree to float32 rounding."""
    queries, keys = _data(seed=13)
    (fwd_v, fwd_i), (back_v, back_i) = knn_both_ways(queries, keys, 4, block_size=128,
                                                     key_block_size=256)
    one_way = knn(queries, keys, 4, block_size=128, key_block_size=256)
    np.testing.assert_array_equal(fwd_v, one_way[0])
    np.testing.assert_array_equal(fwd_i, one_way[1])
    other_v, other_i = knn(keys, queries, 4, block_size=128, key_block_size=256)
    full, _, (ref_v, ref_i) = brute_force_both(queries, keys, 4, 4)
    np.testing.assert_allclose(back_v, other_v, rtol=0, atol=TOL)
    np.testing.assert_allclose(back_v, ref_v, rtol=0, atol=TOL)
    clear = separated(full.T, 4)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(back_i[clear], other_i[clear])
    np.testing.assert_array_equal(back_i[clear], ref_i[clear])


@pytest.mark.parametrize("n_q,block", [(61, 16), (200, 64), (203, 64)])
def test_both_ways_query_padding_never_selected(mesh8, n_q, block):
    """All real scores negative: the zero-padded query rows (score 0) of the last block must
    never be a key's neighbour. 16-row blocks take the plain column top-k (2 groups), 64-row
    blocks the grouped one, with the end inside a group (203 = 3 x 64 + 11) or on one."""
    queries, keys = _data(seed=14, n_q=n_q, n_k=300)
    queries, keys = -np.abs(queries), np.abs(keys)
    _, _, (ref_v, ref_i) = brute_force_both(queries, keys, 4, 4)
    assert (ref_v < 0).all()
    for mesh in (None, mesh8):
        _, (back_v, back_i) = knn_both_ways(queries, keys, 4, block_size=block,
                                            key_block_size=128, mesh=mesh)
        assert (back_i < n_q).all()
        np.testing.assert_allclose(back_v, ref_v, rtol=0, atol=TOL)
        np.testing.assert_array_equal(back_i, ref_i)


def test_both_ways_signed_zeros_and_k_back():
    """Zero keys score -0.0 and +0.0 against the queries: one score, so by query index; and
    k_back differs from k (BUCC's k = min(4, other side) when one side is small)."""
    queries = np.ones((80, 4), np.float32)  # blocks of 64: 8 row groups > k_back, grouped
    queries[::2] = -1.0
    queries[:8] = -1.0  # a whole row group of -0.0 scores
    keys = np.zeros((3, 4), np.float32)
    (fwd_v, fwd_i), (back_v, back_i) = knn_both_ways(queries, keys, 2, 6, block_size=64)
    np.testing.assert_array_equal(back_i, np.tile(np.arange(6), (3, 1)))
    np.testing.assert_array_equal(fwd_i, np.tile(np.arange(2), (80, 1)))
    assert not np.signbit(back_v).any() and not np.signbit(fwd_v).any()


def test_both_ways_errors():
    with pytest.raises(ValueError, match="k_back=5 is larger than the number of queries"):
        knn_both_ways(np.ones((4, 8)), np.ones((9, 8)), 4, 5)
    with pytest.raises(ValueError, match="k_back must be a positive integer"):
        knn_both_ways(np.ones((4, 8)), np.ones((9, 8)), 4, 0)
    with pytest.raises(ValueError, match="k_back=1 is larger"):  # no queries, no backward
        knn_both_ways(np.ones((0, 8)), np.ones((9, 8)), 1)


@pytest.mark.parametrize("rows, rows_left", [(64, None), (64, -5), (64, 0), (64, 3), (64, 8),
                                             (64, 30), (64, 61), (64, 64), (64, 90),
                                             (512, None), (512, 3), (512, 70), (512, 333),
                                             (512, 511)])
def test_column_top_k_masks_padding_exactly(rows, rows_left):
    """The column top-k of one [rows, 48] block equals a stable argsort of each column with
    rows at or past ``rows_left`` removed, zeros of both signs included (past the real rows
    only -inf is left: those places are not compared). 64 rows: 8 row groups > k, one level
    of group maxima; 512 rows: 64 groups in 8 super-groups, two levels (``_top_groups``)."""
    from xstilts_jax.retrieval import _column_top_k

    rng = np.random.default_rng(15)
    scores = -np.abs(rng.standard_normal((rows, 48), dtype=np.float32))
    scores[:, :24] = np.where(rng.random((rows, 24)) < 0.5, -0.0, 0.0)  # ties at zero
    scores[:8, :24] = -0.0  # a whole group whose maximum is -0.0
    scores[3:8, 30:40] = 0.0  # padding-like zeros inside an edge group
    scores[rows - 10:, 40:44] = 0.0  # ties late in the block, ahead of the rest
    scores[:64, 44:] = -7.0  # whole super-groups (all 64 rows: the whole block) tied low
    k = 4
    left = rows if rows_left is None else rows_left
    reference = np.where(np.arange(rows)[:, None] < left, scores, -np.inf).T
    order = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    values, indices = jax.jit(_column_top_k, static_argnums=1)(
        jnp.asarray(scores), k, None if rows_left is None else jnp.int32(rows_left))
    values, indices = values.T, indices.T  # [k, cols] -> [cols, k]
    shown = min(k, max(left, 0))
    np.testing.assert_array_equal(np.asarray(indices)[:, :shown], order[:, :shown])
    np.testing.assert_array_equal(np.asarray(values),
                                  np.take_along_axis(reference, order, axis=1) + 0.0)


@pytest.mark.parametrize("k", [1, 2, 4, 5, 16, 17])
def test_sort_small_and_take_groups_match_numpy(k):
    """The compare-exchange sort and the flat group gather equal ``np.sort`` and
    ``np.take_along_axis`` on both axes (k > 16 takes ``jnp.sort``)."""
    from xstilts_jax.retrieval import _sort_small, _take_groups

    rng = np.random.default_rng(16)
    x = rng.integers(-5, 5, size=(k, 37)).astype(np.int32)  # repeats: ties
    np.testing.assert_array_equal(np.asarray(jax.jit(_sort_small, static_argnums=1)(x, 0)),
                                  np.sort(x, axis=0))
    np.testing.assert_array_equal(np.asarray(jax.jit(_sort_small, static_argnums=1)(x.T, 1)),
                                  np.sort(x.T, axis=1))
    grouped = rng.standard_normal((20, 8, 37)).astype(np.float32)
    chosen = rng.integers(0, 20, size=(k, 37)).astype(np.int32)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(_take_groups, static_argnums=2)(grouped, chosen, 0)),
        np.take_along_axis(grouped, chosen[:, None, :], axis=0))
    rows_first = np.ascontiguousarray(grouped.transpose(2, 0, 1))  # [37, 20, 8]
    np.testing.assert_array_equal(
        np.asarray(jax.jit(_take_groups, static_argnums=2)(rows_first, chosen.T, 1)),
        np.take_along_axis(rows_first, chosen.T[:, :, None], axis=1))


@pytest.mark.parametrize("cols, columns_left", [(4096, None), (4096, 4000), (4096, 37),
                                                (3872, None), (3872, 3850), (1000, 999)])
def test_row_top_k_of_full_size_blocks_is_exact(cols, columns_left):
    """``_top_k`` of one [24, cols] block (128 or 121 group maxima of 32 columns, as the
    CPU's key blocks have; 1000 columns, not a multiple of 32, take the plain top-k) equals a stable argsort of each row with the
    columns at or past ``columns_left`` removed; ties at zero of both signs, whole tied
    groups and rows of one value included."""
    from xstilts_jax.retrieval import _top_k

    rng = np.random.default_rng(17)
    scores = -np.abs(rng.standard_normal((24, cols), dtype=np.float32))
    scores[:8] = np.where(rng.random((8, cols)) < 0.5, -0.0, 0.0)  # rows of zeros: all tied
    scores[8:12, :256] = -0.5  # a whole super-group tied, below later zeros
    scores[8:12, cols - 40:] = 0.0  # ties late in the row (past the end when masked)
    scores[12:16] = -3.0  # every column tied
    k = 4
    left = cols if columns_left is None else columns_left
    reference = np.where(np.arange(cols)[None, :] < left, scores, -np.inf)
    order = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    values, indices = jax.jit(_top_k, static_argnums=1)(
        jnp.asarray(scores), k, None if columns_left is None else jnp.int32(columns_left))
    np.testing.assert_array_equal(np.asarray(indices), order)
    np.testing.assert_array_equal(np.asarray(values),
                                  np.take_along_axis(reference, order, axis=1) + 0.0)
