"""The study's statistics: scores from summed per-example statistics, a paired bootstrap of
the X-STILTs gain over seeds and test examples, and the trend of the gain with model size.

NumPy only. Why a bootstrap over both: a target run on a few hundred examples moves by points
with its seed, and a test set of a few thousand examples has a sampling error of about a
point; a gain's interval has to carry both. Every cell of one (target, language) is scored on
the same test set, so one draw of example indices per language serves every cell (paired),
and the X-STILTs and direct cells of one target seed share data order and head
initialisation, so they are compared as pairs.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

__all__ = ["Estimate", "Resampled", "Trend", "arm_mean", "arm_mean_bootstrap", "combine",
           "pair_by_target_seed", "paired_gain", "paired_gain_bootstrap", "resample_scores",
           "scores_from_sums", "trend"]

# Kinds and their row widths, as metrics.STAT_KINDS (kept here so this module needs NumPy only;
# a test checks they agree).
KIND_WIDTHS = {"accuracy": 1, "em_f1": 2, "prf": 3}
# Elements of one block of resampled indices (replicates x examples): blocks that stay in the
# cache ran 3x faster than blocks of millions.
_BLOCK_ELEMENTS = 1 << 16


def scores_from_sums(kind: str, sums: np.ndarray, n) -> np.ndarray:
    """``metrics.score_from_stats`` over a leading batch: ``sums[..., k]`` -> score ``[...]``
    (percent), so that thousands of resampled sums are scored at once."""
    if kind not in KIND_WIDTHS:
        raise ValueError(f"unknown statistics kind {kind!r}: expected one of "
                         f"{', '.join(KIND_WIDTHS)}")
    sums = np.asarray(sums, dtype=np.float64)
    if sums.shape[-1:] != (KIND_WIDTHS[kind],):
        raise ValueError(f"{kind}: expected {KIND_WIDTHS[kind]} sums in the last axis, "
                         f"got shape {sums.shape}")
    if kind == "prf":
        correct, predicted, gold = sums[..., 0], sums[..., 1], sums[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted != 0, correct / predicted, 0.0)
            recall = np.where(gold != 0, correct / gold, 0.0)
            total = precision + recall
            f1 = np.where(total != 0, 2 * precision * recall / total, 0.0)
        return 100.0 * f1
    n = np.asarray(n, dtype=np.float64)
    if np.any(n <= 0):
        raise ValueError("no examples")
    return 100.0 * sums.sum(axis=-1) / (sums.shape[-1] * n)


# --------------------------------------------------------------------------- resampling

@dataclasses.dataclass(frozen=True)
class Resampled:
    """Cell scores per language on the test sets as they are (``point [L, C]``) and on
    ``B`` bootstrap resamples of them (``boot [B, L, C]``), one draw per language shared by
    every cell."""

    point: np.ndarray
    boot: np.ndarray


def _check_stats(kind: str, stats: Sequence[np.ndarray]) -> list[np.ndarray]:
    if kind not in KIND_WIDTHS:
        raise ValueError(f"unknown statistics kind {kind!r}")
    out = []
    for i, s in enumerate(stats):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 3 or s.shape[2] != KIND_WIDTHS[kind] or s.shape[1] == 0:
            raise ValueError(f"language {i}: expected [cells, examples > 0, "
                             f"{KIND_WIDTHS[kind]}] statistics, got shape {s.shape}")
        out.append(s)
    if not out or len({s.shape[0] for s in out}) != 1:
        raise ValueError("expected statistics for at least one language, the same cells in each")
    return out


def resample_scores(kind: str, stats: Sequence[np.ndarray], *, bootstrap: int = 2000,
                    seed=0) -> Resampled:
    """Score every cell in every language, as is and on ``bootstrap`` resamples of each
    language's test examples.

    ``stats[l]``: ``[cells, examples_l, k]``, the cells' statistics on language l's test set
    (the same examples in the same order in every cell). A replicate draws each language's
    example indices with replacement once, for all cells, and rescores every cell from the
    weighted sums (multinomial counts ``W[B, n] @ stats[n, cells * k]``).
    """
    stats = _check_stats(kind, stats)
    if bootstrap < 1:
        raise ValueError(f"bootstrap must be at least 1, got {bootstrap}")
    rng = np.random.default_rng(seed)
    cells, width = stats[0].shape[0], KIND_WIDTHS[kind]
    point = np.stack([scores_from_sums(kind, s.sum(axis=1), s.shape[1]) for s in stats])
    boot = np.empty((bootstrap, len(stats), cells))
    for lang, s in enumerate(stats):
        n = s.shape[1]
        flat = s.transpose(1, 0, 2).reshape(n, cells * width)
        block = max(1, _BLOCK_ELEMENTS // n)
        for start in range(0, bootstrap, block):
            b = min(block, bootstrap - start)
            draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
            weights = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
            sums = (weights @ flat).reshape(b, cells, width)
            boot[start:start + b, lang] = scores_from_sums(kind, sums, n)
    return Resampled(point=point, boot=boot)


# --------------------------------------------------------------------------- estimates

def _interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail], axis=0)
    return low, high


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean (a gain over pairs, or an arm's score over its cells) averaged over languages,
    with its percentile bootstrap interval.

    ``n_pairs``: the pairs (a gain) or cells (an arm mean) it averages; ``unpaired``: X-STILTs
    cells left out for want of a direct partner. ``replicates [B]``: the bootstrap values
    (for the trend's interval). The average over languages is linear, so the estimate over any
    subset of them comes from the per-language replicates (:meth:`over`).
    """

    mean: float
    low: float
    high: float
    n_pairs: int
    unpaired: int
    replicates: np.ndarray
    languages: tuple[str, ...]
    language_means: np.ndarray  # [L]
    language_replicates: np.ndarray  # [B, L]
    level: float = 0.95

    @property
    def per_language(self) -> dict[str, tuple[float, float, float]]:
        """language -> (mean, low, high)."""
        low, high = _interval(self.language_replicates, self.level)
        return {lang: (float(m), float(lo), float(hi))
                for lang, m, lo, hi in zip(self.languages, self.language_means, low, high)}

    def over(self, languages: Sequence[str]) -> "Estimate":
        """The same estimate averaged over a subset of its languages (same replicates)."""
        index = [self.languages.index(lang) for lang in languages]
        if not index:
            raise ValueError("no languages to average over")
        return _estimate(self.language_means[index], self.language_replicates[:, index],
                         n_pairs=self.n_pairs, unpaired=self.unpaired,
                         languages=tuple(languages), level=self.level)

    def to_json(self) -> dict:
        """Every number but the replicates."""
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level,
                "n_pairs": self.n_pairs, "unpaired": self.unpaired,
                "bootstrap": int(self.replicates.shape[0]),
                "per_language": {lang: {"mean": m, "low": lo, "high": hi}
                                 for lang, (m, lo, hi) in self.per_language.items()}}


