"""BUCC 2018 bitext mining and Tatoeba retrieval over sentence embeddings, as XTREME scores them.

Pure NumPy (no JAX here). The nearest-neighbour search is a parameter: every function takes
``knn(queries, keys, k, normalize=False) -> (scores [n, k], indices [n, k])``, exact cosine
top-k in descending order, ties to the lower index; ``knn=None`` imports
:func:`xstilts_jax.retrieval.knn` when first needed. Embeddings are L2-normalised here (in
float32, as ``faiss.normalize_L2``; an all-zero row stays zero) and handed to ``knn`` with
``normalize=False``. BUCC mining with ``knn=None`` needs the neighbours both ways and gets
them from one pass, :func:`xstilts_jax.retrieval.knn_both_ways` (each score block gives its
row-wise and its column-wise top-k: half the FLOPs of two searches, same neighbours and
tie rule); a ``knn`` that is passed is called twice, once each way.

BUCC, as google-research/xtreme ``third_party/utils_retrieve.py`` does it (itself LASER's
``source/mine_bitexts.py`` and ``tasks/bucc/bucc.py``), called by
``third_party/run_retrieval.py`` as ``mine_bitext(x, y, ...)`` with its defaults
``mode='mine', retrieval='max', margin='ratio', threshold=0, neighborhood=4``, cosine:

1. Unify. Each side's sentences are deduplicated by exact text (``text_load_unify``: first
   occurrences in file order); a unique text's embedding is that of its *last* occurrence
   (``unique_embeddings``). Mining runs over unique texts only.
2. k-NN both ways with ``k = min(4, size of the other side)``; ``mean_x[i]`` / ``mean_y[j]``:
   mean cosine of a sentence to its k neighbours on the other side.
3. Ratio margin: ``score(i, j) = cos(x_i, y_j) / ((mean_x[i] + mean_y[j]) / 2)``
   (``margin="distance"``: ``cos - mean``; ``"absolute"``: ``cos``).
4. 'max' retrieval. Each x takes its best-scoring y among its k neighbours (forward), each y
   its best x (backward); the n_x + n_y candidates are visited by descending score and a
   candidate is kept only if neither its x nor its y was taken by an earlier one, which
   takes both (a 1-1 greedy matching). Kept candidates with score > 0 are the output.
5. Back to ids (``read_candidate2score`` / ``read_sent2id``): a text is looked up by its
   whitespace-stripped form, and a text that occurs more than once on its side is *dropped*
   (no id), so every candidate involving a duplicated sentence disappears; a gold pair with
   such a sentence can never be predicted. That is ``duplicates="drop"`` here (the default);
   ``duplicates="expand"`` instead maps a unique-text pair to every (source id, English id)
   with those texts.
6. Threshold (``bucc_optimize``): candidates by descending score; after each, F1 of the
   candidates so far; where F1 is strictly better than before, the threshold becomes the
   midpoint of this score and the next. Predictions (``bucc_extract``) are the candidates with
   score >= threshold, scored by P/R/F1 against the gold as sets (:func:`metrics.bucc_f1`).

Where this differs from XTREME, on purpose:

- Best F1 at the last candidate: XTREME reads ``items[i + 1]`` and crashes (IndexError);
  here the threshold is the last candidate's own score, which (with ``>=``) keeps every
  candidate -- exactly the set whose F1 was best.
- No candidate correct (or none at all): XTREME's threshold stays at its initial 0, and so
  does this one's (every mined candidate has score > 0, so all would be kept).
- Ties: XTREME orders the candidates with ``np.argsort(-scores)`` (quicksort, so exactly
  equal scores come in no defined order); here the sort is stable: forward candidates by
  source order, then backward ones by English order. A NaN score (0/0 from all-zero
  embeddings) is treated as -inf: visited last, never kept. Candidate cosines are
  recomputed in float64 from the normalised float32 embeddings (XTREME: float32 dot),
  so a pair scores the same whichever direction proposed it.
- Protocol. XTREME's published driver (``run_retrieval.py``) is internally inconsistent
  (one candidates file for both splits, an unbound ``threshold``, an English id file named
  ``{prefix}.id``); what it intends, and LASER's ``bucc.sh`` does, is done here
  (:func:`evaluate_bucc`): the threshold is chosen on the dev split (BUCC's sample data) and
  applied to the test split (BUCC's training data), whose ``src-id<TAB>en-id`` lines are the
  predictions ``metrics`` scores.

Tatoeba (xtreme ``third_party/evaluate_retrieval.py``, ``similarity_search``): both sides
L2-normalised (``--dist cosine``), an index over the *non-English* sentences, searched with
the *English* ones for 1 neighbour (L2 on unit vectors = cosine). So XTREME's predictions are
one line per English sentence, the index of the predicted non-English sentence: that is
``direction="en2xx"`` here, the default; ``"xx2en"`` is the other way (one line per non-English
sentence, an English index). XTREME writes ``str(p)`` of a length-1 array (``[17]``); here a
plain integer is written, the format of XTREME's labels. With LASER's line-aligned files the
gold of line i is i in both directions (XTREME's own layout sorts the English side and its
labels are the original line numbers).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterable, Literal, NamedTuple, Sequence

import numpy as np

from xstilts_jax import metrics

if TYPE_CHECKING:
    from xstilts_jax.tasks.examples import BuccData

__all__ = ["BuccResult", "Candidate", "MinedPairs", "apply_threshold", "best_threshold",
           "bucc_prf", "evaluate_bucc", "l2_normalize", "mine_bucc", "mine_pairs",
           "tatoeba_accuracy", "tatoeba_lines", "tatoeba_search", "unify"]

Knn = Callable[..., tuple]
Margin = Literal["ratio", "distance", "absolute"]
Duplicates = Literal["drop", "expand"]
Direction = Literal["en2xx", "xx2en"]

NEIGHBORHOOD = 4  # XTREME's / LASER's k
_CHUNK_ELEMENTS = 1 << 22  # gathered float64 elements per chunk when scoring candidates


class Candidate(NamedTuple):
    """A mined pair: source-language id, English id, margin score."""

    source_id: str
    english_id: str
    score: float


@dataclasses.dataclass(frozen=True)
class MinedPairs:
    """Pairs kept by 'max' mining, in the order they were kept (descending score): row
    indices into the (unique) source and English embeddings, and their scores (float64)."""

    source: np.ndarray
    english: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return int(self.score.shape[0])


@dataclasses.dataclass(frozen=True)
class BuccResult:
    """One BUCC language: the threshold chosen on dev, dev P/R/F1 at it (percentages), the
    test predictions (``src-id<TAB>en-id`` lines) and test P/R/F1 where the test gold is
    known (None otherwise)."""

    language: str
    threshold: float
    dev: dict[str, float]
    test_predictions: tuple[str, ...]
    test: dict[str, float] | None
    dev_candidates: tuple[Candidate, ...]
    test_candidates: tuple[Candidate, ...]


# --------------------------------------------------------------------------- helpers


def _default_knn() -> Knn:
    from xstilts_jax.retrieval import knn  # lazy: JAX only when the default kernel is used
    return knn


def _default_knn_both_ways() -> Callable[..., tuple]:
    from xstilts_jax.retrieval import knn_both_ways  # lazy, as _default_knn
    return knn_both_ways


def _matrix(embeddings, what: str) -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"{what} embeddings must be a 2-D [n, dim] array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} embeddings must be numeric, got dtype {x.dtype}")
    return x


def _normalized_sides(source_embeddings, english_embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Both sides checked and L2-normalised; their dimensions must agree."""
    x = l2_normalize(_matrix(source_embeddings, "source"))
    y = l2_normalize(_matrix(english_embeddings, "English"))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"source embeddings have dimension {x.shape[1]} but English ones "
                         f"{y.shape[1]}")
    return x, y


