"""`xstilts demo` end to end at smoke sizes: both arms, every language, paired gains, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xstilts_jax.demo import format_table, paired_gain, run_demo, synthetic
from xstilts_jax.experiments import CellResult

SMOKE_PHASES = dict(
    pretrain=dict(num_steps=12, eval_every=6),
    intermediate=dict(num_epochs=None, num_steps=8, eval_every=4),
    target=dict(num_epochs=None, num_steps=6, eval_every=3),
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    results = run_demo(workdir, target_seeds=2, progress=False, phases=SMOKE_PHASES,
                       encoder=dict(num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64))
    return workdir, results


@pytest.mark.slow
def test_demo_writes_both_arms_for_every_language(demo_run):
    workdir, results = demo_run
    assert json.loads((workdir / "results.json").read_text()) == json.loads(json.dumps(results))
    languages = list(synthetic.SyntheticConfig().languages)
    for arm in ("direct", "xstilts"):
        runs = results["arms"][arm]["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            assert list(r["zero_shot"]["per_language"]) == languages
            cell = workdir / "cells" / f"{arm}-s{r['seed']}"
            for lang in languages:  # one prediction per test pair, as XTREME's scorer expects
                lines = (cell / "predictions" / "synthetic_paraphrase" / f"test-{lang}.tsv"
                         ).read_text().splitlines()
                assert len(lines) == 1000 and set(lines) <= {"paraphrase", "not_paraphrase"}
        mean = results["arms"][arm]["zero_shot"]["per_language"]
        for lang in languages:
            assert mean[lang] == pytest.approx(np.mean([r["zero_shot"]["per_language"][lang] for r in runs]))
    assert 0 <= results["arms"]["xstilts"]["intermediate_dev_accuracy"] <= 100


@pytest.mark.slow
def test_demo_cells_are_run_cell_cells_sharing_the_intermediate_phase(demo_run):
    """Each arm x seed is a cell of ``run_cell`` (config.json, a typed results.json); only the
    X-STILTs cells have an intermediate phase, and they share one (one key, trained once)."""
    workdir, results = demo_run
    cells = {name: CellResult.load(workdir / "cells" / name / "results.json")
             for name in ("direct-s0", "direct-s1", "xstilts-s0", "xstilts-s1")}
    for name, cell in cells.items():
        arm, seed = name.split("-s")
        assert (workdir / "cells" / name / "config.json").is_file()
        assert set(cell.phases) == ({"target"} if arm == "direct" else {"intermediate", "target"})
        assert cell.phases["target"].seed == int(seed) and cell.phases["target"].task == \
            "synthetic_paraphrase"
        run = results["arms"][arm]["runs"][int(seed)]
        assert cell.zero_shot["synthetic_paraphrase"]["per_language"] == \
            run["zero_shot"]["per_language"]
    intermediate = {cells[f"xstilts-s{s}"].phases["intermediate"].key for s in (0, 1)}
    targets = {cell.phases["target"].key for cell in cells.values()}
    assert len(intermediate) == 1 and len(targets) == 4
    assert {p.name for p in (workdir / "phases").iterdir()} == intermediate | targets
    # Every phase logs beside its checkpoints; the intermediate phase trained once.
    (key,) = intermediate
    records = [json.loads(line) for line in
               (workdir / "phases" / key / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in records} == {"intermediate"}
    assert [r["step"] for r in records if "loss" in r] == [8]  # one run of 8 updates, not two
    assert (workdir / "pretrain" / "metrics.jsonl").is_file()
    assert (workdir / "pretrained" / "config.json").is_file()  # the pretrained checkpoint


def test_demo_only_duplicates_are_gone():
    """The demo runs through the cell path: its second pipeline (and its helpers) is gone."""
    import importlib

    from xstilts_jax.demo import run as demo_run_module
    from xstilts_jax.train import loop

    for name in ("Features", "ClassificationData", "accuracy"):
        assert not hasattr(loop, name), name
    for name in ("PairFeatures", "pair_features", "train_classification_phase", "zero_shot_eval"):
        assert not hasattr(demo_run_module, name), name
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("xstilts_jax.pipeline")


@pytest.mark.slow
def test_paired_gain_and_table(demo_run):
    _, results = demo_run
    direct, stilts = results["arms"]["direct"]["runs"], results["arms"]["xstilts"]["runs"]
    diffs = [x["zero_shot"]["per_language"]["xb"] - d["zero_shot"]["per_language"]["xb"]
             for d, x in zip(direct, stilts)]
    assert results["gain"]["per_language"]["xb"]["mean"] == pytest.approx(np.mean(diffs))
    assert results["gain"]["per_language"]["xb"]["std"] == pytest.approx(np.std(diffs, ddof=1))
    table = format_table(results)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[3:8]}
    assert list(rows) == ["en", "xa", "xb", "xc", "average"]
    avg = results["gain"]["average"]
    assert rows["average"][3:] == [f"{avg['mean']:+.2f}", "+-", f"{avg['std']:.2f}", f"{avg['wins']}/2"]
    assert avg["wins"] == sum(x["zero_shot"]["average"] > d["zero_shot"]["average"]
                              for d, x in zip(direct, stilts))
    assert "mean of 2 target-phase seeds" in table


def test_paired_gain_by_hand():
    run = lambda *accs: {"zero_shot": {"per_language": {"en": accs[0], "xa": accs[1]},
                                       "average": (accs[0] + accs[1]) / 2}}
    gain = paired_gain([run(60, 50), run(70, 40)], [run(62, 55), run(70, 48)])
    assert gain["per_language"]["en"] == {"mean": 1.0, "std": pytest.approx(np.std([2, 0], ddof=1)),
                                          "wins": 1}
    assert gain["per_language"]["xa"]["mean"] == 6.5 and gain["average"]["mean"] == 3.75
