"""`xstilts demo` end to end at smoke sizes: both arms, every language, paired gains, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xstilts_jax import synthetic
from xstilts_jax.demo import format_table, paired_gain, run_demo

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


def test_demo_writes_both_arms_for_every_language(demo_run):
    workdir, results = demo_run
    assert json.loads((workdir / "results.json").read_text()) == json.loads(json.dumps(results))
    languages = list(synthetic.SyntheticConfig().languages)
    for arm in ("direct", "xstilts"):
        runs = results["arms"][arm]["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            assert list(r["zero_shot"]["per_language"]) == languages
            for lang in languages:  # one prediction per test pair, as XTREME's scorer expects
                lines = (workdir / "predictions" / f"synthetic-paraphrase-{arm}-s{r['seed']}"
                         / f"test-{lang}.tsv").read_text().splitlines()
                assert len(lines) == 1000 and set(lines) <= {"paraphrase", "not_paraphrase"}
        mean = results["arms"][arm]["zero_shot"]["per_language"]
        for lang in languages:
            assert mean[lang] == pytest.approx(np.mean([r["zero_shot"]["per_language"][lang] for r in runs]))
    assert 0 <= results["arms"]["xstilts"]["intermediate_dev_accuracy"] <= 100
    # Only the X-STILTs arm has an intermediate phase; all of them log to one metrics file.
    phases = {json.loads(line)["phase"] for line in (workdir / "metrics.jsonl").read_text().splitlines()}
    assert phases == {"pretrain", "xstilts-intermediate", "direct-target-s0", "direct-target-s1",
                      "xstilts-target-s0", "xstilts-target-s1"}


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