def l2_normalize(embeddings) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (norms in float64); all-zero rows stay zero."""
    x = _matrix(embeddings, "the").astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    return (x / norms[:, None]).astype(np.float32)


def _search(knn: Knn | None, queries: np.ndarray, keys: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Call the kNN on normalised inputs and check what comes back."""
    knn = _default_knn() if knn is None else knn
    return _checked(knn(queries, keys, k, normalize=False), queries, keys, k)


def _search_both_ways(knn: Knn | None, x: np.ndarray, y: np.ndarray, k: int):
    """k-NN x -> y and y -> x (k capped by the other side's size), checked: one pass of
    ``knn_both_ways`` by default, two calls of a given ``knn``."""
    k_xy, k_yx = min(k, y.shape[0]), min(k, x.shape[0])
    if knn is not None:
        return _search(knn, x, y, k_xy), _search(knn, y, x, k_yx)
    forward, backward = _default_knn_both_ways()(x, y, k_xy, k_yx, normalize=False)
    return _checked(forward, x, y, k_xy), _checked(backward, y, x, k_yx)


def _checked(result, queries: np.ndarray, keys: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64, indices int64) of a kNN result, after checking its shapes and range."""
    scores, indices = (np.asarray(a) for a in result)
    expected = (queries.shape[0], k)
    if scores.shape != expected or indices.shape != expected:
        raise ValueError(f"knn returned scores {scores.shape} and indices {indices.shape}, "
                         f"expected {expected} for {queries.shape[0]} queries, k={k}")
    if indices.size and (indices.min() < 0 or indices.max() >= keys.shape[0]):
        raise ValueError(f"knn returned an index outside [0, {keys.shape[0]})")
    return scores.astype(np.float64), indices.astype(np.int64)


def _margin(cos: np.ndarray, mean: np.ndarray, margin: Margin) -> np.ndarray:
    if margin == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            return cos / mean
    if margin == "distance":
        return cos - mean
    return cos


def _score_neighbours(a: np.ndarray, b: np.ndarray, neighbours: np.ndarray,
                      mean_a: np.ndarray, mean_b: np.ndarray, margin: Margin) -> np.ndarray:
    """Margin score of each (row i of a, row neighbours[i, j] of b): [n_a, k] float64."""
    n, k = neighbours.shape
    out = np.empty((n, k), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * a.shape[1]))
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = a[start:stop].astype(np.float64)
        cols = b[neighbours[start:stop]].astype(np.float64)  # [c, k, dim]
        cos = np.einsum("cd,ckd->ck", rows, cols)
        mean = (mean_a[start:stop, None] + mean_b[neighbours[start:stop]]) / 2
        out[start:stop] = _margin(cos, mean, margin)
    return np.where(np.isnan(out), -np.inf, out)


# --------------------------------------------------------------------------- BUCC mining


def mine_pairs(source_embeddings, english_embeddings, *, k: int = NEIGHBORHOOD,
               knn: Knn | None = None, margin: Margin = "ratio",
               mining_threshold: float = 0.0) -> MinedPairs:
    """XTREME's ``mine_bitext(mode='mine', retrieval='max')`` on (already unique) embedding
    rows: margin-scored k-NN candidates both ways, kept 1-1 greedily by descending score,
    those with score > ``mining_threshold`` returned. See the module docstring."""
    if margin not in ("ratio", "distance", "absolute"):
        raise ValueError(f"margin must be 'ratio', 'distance' or 'absolute', not {margin!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    x, y = _normalized_sides(source_embeddings, english_embeddings)
    empty = MinedPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if x.shape[0] == 0 or y.shape[0] == 0:
        return empty
    (x2y_sim, x2y_ind), (y2x_sim, y2x_ind) = _search_both_ways(knn, x, y, k)
    x_mean, y_mean = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)
    fwd = _score_neighbours(x, y, x2y_ind, x_mean, y_mean, margin)
    bwd = _score_neighbours(y, x, y2x_ind, y_mean, x_mean, margin)
    fwd_pick, bwd_pick = fwd.argmax(axis=1), bwd.argmax(axis=1)  # first best: kNN order
    n_x, n_y = x.shape[0], y.shape[0]
    src = np.concatenate([np.arange(n_x), y2x_ind[np.arange(n_y), bwd_pick]])
    trg = np.concatenate([x2y_ind[np.arange(n_x), fwd_pick], np.arange(n_y)])
    scores = np.concatenate([fwd[np.arange(n_x), fwd_pick], bwd[np.arange(n_y), bwd_pick]])
    taken_src, taken_trg = [False] * n_x, [False] * n_y
    src_l, trg_l, score_l = src.tolist(), trg.tolist(), scores.tolist()
    keep = []
    for i in np.argsort(-scores, kind="stable").tolist():
        s, t = src_l[i], trg_l[i]
        if not taken_src[s] and not taken_trg[t]:
            taken_src[s] = taken_trg[t] = True
            if score_l[i] > mining_threshold:
                keep.append(i)
    keep = np.asarray(keep, dtype=np.int64)
    if keep.size == 0:
        return empty
    return MinedPairs(src[keep], trg[keep], scores[keep])


def unify(texts: Sequence[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(unique index of each text, unique texts in first-occurrence order, the row of the
    last occurrence of each unique text)`` -- XTREME's ``text_load_unify`` and
    ``unique_embeddings``."""
    index: dict[str, int] = {}
    inds = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64,
                       count=len(texts))
    last = np.zeros(len(index), dtype=np.int64)
    last[inds] = np.arange(len(texts))  # later rows overwrite earlier ones
    return inds, list(index), last