def _estimate(language_means, language_replicates, *, n_pairs, unpaired, languages,
              level) -> Estimate:
    replicates = language_replicates.mean(axis=1)
    low, high = _interval(replicates, level)
    return Estimate(mean=float(np.mean(language_means)), low=float(low), high=float(high),
                    n_pairs=n_pairs, unpaired=unpaired, replicates=replicates,
                    languages=tuple(languages), language_means=np.asarray(language_means),
                    language_replicates=language_replicates, level=level)


def _resampled_mean(values_boot: np.ndarray, rng) -> np.ndarray:
    """``[B, L]``: per replicate b, the mean over the units (last axis) resampled with
    replacement of ``values_boot[b]`` ``[B, L, m]``."""
    bootstrap, m = values_boot.shape[0], values_boot.shape[2]
    draws = rng.integers(0, m, size=(bootstrap, m)) + (np.arange(bootstrap) * m)[:, None]
    counts = np.bincount(draws.ravel(), minlength=bootstrap * m).reshape(bootstrap, m)
    return np.einsum("bm,blm->bl", counts.astype(np.float64), values_boot) / m


def _languages(languages, count: int) -> tuple[str, ...]:
    languages = tuple(languages) if languages is not None else tuple(str(i) for i in range(count))
    if len(languages) != count:
        raise ValueError(f"{len(languages)} language names for {count} languages")
    return languages


