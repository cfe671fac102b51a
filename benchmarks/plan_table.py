"""The README's planning table, produced by the command itself: ``xstilts plan`` for every
preset (XLM-R base -> XXL, BLOOM 560M -> 176B) on a few TPU slices, compiled ahead of time on
this host (needs the tpu extra; about a minute per compile on 2 CPU cores).

    python benchmarks/plan_table.py [--slices v5e:2x2,v5e:4x4,v5p:4x4x4] [-o plan_table.md]

Every cell is the XNLI target phase (the same program as an MNLI intermediate phase: a
3-way classification head, 128 tokens, batch 32) with bf16 compute, float32 master weights,
AdamW and remat "full"; the mesh is fsdp over the slice (tensor parallel only where the
slice has more chips than the batch has rows). Chip-hours: one MNLI epoch (392,702 examples)
and one XNLI target phase (2 epochs of MNLI's English training set), at the step-time
estimate (compute roofline at 40 % MFU).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import time

PRESETS = ("xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl", "bloom-560m", "bloom-1b1",
           "bloom-1b7", "bloom-3b", "bloom-7b1", "bloom-176b")
MNLI_EXAMPLES = 392_702
BATCH = 32


def plan(preset: str, slice_name: str, chips: int) -> dict:
    fsdp = min(chips, BATCH)
    command = [sys.executable, "-m", "xstilts_jax.cli", "plan", "--json", "-q",
               "--config", "configs/xtreme.py:none,xnli", "--phase", "target",
               "--topology", slice_name, f"--config.model.name={preset}",
               "--config.model.dtype=bfloat16", "--config.model.remat=full",
               "--config.mesh.shape.data=1", f"--config.mesh.shape.fsdp={fsdp}",
               f"--config.mesh.shape.tensor={chips // fsdp}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: planned, does not fit
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)["target"]


def row(preset: str, result: dict) -> str:
    b = result["per_chip_bytes"]
    step = result["step_seconds"]["estimate"]
    micro = MNLI_EXAMPLES / BATCH
    epoch = micro * step * result["chips"] / 3600
    mesh = "×".join(str(result["mesh"][a]) for a in ("data", "fsdp", "tensor"))
    fits = "yes" if result["fits"] else f"no (+{result['over_by_bytes'] / 2**30:.1f} GiB)"
    hours = (f"{epoch:,.2f} | {2 * epoch:,.2f}" if result["fits"] else "– | –")
    return (f"| {preset} | {result['topology']} | {mesh} | {fits} | "
            f"{b['total'] / 2**30:.1f} / {b['hbm'] / 2**30:.1f} | "
            f"{f'{step:.2f} s' if step >= 1 else f'{step * 1e3:.3g} ms'} | "
            f"{hours} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", default="v5e:2x2,v5e:4x4,v5p:4x4x4")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("-o", "--output", default="plan_table.md")
    parser.add_argument("--cache", default="plan_table.jsonl",
                        help="each plan's JSON, one a line; a rerun reuses what it holds")
    args = parser.parse_args()
    lines = ["| model | slice | mesh d×f×t | fits | GiB per chip (of HBM) | step | "
             "chip-h / MNLI epoch | chip-h / XNLI phase |",
             "|---|---|---|---|---|---|---|---|"]
    cache = pathlib.Path(args.cache)
    cached = ({r["key"]: r["plan"] for r in map(json.loads, cache.read_text().splitlines())}
              if cache.exists() else {})
    for preset in args.presets.split(","):
        for slice_name in args.slices.split(","):
            chips = math.prod(int(d) for d in slice_name.split(":")[1].split("x"))
            start = time.perf_counter()
            key = f"{preset} {slice_name}"
            if key not in cached:
                cached[key] = plan(preset, slice_name, chips)
                with open(args.cache, "a") as f:
                    f.write(json.dumps({"key": key, "plan": cached[key]}) + "\n")
            result = cached[key]
            lines.append(row(preset, result))
            print(f"{lines[-1]}  ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                  flush=True)
            pathlib.Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