def _id_lookup(ids: list[str], texts: list[str], inds: np.ndarray, unique: list[str],
               duplicates: Duplicates) -> list[tuple[str, ...]]:
    """The ids each unique text maps back to."""
    if duplicates == "drop":  # read_sent2id: keyed by stripped text, repeated texts removed
        counts = Counter(t.strip() for t in texts)
        by_text = {t.strip(): i for i, t in zip(ids, texts) if counts[t.strip()] == 1}
        return [(by_text[t.strip()],) if t.strip() in by_text else () for t in unique]
    groups: list[list[str]] = [[] for _ in unique]
    for i, u in zip(ids, inds):
        groups[u].append(i)
    return [tuple(g) for g in groups]


def mine_bucc(data: "BuccData", source_embeddings, english_embeddings, *,
              k: int = NEIGHBORHOOD, knn: Knn | None = None, margin: Margin = "ratio",
              duplicates: Duplicates = "drop",
              mining_threshold: float = 0.0) -> tuple[Candidate, ...]:
    """Mine one BUCC split: candidates ``(source id, English id, score)`` in descending score.

    Row i of ``source_embeddings`` embeds the i-th sentence of ``data.source`` (file order),
    likewise for ``english_embeddings`` and ``data.english``. Duplicated texts are unified
    before mining and mapped back per ``duplicates`` (module docstring)."""
    if duplicates not in ("drop", "expand"):
        raise ValueError(f"duplicates must be 'drop' or 'expand', not {duplicates!r}")
    x = _matrix(source_embeddings, "source")
    y = _matrix(english_embeddings, "English")
    sides = []
    for name, sentences, emb in (("source", data.source, x), ("English", data.english, y)):
        if emb.shape[0] != len(sentences):
            raise ValueError(f"{data.language}: {emb.shape[0]} {name} embeddings for "
                             f"{len(sentences)} {name} sentences")
        ids, texts = list(sentences), list(sentences.values())
        inds, unique, last = unify(texts)
        sides.append((_id_lookup(ids, texts, inds, unique, duplicates), emb[last]))
    (src_ids, x_unique), (trg_ids, y_unique) = sides
    mined = mine_pairs(x_unique, y_unique, k=k, knn=knn, margin=margin,
                       mining_threshold=mining_threshold)
    candidates: dict[tuple[str, str], float] = {}
    for s, t, score in zip(mined.source.tolist(), mined.english.tolist(), mined.score.tolist()):
        for sid in src_ids[s]:
            for tid in trg_ids[t]:
                candidates[sid, tid] = max(score, candidates.get((sid, tid), score))
    return tuple(Candidate(s, t, score) for (s, t), score in candidates.items())


