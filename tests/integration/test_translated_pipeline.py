"""The paper's alternative (ii): an intermediate phase trained on English plus machine
translations of its training data (``intermediate.train_languages``)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, write_nli_data
from xstilts_jax.cli import main



def _run(data, workdir, checkpoint, *extra):
    return main(["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:mnli,xnli,tiny",
                 "--workdir", str(workdir), f"--config.model.name={checkpoint}",
                 f"--config.data.dir={data}", "--config.eval.languages=('de',)", "-q",
                 "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)",
                 "--config.intermediate.num_steps=6", "--config.target.num_steps=4", *extra])


@pytest.mark.slow
def test_mnli_with_its_translations(tmp_path, tiny_checkpoints, capsys):
    data = write_nli_data(tmp_path / "data", train=60, languages=("en", "de"))
    folder = data / "XNLI-MT-1.0" / "multinli"
    folder.mkdir(parents=True)
    rows = ["premise\thypo\tlabel"] + [
        f"der hund {i}\tdie katze\t{('contradictory', 'entailment', 'neutral')[i % 3]}"
        for i in range(25)] + ["kaputt"]  # one broken row: skipped and counted
    (folder / "multinli.train.de.tsv").write_text("\n".join(rows) + "\n")
    checkpoint = tiny_checkpoints("xlmr")
    workdir = tmp_path / "run"
    assert _run(data, workdir, checkpoint,
                "--config.intermediate.train_languages=('en','de')") == 0, \
        capsys.readouterr().err
    results = json.loads((workdir / "results.json").read_text())
    entries = results["data"]
    assert entries["mnli/train/en"]["examples"] == 60
    assert entries["mnli/translate_train/de"]["examples"] == 25
    assert sum(entries["mnli/translate_train/de"]["skipped"].values()) == 1
    assert entries["mnli/train/en+de"] == {"examples": 85, "rows": 85}
    # a language without translations is refused, naming the ones there are
    assert _run(data, tmp_path / "bad", checkpoint,
                "--config.intermediate.train_languages=('en','ja')") == 2
    err = capsys.readouterr().err
    assert "train_languages ['en', 'ja']: mnli has translated training data in ar, bg" in err
