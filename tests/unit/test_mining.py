"""BUCC mining / threshold and Tatoeba retrieval (xstilts_jax.mining) against plain reference
implementations written here: full similarity matrices and loops, no shared code."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from xstilts_jax import metrics, mining
from xstilts_jax.tasks.examples import BuccData
from xstilts_jax.tasks.formats.bucc import read_bucc_files


def brute_knn(queries, keys, k, *, normalize=True):
    """Exact cosine top-k from the full similarity matrix; ties to the lower index."""
    q = np.asarray(queries, dtype=np.float64)
    c = np.asarray(keys, dtype=np.float64)
    if normalize:
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-30)
    sims = q @ c.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, idx, axis=1).astype(np.float32), idx.astype(np.int32)


# --------------------------------------------------------------------------- reference BUCC


def reference_mine(source, english, x, y, k=4, duplicates="drop"):
    """XTREME's pipeline, plainly: unify texts, full cosine matrix, ratio margin, 'max'
    retrieval with 1-1 greedy acceptance, back to ids. Returns [(src id, en id, score)]."""
    sides = []
    for sentences, emb in ((source, x), (english, y)):
        ids, texts = list(sentences), list(sentences.values())
        unique, last = [], {}
        for row, text in enumerate(texts):
            if text not in unique:
                unique.append(text)
            last[text] = row
        vectors = []
        for text in unique:
            v = np.asarray(emb[last[text]], dtype=np.float64)
            norm = np.sqrt(sum(float(a) * float(a) for a in v))
            vectors.append(v / norm if norm > 0 else v)
        id_groups = []
        for text in unique:
            if duplicates == "drop":
                same = [i for i, t in zip(ids, texts) if t.strip() == text.strip()]
                id_groups.append(same if len(same) == 1 else [])
            else:
                id_groups.append([i for i, t in zip(ids, texts) if t == text])
        sides.append((unique, np.array(vectors), id_groups))
    (_, xs, src_groups), (_, ys, trg_groups) = sides
    nx, ny = len(xs), len(ys)
    sim = np.zeros((nx, ny))
    for i in range(nx):
        for j in range(ny):
            sim[i, j] = float(np.dot(xs[i], ys[j]))
    kx, ky = min(k, ny), min(k, nx)
    x_nbrs = [sorted(range(ny), key=lambda j: -sim[i, j])[:kx] for i in range(nx)]
    y_nbrs = [sorted(range(nx), key=lambda i: -sim[i, j])[:ky] for j in range(ny)]
    x_mean = [sum(sim[i, j] for j in x_nbrs[i]) / kx for i in range(nx)]
    y_mean = [sum(sim[i, j] for i in y_nbrs[j]) / ky for j in range(ny)]

    def score(i, j):
        return sim[i, j] / ((x_mean[i] + y_mean[j]) / 2)

    cands = []  # forward (each x's best y), then backward (each y's best x)
    for i in range(nx):
        best = max(x_nbrs[i], key=lambda j: score(i, j))  # max(): first of equal scores
        cands.append((score(i, best), i, best))
    for j in range(ny):
        best = max(y_nbrs[j], key=lambda i: score(i, j))
        cands.append((score(best, j), best, j))
    seen_x, seen_y, kept = set(), set(), []
    for s, i, j in sorted(cands, key=lambda c: -c[0]):
        if i not in seen_x and j not in seen_y:
            seen_x.add(i)
            seen_y.add(j)
            if s > 0:
                kept.append((i, j, s))
    return [(sid, tid, s) for i, j, s in kept for sid in src_groups[i] for tid in trg_groups[j]]


def reference_threshold(cands, gold):
    """bucc_optimize, with the threshold at the last candidate's score when F1 peaks there."""
    items = sorted(cands, key=lambda c: -c[2])
    threshold, best, correct = 0.0, 0.0, 0
    for n in range(1, len(items) + 1):
        if (items[n - 1][0], items[n - 1][1]) in gold:
            correct += 1
        if correct:
            p, r = correct / n, correct / len(gold)
            f1 = 2 * p * r / (p + r)
            if f1 > best:
                best = f1
                if n < len(items):
                    threshold = (items[n - 1][2] + items[n][2]) / 2
                else:
                    threshold = items[n - 1][2]
    return threshold