# --------------------------------------------------------------------------- BUCC threshold


def _gold_set(gold) -> set[tuple[str, str]]:
    pairs = set()
    for g in gold:
        pair = tuple(g.split("\t")) if isinstance(g, str) else tuple(g)
        if len(pair) != 2:
            raise ValueError(f"gold pair {g!r} is not (source id, English id)")
        pairs.add(pair)
    return pairs


def best_threshold(candidates: Iterable[Candidate], gold) -> float:
    """The score threshold maximising F1 of ``candidates`` against ``gold`` (pairs or
    ``src<TAB>en`` lines): XTREME's ``bucc_optimize``. The midpoint between the last kept and
    the first dropped score; the last candidate's own score when F1 is best with all of them;
    0.0 when no candidate is correct (or there are none)."""
    gold_pairs = _gold_set(gold)
    if not gold_pairs:
        raise ValueError("no gold pairs: F1 (and so the threshold) is undefined")
    items = sorted((((c[0], c[1]), float(c[2])) for c in candidates), key=lambda it: -it[1])
    threshold, best_f1, ncorrect = 0.0, 0.0, 0
    for n, (pair, score) in enumerate(items, start=1):
        ncorrect += pair in gold_pairs
        if ncorrect:
            precision, recall = ncorrect / n, ncorrect / len(gold_pairs)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + items[n][1]) / 2 if n < len(items) else score
    return threshold


