"""The miniature scaling study end to end, timed: ``xstilts sweep --config configs/sweep.py:demo``
then ``xstilts report``, from a cold cache (every ladder model pretrained, every program
compiled), on this machine. The study must finish, report included, in under 30 minutes on 2
cores; this prints where the time goes.

    python benchmarks/demo_study.py [--workdir DIR] [--keep]

Stages: the ladder's MLM pretraining per size (``ladder.json``), the intermediate phases, the
cells (target phase + zero-shot), the report; then the headline (gain vs size with CIs).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    args = parser.parse_args()
    root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="demo-study-"))
    run_dir, cache = root / "demo", root / "cache"
    env = {**os.environ, "XSTILTS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # cold: the study's own cache under XSTILTS_CACHE
    xstilts = [sys.executable, "-m", "xstilts_jax.cli"]
    started = time.perf_counter()
    subprocess.run([*xstilts, "sweep", "--config", f"{REPO}/configs/sweep.py:demo",
                    "--workdir", str(run_dir), "-q"], env=env, check=True)
    swept = time.perf_counter()
    report = subprocess.run([*xstilts, "report", str(run_dir)], env=env, check=True,
                            capture_output=True, text=True)
    done = time.perf_counter()

    pretraining = {}
    for record in sorted((cache / "synthetic-ladder").glob("*/ladder.json")):
        value = json.loads(record.read_text())
        pretraining[record.parent.name.rsplit("-", 1)[0]] = value.get("seconds")
    print(report.stdout)
    print(f"{'stage':<28}{'seconds':>9}")
    for name, seconds in pretraining.items():
        print(f"{'pretrain ' + name:<28}{seconds:9.0f}")
    print(f"{'sweep (all of the above +)':<28}{swept - started:9.0f}")
    print(f"{'report':<28}{done - swept:9.0f}")
    print(f"{'total':<28}{done - started:9.0f}  ({(done - started) / 60:.1f} min, "
          f"{os.cpu_count()} CPUs)")
    if not args.keep and args.workdir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