def reference_f1(cands, threshold, gold):
    predicted = {(s, t) for s, t, score in cands if score >= threshold}
    correct = len(predicted & gold)
    if not correct:
        return 0.0
    p, r = correct / len(predicted), correct / len(gold)
    return 100 * 2 * p * r / (p + r)


# --------------------------------------------------------------------------- synthetic corpus


def synthetic_bucc(seed, n_gold=60, n_src_extra=40, n_en_extra=50, dim=24, noise=0.75):
    """A BUCC-format split: gold pairs are noisy copies of one latent vector, distractors on
    both sides, and duplicated texts (exact, and differing only by a trailing space), each
    duplicate row with its own embedding (so which row represents a text matters)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_gold, dim))
    src_vecs = np.concatenate([latent + noise * rng.standard_normal((n_gold, dim)),
                               rng.standard_normal((n_src_extra, dim))])
    en_vecs = np.concatenate([latent + noise * rng.standard_normal((n_gold, dim)),
                              rng.standard_normal((n_en_extra, dim))])
    src_texts = [f"satz {seed} {i}" for i in range(len(src_vecs))]
    en_texts = [f"sentence {seed} {i}" for i in range(len(en_vecs))]
    # duplicates: distractor rows take the text of gold rows (and of each other)
    src_texts[n_gold] = src_texts[0]
    src_texts[n_gold + 1] = src_texts[1] + " "
    src_texts[n_gold + 2] = src_texts[n_gold + 3]
    en_texts[n_gold] = en_texts[2]
    en_texts[n_gold + 1] = en_texts[n_gold + 2]
    src_order, en_order = rng.permutation(len(src_vecs)), rng.permutation(len(en_vecs))
    lang = "de"
    src_ids = {row: f"{lang}-{pos + 1:09d}" for pos, row in enumerate(src_order)}
    en_ids = {row: f"en-{pos + 1:09d}" for pos, row in enumerate(en_order)}
    source = {src_ids[row]: src_texts[row] for row in src_order}
    english = {en_ids[row]: en_texts[row] for row in en_order}
    gold = tuple((src_ids[i], en_ids[i]) for i in range(n_gold))
    data = BuccData(lang, source, english, gold, ())
    return data, src_vecs[src_order].astype(np.float32), en_vecs[en_order].astype(np.float32)


@pytest.fixture(scope="module")
def dev():
    return synthetic_bucc(1)


@pytest.fixture(scope="module")
def test_split():
    return synthetic_bucc(2)


def assert_same_candidates(got, want):
    assert [(c.source_id, c.english_id) for c in got] == [(s, t) for s, t, _ in want]
    np.testing.assert_allclose([c.score for c in got], [s for _, _, s in want], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- BUCC tests


@pytest.mark.parametrize("duplicates", ["drop", "expand"])
def test_mining_matches_reference(dev, duplicates):
    data, x, y = dev
    got = mining.mine_bucc(data, x, y, knn=brute_knn, duplicates=duplicates)
    want = reference_mine(data.source, data.english, x, y, duplicates=duplicates)
    assert_same_candidates(got, want)
    assert len(got) > 50
    # 1-1 over unique texts: with "drop" no id appears twice
    if duplicates == "drop":
        assert len({c.source_id for c in got}) == len({c.english_id for c in got}) == len(got)


def test_duplicates_drop_vs_expand(dev):
    data, x, y = dev
    dropped = mining.mine_bucc(data, x, y, knn=brute_knn)
    expanded = mining.mine_bucc(data, x, y, knn=brute_knn, duplicates="expand")
    counts = {}
    for text in data.source.values():
        counts[text.strip()] = counts.get(text.strip(), 0) + 1
    repeated = {i for i, t in data.source.items() if counts[t.strip()] > 1}
    assert repeated and not repeated & {c.source_id for c in dropped}
    assert repeated & {c.source_id for c in expanded}
    assert {(c.source_id, c.english_id) for c in dropped} < {(c.source_id, c.english_id)
                                                             for c in expanded}


def test_threshold_and_f1_match_reference(dev, test_split):
    data, x, y = dev
    gold = set(data.gold)
    cands = mining.mine_bucc(data, x, y, knn=brute_knn)
    ref = reference_mine(data.source, data.english, x, y)
    want = reference_threshold(ref, gold)
    threshold = mining.best_threshold(cands, data.gold)
    assert threshold == pytest.approx(want, abs=1e-6)
    lines = mining.apply_threshold(cands, threshold)
    assert set(lines) == {f"{s}\t{t}" for s, t, score in ref if score >= want}
    scores = mining.bucc_prf(lines, data.gold)
    assert scores == metrics.bucc_f1([f"{s}\t{t}" for s, t in data.gold], lines)
    assert scores["f1"] == pytest.approx(reference_f1(ref, want, gold), abs=1e-9)
    assert scores["f1"] > 60  # chance is ~0: 60 gold pairs among 100 x 110 sentences

    # dev -> test, end to end
    tdata, tx, ty = test_split
    result = mining.evaluate_bucc(data, x, y, tdata, tx, ty, knn=brute_knn)
    assert result.threshold == threshold
    assert result.dev == scores
    tref = reference_mine(tdata.source, tdata.english, tx, ty)
    assert_same_candidates(result.test_candidates, tref)
    assert set(result.test_predictions) == {f"{s}\t{t}" for s, t, score in tref
                                            if score >= want}
    assert result.test["f1"] == pytest.approx(reference_f1(tref, want, set(tdata.gold)),
                                              abs=1e-9)
    assert result.test["f1"] > 60
    # without test gold (XTREME's layout): predictions only
    nogold = BuccData(tdata.language, tdata.source, tdata.english, None, ())
    blind = mining.evaluate_bucc(data, x, y, nogold, tx, ty, knn=brute_knn)
    assert blind.test is None and blind.test_predictions == result.test_predictions


def test_read_from_files(tmp_path, dev):
    data, x, y = dev
    paths = [tmp_path / name for name in ("de-en.dev.de", "de-en.dev.en", "de-en.dev.gold")]
    for path, rows in zip(paths, (data.source.items(), data.english.items(), data.gold)):
        path.write_text("".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    read = read_bucc_files(*paths, "de")
    assert read.source == data.source  # the trailing-space duplicate survives the reader
    got = mining.mine_bucc(read, x, y, knn=brute_knn)
    assert got == mining.mine_bucc(data, x, y, knn=brute_knn)


def test_threshold_midpoint_ties_and_last_candidate_guard():
    c = mining.Candidate
    gold = [("s1", "e1"), ("s2", "e2")]
    # best F1 after the first candidate: midpoint of its score and the next
    assert mining.best_threshold([c("s1", "e1", 0.9), c("s3", "e3", 0.8),
                                  c("s4", "e4", 0.7)], gold) == pytest.approx(0.85)
    # every candidate correct: F1 peaks at the last one (XTREME: IndexError); threshold is
    # its own score and apply_threshold keeps all of them
    cands = [c("s2", "e2", 1.2), c("s1", "e1", 1.1)]
    th = mining.best_threshold(cands, ["s1\te1", "s2\te2"])
    assert th == 1.1
    assert mining.apply_threshold(cands, th) == ["s2\te2", "s1\te1"]
    assert mining.bucc_prf(mining.apply_threshold(cands, th), gold)["f1"] == 100.0
    # order of the input does not matter; ties keep input order (stable), and a tie at the
    # cut makes the midpoint equal to that score, so >= keeps the tied one too (as XTREME)
    tied = [c("s1", "e1", 0.9), c("s9", "e9", 0.9), c("s8", "e8", 0.5)]
    assert mining.best_threshold(tied, gold) == 0.9
    assert mining.apply_threshold(tied, 0.9) == ["s1\te1", "s9\te9"]
    # nothing correct, or no candidates: XTREME's initial 0
    assert mining.best_threshold([c("s3", "e3", 1.5)], gold) == 0.0
    assert mining.best_threshold([], gold) == 0.0
    with pytest.raises(ValueError, match="no gold"):
        mining.best_threshold(cands, [])
    with pytest.raises(ValueError, match="not \\(source id"):
        mining.best_threshold(cands, ["s1 e1"])


def test_degenerate_mining_inputs():
    rng = np.random.default_rng(0)
    one = BuccData("fr", {"fr-1": "a"}, {"en-1": "b"}, (("fr-1", "en-1"),), ())
    v = rng.standard_normal((1, 8)).astype(np.float32)
    got = mining.mine_bucc(one, v, v + 0.1, knn=brute_knn)  # k = min(4, 1)
    assert [(g.source_id, g.english_id) for g in got] == [("fr-1", "en-1")]
    assert got[0].score == pytest.approx(1.0)  # ratio margin of a lone pair
    # an empty side: nothing mined, the kNN is never called
    empty = BuccData("fr", {"fr-1": "a"}, {}, None, ())
    assert mining.mine_bucc(empty, v, np.zeros((0, 8), np.float32), knn=None) == ()
    assert len(mining.mine_pairs(np.zeros((0, 8)), v, knn=None)) == 0
    # all-zero embeddings: 0/0 margins are never kept, and nothing warns
    zeros = np.zeros((3, 8), np.float32)
    with np.errstate(all="raise"):
        assert len(mining.mine_pairs(zeros, zeros, knn=brute_knn)) == 0
    # the only source text is duplicated: dropped (XTREME), or mapped to both ids
    dup = BuccData("fr", {"fr-1": "a", "fr-2": "a"}, {"en-1": "b"}, (("fr-1", "en-1"),), ())
    two = np.concatenate([v, v])
    assert mining.mine_bucc(dup, two, v, knn=brute_knn) == ()
    assert len(mining.mine_bucc(dup, two, v, knn=brute_knn, duplicates="expand")) == 2
    with pytest.raises(ValueError, match="2 source embeddings for 1"):
        mining.mine_bucc(one, two, v, knn=brute_knn)
    with pytest.raises(ValueError, match="dimension"):
        mining.mine_pairs(v, np.zeros((1, 4)), knn=brute_knn)
    with pytest.raises(ValueError, match="margin"):
        mining.mine_pairs(v, v, knn=brute_knn, margin="cosine")
    with pytest.raises(ValueError, match="duplicates"):
        mining.mine_bucc(one, v, v, knn=brute_knn, duplicates="keep")
    with pytest.raises(ValueError, match="knn returned"):
        mining.mine_pairs(v, v, knn=lambda q, c, k, **kw: (np.zeros((1, k + 1)),
                                                            np.zeros((1, k + 1), int)))
    with pytest.raises(ValueError, match="no gold"):
        mining.evaluate_bucc(empty, v, np.zeros((0, 8)), one, v, v, knn=brute_knn)


def test_default_knn_is_imported_lazily(monkeypatch, dev):
    data, x, y = dev
    calls = []

    def fake_knn(queries, keys, k, *, normalize=True):
        calls.append(normalize)
        return brute_knn(queries, keys, k, normalize=normalize)

    def fake_both_ways(queries, keys, k, k_back, *, normalize=True):
        calls.append(("both", normalize))
        return (brute_knn(queries, keys, k, normalize=normalize),
                brute_knn(keys, queries, k_back, normalize=normalize))

    monkeypatch.setitem(sys.modules, "xstilts_jax.retrieval",
                        types.SimpleNamespace(knn=fake_knn, knn_both_ways=fake_both_ways))
    got = mining.mine_bucc(data, x, y)
    assert got == mining.mine_bucc(data, x, y, knn=brute_knn)
    # one pass both ways by default; inputs are normalised by mining itself
    assert calls == [("both", False)]
    assert len(mining.tatoeba_search(x, x)) == len(x)
    assert calls == [("both", False), False]


def test_no_jax_at_import():
    code = "import sys, xstilts_jax.mining; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_with_the_real_knn_when_present(dev):
    try:
        from xstilts_jax.retrieval import knn
    except ImportError:
        pytest.skip("xstilts_jax.retrieval.knn not available")
    data, x, y = dev
    got = mining.mine_bucc(data, x, y, knn=knn)
    want = mining.mine_bucc(data, x, y, knn=brute_knn)
    assert [(c.source_id, c.english_id) for c in got] == [(c.source_id, c.english_id)
                                                          for c in want]
    np.testing.assert_allclose([c.score for c in got], [c.score for c in want], atol=1e-5)


def test_default_one_pass_equals_two_searches():
    """Default mining (knn_both_ways, one pass) gives the pairs of the real knn called once
    each way, scores to rounding (a neighbour's cosine is recomputed in float64; only the
    kNN means, float32 sums in another order, may differ in the last bits). Sizes need no
    multiple of a block, one side is the larger, and rows are near-duplicates of others."""
    from xstilts_jax.retrieval import knn

    rng = np.random.default_rng(21)
    latent = rng.standard_normal((150, 32))
    x = (latent + 0.3 * rng.standard_normal(latent.shape)).astype(np.float32)
    y = np.concatenate([latent[:120] + 0.3 * rng.standard_normal((120, 32)),
                        rng.standard_normal((97, 32))]).astype(np.float32)
    x[7] = x[3]  # exact duplicates: ties in both directions
    y[50] = y[40]
    default = mining.mine_pairs(x, y)
    two = mining.mine_pairs(x, y, knn=knn)
    np.testing.assert_array_equal(default.source, two.source)
    np.testing.assert_array_equal(default.english, two.english)
    np.testing.assert_allclose(default.score, two.score, rtol=1e-6, atol=0)
    assert len(default) > 100
    for k in (1, 2):  # k capped per side by the other side's size (k = min(4, n))
        small = mining.mine_pairs(x[:k], y)
        np.testing.assert_array_equal(small.english, mining.mine_pairs(x[:k], y, knn=knn).english)


# --------------------------------------------------------------------------- Tatoeba


def reference_tatoeba(queries, keys):
    pred = []
    for q in queries:
        q = q / np.linalg.norm(q)
        sims = [float(np.dot(q, c / np.linalg.norm(c))) for c in keys]
        pred.append(max(range(len(keys)), key=lambda j: sims[j]))  # first of equal maxima
    return pred


def test_tatoeba_matches_brute_force():
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((80, 16))
    src = (latent + 0.6 * rng.standard_normal(latent.shape)).astype(np.float32)
    eng = (latent + 0.6 * rng.standard_normal(latent.shape)).astype(np.float32)
    for direction, queries, keys in (("en2xx", eng, src), ("xx2en", src, eng)):
        pred = mining.tatoeba_search(src, eng, direction=direction, knn=brute_knn)
        want = reference_tatoeba(queries, keys)
        assert pred.tolist() == want
        accuracy = mining.tatoeba_accuracy(pred)["accuracy"]
        assert accuracy == pytest.approx(100 * np.mean(np.array(want) == np.arange(80)))
        assert 50 < accuracy < 100  # informative, not trivial
    assert mining.tatoeba_search(src, eng, knn=brute_knn).tolist() == reference_tatoeba(eng, src)
    lines = mining.tatoeba_lines(pred)
    assert lines == [str(p) for p in want] and all(line.isdigit() for line in lines)
    # explicit gold (XTREME's layout: a permutation)
    perm = rng.permutation(80)
    assert mining.tatoeba_accuracy(perm[pred], gold=perm) == mining.tatoeba_accuracy(pred)


def test_tatoeba_ties_sizes_and_errors():
    keys = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], np.float32)  # rows 0, 1 tie
    queries = np.array([[3.0, 0.1], [0.0, 5.0]], np.float32)
    assert mining.tatoeba_search(keys, queries, knn=brute_knn).tolist() == [0, 2]
    assert mining.tatoeba_search(queries, keys, direction="xx2en",
                                 knn=brute_knn).tolist() == [0, 2]
    assert mining.tatoeba_search(keys, np.zeros((0, 2)), knn=None).tolist() == []
    with pytest.raises(ValueError, match="nothing to retrieve"):
        mining.tatoeba_search(np.zeros((0, 2)), queries, knn=brute_knn)
    with pytest.raises(ValueError, match="direction"):
        mining.tatoeba_search(keys, queries, direction="both", knn=brute_knn)
    with pytest.raises(ValueError, match="no examples"):
        mining.tatoeba_accuracy([])
    with pytest.raises(ValueError, match="predictions for"):
        mining.tatoeba_accuracy([0, 1], gold=[0])