def apply_threshold(candidates: Iterable[Candidate], threshold: float) -> list[str]:
    """The ``src-id<TAB>en-id`` prediction lines of the candidates with score >= threshold
    (XTREME's ``bucc_extract``), in candidate order."""
    return [f"{c[0]}\t{c[1]}" for c in candidates if c[2] >= threshold]


def bucc_prf(predictions: Iterable[str], gold) -> dict[str, float]:
    """Precision, recall and F1 (percentages) of prediction lines against gold pairs or lines,
    by :func:`xstilts_jax.metrics.bucc_f1`."""
    gold_lines = ["\t".join(p) for p in _gold_set(gold)]
    return metrics.bucc_f1(gold_lines, list(predictions))


def evaluate_bucc(dev: "BuccData", dev_source_embeddings, dev_english_embeddings,
                  test: "BuccData", test_source_embeddings, test_english_embeddings, *,
                  k: int = NEIGHBORHOOD, knn: Knn | None = None, margin: Margin = "ratio",
                  duplicates: Duplicates = "drop") -> BuccResult:
    """Mine both splits, choose the threshold on dev (which needs its gold), apply it to test.
    ``test.gold`` may be None (XTREME's layout); then ``test`` in the result is None."""
    if dev.gold is None:
        raise ValueError(f"{dev.language}: the dev split has no gold pairs; the threshold is "
                         f"chosen on them")
    if test.language != dev.language:
        raise ValueError(f"dev is {dev.language!r} but test is {test.language!r}")
    options = dict(k=k, knn=knn, margin=margin, duplicates=duplicates)
    dev_candidates = mine_bucc(dev, dev_source_embeddings, dev_english_embeddings, **options)
    test_candidates = mine_bucc(test, test_source_embeddings, test_english_embeddings,
                                **options)
    threshold = best_threshold(dev_candidates, dev.gold)
    dev_scores = bucc_prf(apply_threshold(dev_candidates, threshold), dev.gold)
    predictions = tuple(apply_threshold(test_candidates, threshold))
    test_scores = None if test.gold is None else bucc_prf(predictions, test.gold)
    return BuccResult(dev.language, threshold, dev_scores, predictions, test_scores,
                      dev_candidates, test_candidates)


# --------------------------------------------------------------------------- Tatoeba


def tatoeba_search(source_embeddings, english_embeddings, *, direction: Direction = "en2xx",
                   knn: Knn | None = None) -> np.ndarray:
    """Cosine 1-NN retrieval. ``"en2xx"`` (XTREME's): for each English sentence, the index of
    the nearest non-English sentence; ``"xx2en"``: for each non-English sentence, the index of
    the nearest English one. Ties go to the lower index (the kNN's rule)."""
    if direction not in ("en2xx", "xx2en"):
        raise ValueError(f"direction must be 'en2xx' or 'xx2en', not {direction!r}")
    x, y = _normalized_sides(source_embeddings, english_embeddings)
    queries, keys = (y, x) if direction == "en2xx" else (x, y)
    if queries.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if keys.shape[0] == 0:
        raise ValueError("nothing to retrieve from: the searched side has no sentences")
    _, indices = _search(knn, queries, keys, 1)
    return indices[:, 0]


def tatoeba_lines(predictions) -> list[str]:
    """One predicted index a line, as a plain integer (the format of XTREME's labels)."""
    return [str(int(p)) for p in np.asarray(predictions).reshape(-1)]


def tatoeba_accuracy(predictions, gold=None) -> dict[str, float]:
    """``{"accuracy": %}`` of the predicted indices against ``gold`` (default: line i's answer
    is i, LASER's line-aligned files), scored as :func:`xstilts_jax.metrics.accuracy`."""
    pred = tatoeba_lines(predictions)
    labels = [str(i) for i in range(len(pred))] if gold is None else tatoeba_lines(gold)
    return metrics.accuracy(labels, pred)
