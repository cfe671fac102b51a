"""The suite's reference runs, each trained once per test run (session fixtures; under
``-n``, the modules that use one run on one worker: ``conftest.fixture_groups``) and
compared against by every kill, resume and preemption test: the uninterrupted tiny
``mnli,xnli`` cell on XLM-R and on BLOOM, the three-task mixture cell, and the tiny sweep. A
test that needs one asks for its fixture and never writes into its directory (copy it first).

The runs that are compared with them in a child process (``conftest.run_xstilts``) see the
same 8 CPU devices, compilation cache and data, so the programs and the results are the
same programs and results."""

from __future__ import annotations

import json
import pathlib

import pytest

from conftest import REPO, save_tiny_checkpoint, write_nli_data
from xstilts_jax.cli import main

# ------------------------------------------------------------------------- one cell

def cell_args(checkpoint, data, workdir, *extra) -> list[str]:
    """``xstilts run`` of a tiny cell, evaluated in en and de."""
    return ["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:mnli,xnli,tiny",
            "--workdir", str(workdir), f"--config.model.name={checkpoint}",
            f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
            # One bucket: fewer XLA programs to compile per run.
            "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)", *extra]


def assert_same_run(got: pathlib.Path, expected: pathlib.Path, *, task: str = "xnli",
                    languages=("en", "de")) -> dict:
    """A resumed run directory equals the uninterrupted one: ``results.json`` (with the target
    parameters' sha256: the parameters are bit-identical), the metrics log, and every
    prediction file. Returns the results."""
    results = json.loads((expected / "results.json").read_text())
    assert json.loads((got / "results.json").read_text()) == results
    assert (got / "metrics.jsonl").read_text() == (expected / "metrics.jsonl").read_text()
    for lang in languages:
        name = pathlib.Path("predictions") / task / f"test-{lang}.tsv"
        assert (got / name).read_text() == (expected / name).read_text(), name
    return results


def _train_cell(directory: pathlib.Path, args: list[str]) -> pathlib.Path:
    code = main(args)
    assert code == 0, f"the reference run failed (exit {code}): xstilts {' '.join(args)}"
    return directory


@pytest.fixture(scope="session")
def nli_data(tmp_path_factory) -> pathlib.Path:
    """MNLI and XNLI (en, de) files: the data of every reference cell and sweep."""
    return write_nli_data(tmp_path_factory.mktemp("nli"))


@pytest.fixture(scope="session")
def tiny_cell(tmp_path_factory, tiny_checkpoints, nli_data) -> pathlib.Path:
    """The uninterrupted ``mnli,xnli,tiny`` cell on the tiny XLM-R: its run directory."""
    workdir = tmp_path_factory.mktemp("tiny-cell") / "run"
    return _train_cell(workdir, cell_args(tiny_checkpoints("xlmr"), nli_data, workdir))


@pytest.fixture(scope="session")
def bloom_cell(tmp_path_factory, tiny_checkpoints, nli_data) -> pathlib.Path:
    """The same cell on the tiny BLOOM decoder."""
    workdir = tmp_path_factory.mktemp("bloom-cell") / "run"
    return _train_cell(workdir, cell_args(tiny_checkpoints("bloom"), nli_data, workdir))


MIXTURE = "hellaswag+squad_v2+ccg"  # three families; CCG's labels come from its data


def mixture_args(checkpoint, data, workdir, *extra) -> list[str]:
    """``xstilts run`` of the three-task mixture, then XNLI."""
    return ["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:{MIXTURE},xnli,tiny",
            "--workdir", str(workdir), f"--config.model.name={checkpoint}",
            f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
            "--config.intermediate.buckets=(96,)", "--config.target.buckets=(64,)",
            "--config.intermediate.num_steps=24", "--config.intermediate.eval_every=8",
            "--config.target.num_steps=10", "--config.target.eval_every=5", *extra]


