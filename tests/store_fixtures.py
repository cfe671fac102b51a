"""A sweep's results store, written synthetically for the report's tests and the analysis
notebook's: three model sizes (1M, 10M, 100M parameters), direct fine-tuning and one
intermediate task, an XTREME task (pawsx) and the demo's task (synthetic_paraphrase), three
target seeds, 200 test examples per language, and a built-in gain that grows with size (+8
points per decade of parameters)."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from xstilts_jax.metrics import score_from_stats

N = 200  # test examples per language
LANGUAGES = {"pawsx": ("en", "de", "fr"), "synthetic_paraphrase": ("en", "xa", "xb")}
# name, parameters, pretraining languages (None: unknown), built-in gain in points
MODELS = [("synthetic-s", 1_000_000, ["en", "de", "xa"], 4.0),
          ("synthetic-m", 10_000_000, None, 12.0),
          ("synthetic-l", 100_000_000, ["en", "de", "fr", "xa", "xb"], 20.0)]
INTERMEDIATE = "synthetic_nli"


def write_store(run_dir: pathlib.Path, cells: list[dict]) -> None:
    """A sweep's store as the sweep writes it: ``store/rows/<cell>.jsonl`` (a row per
    target and language, its score from the summed statistics) and
    ``store/examples/<cell>.npz`` (``"<target>/<language>"`` -> [examples, k]). Each cell:
    the row fields that do not depend on the language, plus ``stats``: {(target, language):
    array} and ``kind``."""
    examples, rows_dir = run_dir / "store" / "examples", run_dir / "store" / "rows"
    examples.mkdir(parents=True, exist_ok=True)
    rows_dir.mkdir(parents=True, exist_ok=True)
    for cell in cells:
        lines = []
        arrays = {f"{t}/{lang}": np.asarray(a, dtype=np.float64)
                  for (t, lang), a in cell["stats"].items()}
        np.savez(examples / f"{cell['cell']}.npz", **arrays)
        for (target, language), a in cell["stats"].items():
            a = np.asarray(a, dtype=np.float64)
            score = score_from_stats(cell["kind"], list(a.sum(axis=0)), len(a))
            row = {"cell": cell["cell"], "sweep": "test", "model": cell["model"],
                   "model_path": f"/models/{cell['model']}", "parameters": cell["parameters"],
                   "pretrain_languages": cell["pretrain_languages"],
                   "intermediate": cell["intermediate"], "target": target,
                   "intermediate_seed": cell["intermediate_seed"],
                   "target_seed": cell["target_seed"], "language": language,
                   "metric": "accuracy", "score": score, "metrics": {"accuracy": score},
                   "examples": len(a), "stats_kind": cell["kind"],
                   "phase_keys": {"target": "k"}, "config_hash": "h",
                   "degenerate": cell.get("degenerate", []),
                   "finetuning": cell.get("finetuning", "full")}
            lines.append(json.dumps(row))
        (rows_dir / f"{cell['cell']}.jsonl").write_text("\n".join(lines) + "\n")


def _correct(accuracy: float, rng) -> np.ndarray:
    """[N, 1] with exactly round(accuracy% * N) correct examples, in a random order."""
    k = int(round(accuracy / 100 * N))
    out = np.zeros((N, 1))
    out[rng.permutation(N)[:k]] = 1
    return out


def synthetic_cells(models=MODELS) -> list[dict]:
    """Direct accuracy 60 (+1 per target seed); X-STILTs adds the model's gain, and 10 more
    points in the language outside the smallest model's pretraining (fr, xb)."""
    rng = np.random.default_rng(0)
    cells = []
    for name, parameters, languages, gain in models:
        for inter in ("none", INTERMEDIATE):
            for seed in range(3):
                stats = {}
                for target, langs in LANGUAGES.items():
                    for lang in langs:
                        extra = 0.0 if inter == "none" else gain + (10 if lang in ("fr", "xb") else 0)
                        stats[(target, lang)] = _correct(60 + seed + extra, rng)
                degenerate = (["intermediate"] if (name, inter, seed)
                              == ("synthetic-l", INTERMEDIATE, 2) else [])
                cells.append({"cell": f"{name}-{inter}-t{seed}", "model": name,
                              "parameters": parameters, "pretrain_languages": languages,
                              "intermediate": inter, "target_seed": seed,
                              "intermediate_seed": None if inter == "none" else 0,
                              "kind": "accuracy", "stats": stats, "degenerate": degenerate})
    return cells


def score_row(cell: str, language: str, score: float):
    """One store row of cell ``cell`` (model "a", direct XNLI, 4 test examples)."""
    from xstilts_jax.experiments.store import ScoreRow  # the trainer's layer: only when used

    return ScoreRow(cell=cell, sweep="t", model="a", model_path="/m/a", parameters=10,
                    pretrain_languages=None, intermediate="none", target="xnli",
                    intermediate_seed=None, target_seed=0, language=language, metric="accuracy",
                    score=score, metrics={"accuracy": score}, examples=4, stats_kind="accuracy",
                    phase_keys={"target": "k"}, config_hash="h", degenerate=[])
