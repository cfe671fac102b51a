"""heap.hold_freed_memory: a big block freed and allocated again on another thread (as XLA:CPU's
runtime threads do each step) is served from memory the process kept, not faulted in anew."""

import subprocess
import sys
import textwrap

import pytest

from xstilts_jax import heap

pytestmark = pytest.mark.skipif(not heap.release_free_memory(), reason="needs glibc's malloc")

# A fresh interpreter per case: the setting is process-wide and must precede the threads.
# Prints the minor page faults of the second fill of a 256 MiB block, malloc'd, filled and
# freed twice on a worker thread.
_PROBE = textwrap.dedent("""
    import ctypes, resource, sys, threading
    from xstilts_jax import heap
    if sys.argv[1] == "hold":
        assert heap.hold_freed_memory() and heap.hold_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 256 << 20
    faults = []
    def fill_twice():
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = libc.malloc(size)
            ctypes.memset(block, 1, size)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            libc.free(block)
    worker = threading.Thread(target=fill_twice)
    worker.start(); worker.join()
    print(faults[1])
""")


def _second_fill_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


def test_held_memory_is_reused_without_faults():
    pages = (256 << 20) // 4096
    # glibc's default: the block is unmapped on free and faulted in again (4 KiB pages, or
    # fewer, bigger ones where transparent huge pages are on for all memory)
    default = _second_fill_faults("default")
    held = _second_fill_faults("hold")
    assert held < pages // 100, (held, default)
    assert default > 10 * max(held, 1) or default >= pages // 512, (held, default)


def test_release_returns_true_on_glibc():
    assert heap.release_free_memory() is True
