"""benchmarks/device_check.sh --dry-run: the GPU check runs every part on the CPU with tiny
shapes and writes its whole JSON, so the script a GPU lease depends on cannot rot."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, xla_flags


@functools.cache
def _device_check():
    path = REPO / "benchmarks" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_schema_check_finds_what_is_missing_or_mistyped():
    dc = _device_check()
    schema = {"a": dc.NUM, "b": {"c": dc.INT}, "d": [dc.STR]}
    assert dc.schema_errors({"a": 1.5, "b": {"c": 2}, "d": ["x"]}, schema) == []
    assert dc.schema_errors({"a": 1, "b": None, "d": []}, schema) == []
    assert dc.schema_errors({"a": True, "b": None, "d": [3]}, schema, nulls=False) == [
        "a: expected int/float, got bool", "b: expected an object, got NoneType",
        "d[0]: expected str, got int"]
    assert dc.schema_errors({"b": {}}, schema) == ["a: missing", "b.c: missing", "d: missing"]


def test_a_hung_or_failing_part_is_recorded_not_fatal(tmp_path):
    dc = _device_check()
    args = argparse.Namespace(workdir=str(tmp_path), attention="auto", dry_run=True)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    entry, result = dc.launch("device", args, 0.2, env, tmp_path)  # killed before it imports jax
    assert (entry["status"], result) == ("timeout", None)
    assert entry["error"] == "killed after its limit of 0.2 s"
    entry, result = dc.launch("no_such_part", args, 60, env, tmp_path)
    assert (entry["status"], result) == ("error", None)
    assert entry["error"] == "ValueError: unknown part 'no_such_part'"
    assert "Traceback" in entry["log_tail"]


def test_gpu_limits_fit_eight_minutes():
    assert sum(gpu for gpu, _ in _device_check().PARTS.values()) < 8 * 60


@pytest.mark.slow
def test_dry_run_writes_every_field(tmp_path):
    """The shell entry, as on a GPU machine but --dry-run: rc 0, every part ok, every field
    of SCHEMA present with its type and none left null."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    # One CPU device, as on a GPU machine's one chip (conftest forces 8 for the sharding tests).
    env["XLA_FLAGS"] = xla_flags(devices=None)
    out = tmp_path / "x.json"
    proc = subprocess.run(["bash", "benchmarks/device_check.sh", "--dry-run", "--out", str(out),
                           "--workdir", str(tmp_path / "work")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    dc = _device_check()
    assert dc.schema_errors(report, nulls=False) == []
    assert {name: part["status"] for name, part in report["parts"].items()} == \
        {name: "ok" for name in dc.PARTS}
    assert report["mode"] == "dry-run" and report["install"] == [] and report["all_ok"]
    assert (report["device"]["platform"], report["device"]["count"]) == ("cpu", 1)
    assert report["attention"]["resolved"]
    for train in report["train"].values():
        assert train["preset"] == "tiny" and train["mfu_percent"] > 0
        assert train["attention"] == report["attention"]["resolved"]
    run = report["xstilts_run"]
    assert run["exit_code"] == 0 and json.loads(open(run["results_path"]).read())["zero_shot"]
    assert set(run["per_language"]) == {"en", "xa"} and run["metric"] == "accuracy"
    loop = report["loop_overhead"]
    assert set(loop["delays_ms"]) == {"3"} and loop["steps"] == 12
    assert loop["train_T_minus_D_ms_at_3"] == loop["delays_ms"]["3"]["train"]["T_minus_D_ms"]
    assert loop["delays_ms"]["3"]["predict"]["D_slept_ms"] >= 3.0
    assert report["goal"]["met"] is None  # not a GPU: no verdict
    assert report["goal"]["value_percent"] == report["train"]["xlmr_large"]["mfu_percent"]
