"""The C heap under XLA:CPU's buffers: keep what a step frees for the next step.

XLA:CPU allocates a step's temporaries (for xlmr-base at 8 x 128 the activations kept for the
backward pass and the gradients, about 1.5 GB) with ``malloc`` on its own threads and frees them
when the step ends. glibc serves such blocks with a fresh ``mmap`` (past 32 MB, and past 64 MB
always in a thread's own arena) and unmaps them on ``free``, so every step faults all of it in
again and the kernel zeroes it: measured ~388k page faults and 0.7-0.9 s of system time per
xlmr-base train step on two cores, 2-4 s when torch had run in the same process. Held, the
faults are gone (0 a step) and the step is 0.5-1 s shorter.

glibc only; elsewhere (macOS, musl) both functions do nothing and say so.
"""

from __future__ import annotations

import ctypes
import functools

# mallopt(3) parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# mallopt(3): "setting M_TRIM_THRESHOLD to -1 disables trimming completely" (a threshold of
# 2 GiB, the most an int says otherwise, still trimmed xlmr-base's step at the full vocabulary)
_NEVER_TRIM = -1

_held = False


@functools.lru_cache(maxsize=1)
def _libc():
    """The process's glibc (``mallopt`` and ``malloc_trim``), or None where there is none."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 (both must exist)
        return libc
    except (OSError, AttributeError):
        return None


def hold_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it; True if applied.

    One arena for every thread (the brk heap, which has no size cap, where a thread's own
    arena hands blocks past 64 MB to ``mmap`` regardless of settings), no ``mmap`` for big
    blocks, and no trimming of the heap's free top. The price: the
    process keeps its peak heap (it would need it again next step) and threads share one
    arena's lock (XLA:CPU's few big blocks a step do not contend).

    Call it before JAX starts its CPU runtime (the first computation or ``jax.devices()``):
    a thread that has already taken an arena keeps it. ``xstilts`` does this first thing; the
    same effect from outside a process: ``GLIBC_TUNABLES=glibc.malloc.arena_max=1:
    glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=18446744073709551615``. Idempotent.
    """
    global _held
    libc = _libc()
    if libc is None:
        return False
    if not _held:
        applied = (libc.mallopt(_M_ARENA_MAX, 1), libc.mallopt(_M_MMAP_MAX, 0),
                   libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
        _held = all(ok == 1 for ok in applied)
    return _held


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the OS now (``malloc_trim(0)``); True if done.

    For a pass that must stay small while it runs (retrieval's key chunks), not for steps
    that allocate the same blocks again.
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


POLICIES = ("hold", "glibc")


def apply_policy(policy: str) -> str:
    """Apply ``hold`` (``hold_freed_memory``) or leave glibc's default; a line saying which.

    For benchmarks, whose two sides share the process and so the policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"heap policy must be one of {POLICIES}, got {policy!r}")
    if policy == "glibc":
        return "C heap: glibc's default (blocks past 32 MB mapped and unmapped per use)"
    if hold_freed_memory():
        return ("C heap: held (xstilts_jax.heap.hold_freed_memory, as `xstilts` runs: freed "
                "blocks reused, no page faults per step), for every side of this process")
    return "C heap: default (no glibc here to hold freed memory)"
