"""Exact top-k retrieval: ``xstilts_jax.retrieval.knn`` vs numpy blockwise vs faiss-cpu.

What it measures
    Wall time and peak memory of an exact top-``k`` (default 4) inner-product search of N
    queries against N keys (N = 20k, 50k, 100k by default; ``--quick``: 2k, 5k), d = 768,
    float32, random unit vectors (standard normal rows, L2-normalised; seed 0 for queries,
    1 for keys), for

    * ``ours``:  ``knn(queries, keys, k)`` with its defaults (cosine: it L2-normalises both
      sides again, which the others skip; float32 compute; host numpy inputs streamed
      block by block);
    * ``numpy``: plain numpy blockwise: ``queries[i:i+B] @ keys.T`` (``[B, d] @ [d, N]``,
      BLAS sgemm) then ``np.argpartition`` for the top k and a sort of those k
      (``--numpy-block`` rows per block, default 512);
    * ``faiss``: ``faiss.IndexFlatIP`` (exact inner product): ``add(keys)`` then
      ``search(queries, k)``; the index is built inside the timed call (it copies the keys),
      as a one-off BUCC/Tatoeba search would. Skipped with a message when faiss-cpu is not
      installed (``pip install faiss-cpu``).

    ``--ours-bf16`` adds a row for ``knn(..., compute_dtype=jnp.bfloat16)`` (not equal
    precision; indices may differ at near-ties).

    Goals (issue "Vectorized retrieval kernels for BUCC and Tatoeba"): ours >= 1.5x the speed
    of faiss-cpu, and ours' peak memory <= 1.5x (both embedding sets + one block), where one
    block is ours' float32 score block ``[block, key_block]`` as ``knn.block_shape`` sizes it.
    Both verdicts are printed per N.

    Measured on 2 shared CPU cores (other jobs running, so absolute times drift between runs;
    the alternating rounds keep the ratios fair): speed 3.36x faiss-cpu at N = 20k, 4.44x at
    50k (3 rounds), 3.67x at 100k (1 round) (goal met); memory 1.24x at 20k, 1.10x at 50k,
    1.07x at 100k (goal met). Before the kernel kept one score buffer per step and stopped
    queueing a call ahead, 20k measured 1.38-1.89x.

Method
    Each method runs in its own worker subprocess (one per method per size), so each has its
    own memory high-water mark and nothing leaks between them. All workers are pinned to the
    same CPUs (``--threads``, default all the CPUs this process may run on):
    ``os.sched_setaffinity`` before any import (XLA's CPU client sizes its thread pool from
    the affinity mask), ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS``
    in the environment (numpy's BLAS, faiss's OpenMP and its bundled OpenBLAS) and
    ``faiss.omp_set_num_threads``. Each worker generates the same data itself (same seeds,
    so identical arrays), warms up (ours: the jit compile, on small arrays of the same block
    shapes, then one short search on the real data), then waits for commands. The parent
    times ``--repeats`` rounds of ``--calls`` searches per method with the shared
    ``alternating_rounds`` (one call at a time, methods alternating, order flipped every
    round; one method runs at a time, so they never compete for the cores) and reports the
    median, min and max seconds per search, queries/s, GFLOP/s (2 N^2 d per search) and the
    ratio of medians vs faiss. Results are cross-checked: the share of queries whose top-k
    indices equal ours (ties or rounding at near-ties may differ in the last place).

Memory
    Linux RSS, read by each worker about itself: ``base`` = resident set after imports,
    runtime start and warm-up on small arrays (libraries, compiled code), before any
    embedding exists. The kernel's high-water mark is then cleared (``/proc/self/clear_refs``
    5, so the compile's transient peak is not charged to the search; if that is not
    permitted the lifetime ``ru_maxrss`` is used, an upper bound) and ``peak`` = ``VmHWM``
    after all timed calls. ``peak - base`` is what the search holds on top of the libraries:
    the two embedding sets (generated in place, no temporaries: they add exactly
    2 x N x d x 4 bytes) plus whatever the method adds (ours: the key chunk, the query group
    and the score block of the running call, and allocator slack; numpy: the ``[B, N]``
    score block and argpartition's index array; faiss: its copy of the keys in the index and
    its score blocks). The ratio column divides it by (both embedding sets + ours' score
    block); RSS counts pages touched, so it is an honest upper bound of what the process
    needed.

GPU
    When JAX's default backend is not the CPU, ``ours`` gets device arrays (``device_put``
    once, outside the timing), the float32 matmul peak of the device is measured (a jitted
    ``[8192, 8192] @ [8192, 8192]`` at ``Precision.HIGHEST``) and TFLOP/s achieved vs that
    peak are printed; its memory is the device's ``peak_bytes_in_use``. numpy and faiss stay
    on the CPU.

Run
    python benchmarks/retrieval.py --quick
    python benchmarks/retrieval.py                    # 20k, 50k, 100k
    python benchmarks/retrieval.py --sizes 20000 50000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_forward import _cpu_count, alternating_rounds, print_table  # noqa: E402  (shared timer)

METHODS = ("ours", "numpy", "faiss")
PREFIX = "@@ "  # protocol lines on a worker's stdout; anything else is passed through


# ----------------------------------------------------------------------------- worker side

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_PEAK_RESET = False  # whether _reset_peak() cleared the kernel's high-water mark


def _reset_peak() -> None:
    """Clear the process's RSS high-water mark (VmHWM; Linux >= 4.0), so the peak read
    later covers the search only, not the jit compile or warm-up before it."""
    global _PEAK_RESET
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _PEAK_RESET = True
    except OSError:  # not permitted: fall back to the lifetime peak (an upper bound)
        _PEAK_RESET = False


def _peak_rss() -> int:
    """VmHWM since _reset_peak(), or the lifetime ru_maxrss when it could not reset."""
    if _PEAK_RESET:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _unit_rows(n: int, d: int, seed: int):
    """[n, d] float32 standard normal rows scaled to unit norm, written in place: no
    temporaries, so the RSS the data adds is the array itself (n x d x 4 bytes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.empty((n, d), np.float32)
    for i in range(0, n, 8192):
        part = x[i:i + 8192]
        rng.standard_normal(out=part, dtype=np.float32)
        part /= np.sqrt(np.einsum("ij,ij->i", part, part))[:, None]
    return x


def _warm_query_rows(n: int, rows: int) -> int:
    """Query rows that make knn compile every shape a search of n queries uses (blocks of
    `rows`, as block_shape gives them): one full group of query blocks per call and, if n
    leaves one, the last group's size."""
    from xstilts_jax.retrieval import _BLOCKS_PER_CALL

    blocks = -(-n // rows)
    per_call = min(_BLOCKS_PER_CALL, blocks)
    rest = blocks % per_call if blocks > per_call else 0
    return min(n, (per_call + rest) * rows)


def _say(*words) -> None:
    print(PREFIX + " ".join(str(w) for w in words), flush=True)


def _numpy_knn(queries, keys, k: int, block: int):
    import numpy as np

    n = queries.shape[0]
    scores = np.empty((n, k), np.float32)
    indices = np.empty((n, k), np.int64)
    for i in range(0, n, block):
        s = queries[i:i + block] @ keys.T  # [B, N]
        top = np.argpartition(s, s.shape[1] - k, axis=1)[:, -k:]
        vals = np.take_along_axis(s, top, axis=1)
        order = np.lexsort((top, -vals), axis=1)  # score desc, then index asc
        scores[i:i + block] = np.take_along_axis(vals, order, axis=1)
        indices[i:i + block] = np.take_along_axis(top, order, axis=1)
    return scores, indices


def worker(args) -> None:
    """One method, one size: set up, then serve 'run' / 'stats' / 'save PATH' / 'quit'."""
    import numpy as np

    method, n, d, k = args.worker, args.n, args.d, args.k
    info = {}
    if method in ("ours", "ours-bf16"):
        import jax
        import jax.numpy as jnp

        from xstilts_jax.retrieval import block_shape, knn

        gpu = jax.default_backend() != "cpu"
        compute = jnp.bfloat16 if method == "ours-bf16" else jnp.float32
        # knn's own block sizes for n x n (passing them back changes nothing)
        block, key_block = block_shape(n, n, k, block_size=args.block_size or None,
                                       key_block_size=args.key_block_size or None)
        kw = dict(block_size=block, key_block_size=key_block, compute_dtype=compute)
        # compile on small arrays with this size's block shapes, before the data exist
        rng = np.random.default_rng(2)
        warm_q = _warm_query_rows(n, block)
        warm_k = 2 * key_block - 1 if key_block < n else n  # key chunks without and with padding
        knn(rng.standard_normal((warm_q, d), dtype=np.float32),
            rng.standard_normal((warm_k, d), dtype=np.float32), k, **kw)
        info.update(block=block, key_block=key_block, backend=jax.default_backend(),
                    devices=jax.device_count())
        if gpu:
            info["peak_tflops"] = _matmul_peak(jax, jnp)
    elif method == "faiss":
        import faiss

        faiss.omp_set_num_threads(args.threads)
        info["faiss"] = faiss.__version__
        info["faiss_threads"] = faiss.omp_get_max_threads()
        index = faiss.IndexFlatIP(d)
        index.add(np.eye(8, d, dtype=np.float32))
        index.search(np.eye(8, d, dtype=np.float32), 4)
    base = _rss()
    _reset_peak()
    queries, keys = _unit_rows(n, d, 0), _unit_rows(n, d, 1)
    if method in ("ours", "ours-bf16"):
        if gpu:
            queries, keys = jax.device_put(queries), jax.device_put(keys)
            jax.block_until_ready((queries, keys))

        def search():
            return knn(queries, keys, k, **kw)
    elif method == "numpy":
        def search():
            return _numpy_knn(queries, keys, k, args.numpy_block)
    else:
        def search():
            index = faiss.IndexFlatIP(d)
            index.add(keys)
            return index.search(queries, k)
    probe = queries[:min(n, 512)]
    if method in ("ours", "ours-bf16"):
        knn(queries[:warm_q], keys, k, **kw)  # nothing left to compile: the same shapes
    elif method == "numpy":
        _numpy_knn(probe, keys, k, args.numpy_block)
    _say("ready", base, " ".join(f"{a}={b}" for a, b in info.items()))
    last = None
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "run":
            t0 = time.perf_counter()
            last = search()
            _say("done", time.perf_counter() - t0)
        elif command[0] == "stats":
            device_peak = -1
            if method in ("ours", "ours-bf16") and gpu:
                stats = jax.devices()[0].memory_stats() or {}
                device_peak = stats.get("peak_bytes_in_use", -1)
            _say("stats", base, _peak_rss(), device_peak)
        elif command[0] == "save":
            np.save(command[1], np.asarray(last[1]).astype(np.int64))
            _say("saved")
        elif command[0] == "quit":
            return


def _matmul_peak(jax, jnp, size: int = 8192, calls: int = 5) -> float:
    """TFLOP/s of a float32 [size, size] @ [size, size] at Precision.HIGHEST (median of 3)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda x, y: jnp.dot(x, y, precision=jax.lax.Precision.HIGHEST))
    f(a, a).block_until_ready()
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = [f(a, a) for _ in range(calls)]
        jax.block_until_ready(out)
        rates.append(2 * size ** 3 * calls / (time.perf_counter() - t0) / 1e12)
    return statistics.median(rates)


# ----------------------------------------------------------------------------- parent side

class Worker:
    def __init__(self, method: str, n: int, args, cpus: list[int]):
        env = dict(os.environ)
        threads = str(len(cpus))
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   VECLIB_MAXIMUM_THREADS=threads)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n", str(n),
               "--d", str(args.d), "--k", str(args.k), "--threads", threads,
               "--numpy-block", str(args.numpy_block),
               "--block-size", str(args.block_size or 0),
               "--key-block-size", str(args.key_block_size or 0)]
        self.method = method
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        words = self.reply("ready")
        self.base, self.info = int(words[0]), dict(w.split("=", 1) for w in words[1:])

    def reply(self, expected: str) -> list[str]:
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                words = line[len(PREFIX):].split()
                if words[0] != expected:
                    raise RuntimeError(f"{self.method}: expected {expected!r}, got {line!r}")
                return words[1:]
            sys.stdout.write(f"  [{self.method}] {line}")
        raise RuntimeError(f"{self.method} worker exited (rc {self.proc.wait()})")

    def ask(self, command: str, expected: str) -> list[str]:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply(expected)

    def run(self) -> None:
        self.ask("run", "done")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait()


def _faiss_available() -> str | None:
    """None when faiss imports, else the reason (checked in a subprocess: no threads here)."""
    probe = subprocess.run([sys.executable, "-c", "import faiss; faiss.IndexFlatIP"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]




def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="N per side (default 20000 50000 100000; --quick: 2000 5000)")
    p.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per method")
    p.add_argument("--calls", type=int, default=1, help="searches per method per round")
    p.add_argument("--threads", type=int, default=None,
                   help="CPUs every method is pinned to (default: all this process may use)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--ours-bf16", action="store_true", help="add knn(compute_dtype=bfloat16)")
    p.add_argument("--block-size", type=int, default=0, help="knn block_size (0: its default)")
    p.add_argument("--key-block-size", type=int, default=0,
                   help="knn key_block_size (0: its default)")
    p.add_argument("--numpy-block", type=int, default=512, help="query rows per numpy block")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    sizes = args.sizes or ([2000, 5000] if args.quick else [20000, 50000, 100000])
    allowed = sorted(os.sched_getaffinity(0))
    threads = args.threads or _cpu_count()
    if threads > len(allowed):
        p.error(f"--threads {threads}: only {len(allowed)} CPUs available")
    cpus = allowed[:threads]
    methods = list(args.methods)
    if args.ours_bf16:
        methods.insert(methods.index("ours") + 1 if "ours" in methods else 0, "ours-bf16")
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    if "faiss" in methods:
        why = _faiss_available()
        if why:
            print(f"faiss-cpu is not installed ({why}): the faiss column is skipped; "
                  f"`pip install faiss-cpu` to include it")
            methods.remove("faiss")
    print(f"threads: {threads} (CPUs {cpus}: sched_setaffinity of every worker, "
          f"OMP/OPENBLAS/MKL_NUM_THREADS={threads}, faiss.omp_set_num_threads({threads}); "
          f"XLA sizes its pool from the affinity mask)")
    print(f"exact top-{args.k}, d={args.d}, float32 random unit vectors; {args.repeats} rounds x "
          f"{args.calls} call(s) per method, alternating")

    rows = [("N", "method", "median s", "min s", "max s", "queries/s", "GFLOP/s", "vs faiss",
             "peak RSS MB", "peak-base MB", "/(Q+K+blk)", "same top-k")]
    verdicts = []
    tmp = tempfile.mkdtemp(prefix="retrieval-bench-")
    for n in sizes:
        print(f"\nN = {n}: starting workers ...", flush=True)
        workers = {}
        try:
            for m in methods:
                t0 = time.perf_counter()
                workers[m] = Worker(m, n, args, cpus)
                print(f"  {m}: ready in {time.perf_counter() - t0:.1f}s "
                      f"{' '.join(f'{a}={b}' for a, b in workers[m].info.items())}", flush=True)
            flops = 2.0 * n * n * args.d
            rates = alternating_rounds({m: w.run for m, w in workers.items()}, repeats=args.repeats,
                                       calls=args.calls, work_per_call=1.0, unit="searches/s",
                                       digits=3)
            seconds = {m: [1.0 / r for r in rs] for m, rs in rates.items()}
            stats, same = {}, {}
            for m, w in workers.items():
                base, peak, device_peak = (int(x) for x in w.ask("stats", "stats"))
                stats[m] = (base, peak, device_peak)
                w.ask(f"save {tmp}/{m}-{n}.npy", "saved")
            import numpy as np

            if "ours" in workers:
                ref = np.load(f"{tmp}/ours-{n}.npy")
                for m in workers:
                    same[m] = f"{100 * np.mean((np.load(f'{tmp}/{m}-{n}.npy') == ref).all(1)):.2f}%"
            ours_info = (workers.get("ours") or workers.get("ours-bf16"))
            # ours' float32 score block as knn sizes it (block_shape)
            block = (int(ours_info.info["block"]) * int(ours_info.info["key_block"]) * 4
                     if ours_info else 0)
            budget = 2 * n * args.d * 4 + block
            faiss_med = statistics.median(seconds["faiss"]) if "faiss" in seconds else None
            for m in workers:
                med = statistics.median(seconds[m])
                base, peak, device_peak = stats[m]
                rows.append((n, m, f"{med:.2f}", f"{min(seconds[m]):.2f}", f"{max(seconds[m]):.2f}",
                             f"{n / med:.0f}", f"{flops / med / 1e9:.1f}",
                             f"{faiss_med / med:.2f}x" if faiss_med else "-",
                             f"{peak / 2**20:.0f}", f"{(peak - base) / 2**20:.0f}",
                             f"{(peak - base) / budget:.2f}", same.get(m, "-")))
                if device_peak > 0:
                    print(f"  {m}: device peak_bytes_in_use {device_peak / 2**20:.0f} MB")
                if "peak_tflops" in workers[m].info:
                    peak_tf = float(workers[m].info["peak_tflops"])
                    print(f"  {m}: {flops / med / 1e12:.1f} TFLOP/s vs measured float32 matmul "
                          f"peak {peak_tf:.1f} TFLOP/s ({100 * flops / med / 1e12 / peak_tf:.0f}%)")
            if "ours" in workers:
                med = statistics.median(seconds["ours"])
                mem = (stats["ours"][1] - stats["ours"][0]) / budget
                speed = f"{faiss_med / med:.2f}x faiss" if faiss_med else "faiss not run"
                verdicts.append(f"N={n}: speed {speed} (goal >= 1.5x: "
                                f"{'met' if faiss_med and faiss_med / med >= 1.5 else 'NOT met'}); "
                                f"memory {mem:.2f}x (Q+K+block) (goal <= 1.5x: "
                                f"{'met' if mem <= 1.5 else 'NOT met'})")
        finally:
            for w in workers.values():
                w.close()
    print(f"\nblock = ours' float32 score block, {ours_info.info['block']} x "
          f"{ours_info.info['key_block']} at N = {sizes[-1]} (knn.block_shape)" if ours_info else "")
    print_table(rows[0], rows[1:], left_columns=2)
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