def pair_by_target_seed(x_target_seeds: Sequence[int], d_target_seeds: Sequence[int]
                        ) -> tuple[list[tuple[int, int]], list[int]]:
    """Pairs (X-STILTs index, direct index) of the same target seed, and the X-STILTs
    indices without a partner (the first direct cell of a seed serves every X-STILTs cell of
    it, whatever their intermediate seeds)."""
    direct: dict[int, int] = {}
    for j, s in enumerate(d_target_seeds):
        direct.setdefault(s, j)
    pairs = [(i, direct[s]) for i, s in enumerate(x_target_seeds) if s in direct]
    unpaired = [i for i, s in enumerate(x_target_seeds) if s not in direct]
    return pairs, unpaired


def paired_gain(resampled: Resampled, pairs: Sequence[tuple[int, int]], *, unpaired: int = 0,
                languages: Sequence[str] | None = None, seed=0, level: float = 0.95) -> Estimate:
    """The mean over pairs (cell indices ``(x, d)`` into ``resampled``) of score_x − score_d,
    averaged over languages; replicate b also resamples the pairs with replacement."""
    if not pairs:
        raise ValueError("no pairs: no X-STILTs cell has a direct cell of its target seed")
    x, d = (np.array(idx) for idx in zip(*pairs))
    diffs_point = resampled.point[:, x] - resampled.point[:, d]
    diffs_boot = resampled.boot[:, :, x] - resampled.boot[:, :, d]
    per_language = _resampled_mean(diffs_boot, np.random.default_rng(seed))
    return _estimate(diffs_point.mean(axis=1), per_language, n_pairs=len(pairs),
                     unpaired=unpaired, languages=_languages(languages, diffs_point.shape[0]),
                     level=level)


def arm_mean(resampled: Resampled, cells: Sequence[int], *, languages=None, seed=0,
             level: float = 0.95) -> Estimate:
    """One arm's mean score over its cells (indices into ``resampled``), averaged over
    languages; replicate b also resamples the cells with replacement."""
    if len(cells) == 0:
        raise ValueError("no cells")
    cells = np.asarray(cells)
    per_language = _resampled_mean(resampled.boot[:, :, cells], np.random.default_rng(seed))
    return _estimate(resampled.point[:, cells].mean(axis=1), per_language, n_pairs=len(cells),
                     unpaired=0, languages=_languages(languages, resampled.point.shape[0]),
                     level=level)


def combine(estimates: Sequence[Estimate], names: Sequence[str]) -> Estimate:
    """The mean of several estimates (e.g. one gain per target), replicate by replicate; each
    was resampled on its own, with the same number of replicates. ``names`` stand where the
    languages were (``over`` picks a subset of them); ``n_pairs`` is the fewest of theirs."""
    if not estimates or len(names) != len(estimates):
        raise ValueError("one name per estimate, at least one estimate")
    return _estimate(np.array([e.mean for e in estimates]),
                     np.stack([e.replicates for e in estimates], axis=1),
                     n_pairs=min(e.n_pairs for e in estimates),
                     unpaired=sum(e.unpaired for e in estimates), languages=tuple(names),
                     level=estimates[0].level)


def _two_seeds(seed) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    examples, units = np.random.SeedSequence(seed).spawn(2)
    return examples, units