@pytest.fixture(scope="session")
def mixture_data(tmp_path_factory) -> pathlib.Path:
    from release_fixtures import write_all

    data = write_all(tmp_path_factory.mktemp("mixture-data"))
    return write_nli_data(data, languages=("en", "de"))


@pytest.fixture(scope="session")
def mixture_cell(tmp_path_factory, tiny_checkpoints, mixture_data) -> pathlib.Path:
    """The uninterrupted mixture cell: hellaswag + squad_v2 + ccg, then XNLI."""
    workdir = tmp_path_factory.mktemp("mixture-cell") / "run"
    return _train_cell(workdir, mixture_args(tiny_checkpoints("xlmr"), mixture_data, workdir))


# ------------------------------------------------------------------------- a sweep

# One bucket: each phase compiles one train and one eval program.
TINY_OVERRIDES = {"intermediate.num_steps": 6, "intermediate.eval_every": 3,
                  "intermediate.buckets": (64,), "target.num_steps": 6, "target.eval_every": 3,
                  "target.buckets": (64,), "eval.languages": ("de",)}


def tiny_sweep(models, data, *, intermediates=("none", "mnli"), target_seeds=(0, 1),
               extra=None):
    """A sweep of ``models`` ((name, path, parameters) triples) on XNLI."""
    from xstilts_jax.experiments.defaults import cell_config
    from xstilts_jax.experiments.sweep import ModelSpec, SweepSpec

    return SweepSpec(
        name="tiny", models=[ModelSpec(name, str(path), parameters=p)
                             for name, path, p in models],
        intermediates=list(intermediates), targets=["xnli"], intermediate_seeds=[0],
        target_seeds=list(target_seeds),
        overrides={"data.dir": str(data), **TINY_OVERRIDES, **(extra or {})},
        base=lambda i, t: cell_config(i, t, tiny=True))


def intermediate_phase_dirs(run_dir) -> list:
    """The phases some other phase starts from."""
    previous = {json.loads((p / "phase.json").read_text())["previous"]
                for p in (run_dir / "phases").iterdir()}
    return [p for p in (run_dir / "phases").iterdir() if p.name in previous]


def comparable(rows, cells=None):
    """Store rows without what differs between two run directories (of ``cells`` only, if
    given: a sweep of part of the reference sweep's grid)."""
    return sorted((r["cell"], r["language"], r["score"], tuple(sorted(r["phase_keys"].items())))
                  for r in rows if cells is None or r["cell"] in cells)


def assert_same_store(run_dir, reference_dir, spec) -> None:
    """The store of ``run_dir`` holds exactly the rows that the uninterrupted reference sweep
    has for the cells of ``spec`` (a sweep of part of its grid)."""
    from xstilts_jax.experiments.store import Store
    from xstilts_jax.experiments.sweep import expand

    cells = {cell.name for cell in expand(spec)}
    expected = comparable(Store(reference_dir).rows(), cells)
    assert {row[0] for row in expected} == cells  # all of them are in the reference grid
    assert comparable(Store(run_dir).rows()) == expected


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory, tiny_checkpoints, nli_data):
    """The tiny sweep, uninterrupted, on the local backend: models ``tiny`` (the tiny XLM-R,
    1000 parameters as far as the report knows) and ``large`` (another random one, 2000) x
    {none, mnli} x target seeds {0, 1}. Every sweep that is killed, preempted, run on Ray or
    in a bucket runs part of this grid and ends with these rows. Returns (spec, run_dir,
    summary)."""
    from xstilts_jax.experiments.launch import run_sweep

    other = save_tiny_checkpoint("xlmr", tmp_path_factory.mktemp("other-xlmr"), seed=1)
    spec = tiny_sweep([("tiny", tiny_checkpoints("xlmr"), 1000), ("large", other, 2000)],
                      nli_data)
    run_dir = tmp_path_factory.mktemp("reference-sweep") / "sweep"
    summary = run_sweep(spec, run_dir, progress=False)
    return spec, run_dir, summary