def paired_gain_bootstrap(kind: str, x_stats: Sequence[np.ndarray],
                          d_stats: Sequence[np.ndarray], x_target_seeds: Sequence[int],
                          d_target_seeds: Sequence[int], *, languages: Sequence[str] | None = None,
                          bootstrap: int = 2000, seed=0, level: float = 0.95) -> Estimate:
    """The gain of X-STILTs over direct fine-tuning for one (model, target, intermediate),
    with a percentile bootstrap interval over seeds and test examples.

    ``x_stats[l]`` ``[X cells, n_l, k]`` and ``d_stats[l]`` ``[D cells, n_l, k]``: the cells'
    statistics on language l; ``*_target_seeds``: each cell's target seed, by which an
    X-STILTs cell is paired with a direct cell (no partner: left out, counted in
    ``unpaired``). Deterministic in ``seed`` (an int or a sequence of ints).
    """
    if len(x_stats) != len(d_stats):
        raise ValueError(f"{len(x_stats)} languages of X-STILTs cells, {len(d_stats)} of direct")
    x_stats, d_stats = _check_stats(kind, x_stats), _check_stats(kind, d_stats)
    if len(x_target_seeds) != x_stats[0].shape[0] or len(d_target_seeds) != d_stats[0].shape[0]:
        raise ValueError("one target seed per cell expected")
    pairs, unpaired = pair_by_target_seed(x_target_seeds, d_target_seeds)
    examples, units = _two_seeds(seed)
    resampled = resample_scores(kind, [np.concatenate([x, d]) for x, d in zip(x_stats, d_stats)],
                                bootstrap=bootstrap, seed=examples)
    offset = x_stats[0].shape[0]
    return paired_gain(resampled, [(i, offset + j) for i, j in pairs], unpaired=len(unpaired),
                       languages=languages, seed=units, level=level)


def arm_mean_bootstrap(kind: str, stats: Sequence[np.ndarray], *,
                       languages: Sequence[str] | None = None, bootstrap: int = 2000, seed=0,
                       level: float = 0.95) -> Estimate:
    """One arm's mean score (its cells' language averages, averaged) with a percentile
    bootstrap interval over its cells and the test examples; ``stats[l]``: ``[cells, n_l, k]``."""
    examples, units = _two_seeds(seed)
    resampled = resample_scores(kind, stats, bootstrap=bootstrap, seed=examples)
    return arm_mean(resampled, range(resampled.point.shape[1]), languages=languages, seed=units,
                    level=level)


# --------------------------------------------------------------------------- trend

@dataclasses.dataclass(frozen=True)
class Trend:
    """OLS of the gain on log10(parameters): the gain's change per tenfold more parameters
    (``slope``, with its bootstrap interval ``low``, ``high``) and the fitted line."""

    slope: float
    low: float
    high: float
    intercept: float
    level: float
    parameters: tuple[float, ...]
    points: tuple[float, ...]
    slope_replicates: np.ndarray

    def predict(self, parameters) -> np.ndarray:
        return self.intercept + self.slope * np.log10(np.asarray(parameters, dtype=np.float64))

    def line(self, num: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """(parameters, fitted gain) from the smallest model to the largest."""
        grid = np.geomspace(min(self.parameters), max(self.parameters), num)
        return grid, self.predict(grid)

    def to_json(self) -> dict:
        return {"slope_per_decade": self.slope, "low": self.low, "high": self.high,
                "level": self.level, "intercept": self.intercept,
                "parameters": list(self.parameters), "points": list(self.points)}


def trend(parameters: Sequence[float], replicates_per_model: Sequence[np.ndarray],
          points: Sequence[float], *, level: float = 0.95) -> Trend | None:
    """Fit gain = intercept + slope * log10(parameters) through one point per model; the
    slope's interval refits replicate b of every model (models are resampled independently).
    None when fewer than two distinct sizes are given: there is no slope to fit."""
    x = np.log10(np.asarray(parameters, dtype=np.float64))
    y = np.asarray(points, dtype=np.float64)
    if x.shape != y.shape or len(replicates_per_model) != len(x):
        raise ValueError("one parameter count, one point and one replicate array per model")
    if len(np.unique(x)) < 2:
        return None
    reps = np.stack([np.asarray(r, dtype=np.float64) for r in replicates_per_model])  # [M, B]
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    intercept = float(y.mean() - slope * x.mean())
    slopes = xc @ (reps - reps.mean(axis=0)) / (xc @ xc)
    low, high = _interval(slopes, level)
    return Trend(slope=slope, low=float(low), high=float(high), intercept=intercept, level=level,
                 parameters=tuple(float(p) for p in parameters), points=tuple(map(float, y)),
                 slope_replicates=slopes)
