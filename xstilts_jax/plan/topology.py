"""Chips and slices the planner compiles for: TPU v4, v5e, v5p and v6e slices by the names
libtpu accepts (``v5e:4x4``, ``v5p:2x2x4``), and ``cpu:N`` (N fake host devices), with each
chip's HBM, peak bf16 FLOP/s and HBM bandwidth.

A TPU slice's devices come from ``jax.experimental.topologies.get_topology_desc``: abstract
devices that XLA compiles for without the chips being there. That needs libtpu, which the
``tpu`` extra installs (``pip install 'xstilts_jax[tpu]'``); nothing here runs on them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re

GIB = 1024 ** 3
TPU_EXTRA = "pip install 'xstilts_jax[tpu]'"


class TopologyError(ValueError):
    """A topology name that cannot be planned for; the message says why and what would do."""


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip as the roofline sees it. ``hbm_bytes`` is what a program may use
    (XLA's own limit where known, else the nominal capacity); ``peak_flops`` is the dense bf16
    matrix peak (XLA runs float32 matmuls on TPU in bf16 passes at default precision)."""

    name: str
    hbm_bytes: int
    peak_flops: float
    hbm_bandwidth: float  # bytes/s
    ici_bandwidth: float  # bytes/s a chip exchanges with the others (inter-chip links)
    source: str  # where the numbers come from
    nominal: bool = False  # True: placeholders (cpu:N), not a real chip's numbers


# Google Cloud's published per-chip figures (cloud.google.com/tpu/docs/v4, v5e, v5p, v6e).
CHIPS: dict[str, Chip] = {
    "v4": Chip("TPU v4", 32 * GIB, 275e12, 1228e9, 300e9,
               "Cloud TPU v4: 32 GiB HBM2, 1228 GB/s, 275 bf16 TFLOP/s, ICI 2400 Gbps"),
    # 15.75 GiB: the HBM XLA reports as available on a v5e chip (16 GiB nominal).
    "v5e": Chip("TPU v5e", int(15.75 * GIB), 197e12, 819e9, 200e9,
                "Cloud TPU v5e: 16 GiB HBM2e (15.75 usable), 819 GB/s, 197 bf16 TFLOP/s, "
                "ICI 1600 Gbps"),
    "v5p": Chip("TPU v5p", 95 * GIB, 459e12, 2765e9, 600e9,
                "Cloud TPU v5p: 95 GiB HBM2e, 2765 GB/s, 459 bf16 TFLOP/s, ICI 4800 Gbps"),
    "v6e": Chip("TPU v6e", 32 * GIB, 918e12, 1640e9, 448e9,
                "Cloud TPU v6e (Trillium): 32 GiB HBM, 1640 GB/s, 918 bf16 TFLOP/s, "
                "ICI 3584 Gbps"),
}

# The slice shapes each generation is sold in (the names libtpu accepts), smallest first:
# what --search walks up. v5e and v6e are 2D (at most 16x16), v4 and v5p 3D.
SLICES: dict[str, tuple[str, ...]] = {
    "v5e": ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"),
    "v6e": ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"),
    "v4": ("2x2x1", "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16"),
    "v5p": ("2x2x1", "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16",
            "8x16x16"),
}

_NAME = re.compile(r"^(?P<gen>[a-z0-9]+):(?P<shape>[0-9x]+)$")


@dataclasses.dataclass(frozen=True)
class Topology:
    """A slice to plan for: ``name`` as given (``v5e:4x4``, ``cpu:8``)."""

    name: str
    kind: str  # "tpu" or "cpu"
    generation: str  # "v5e" ..., or "cpu"
    shape: tuple[int, ...]
    chip: Chip

    @property
    def num_chips(self) -> int:
        return math.prod(self.shape)

    def devices(self) -> list:
        """The slice's devices: abstract TPU devices (libtpu), or this process's first N CPU
        devices."""
        if self.kind == "cpu":
            return cpu_devices(self.num_chips)
        return tpu_devices(self)

    def smaller_and_larger(self) -> tuple[str, ...]:
        """Every slice of this generation, smallest first (what --search walks)."""
        if self.kind == "cpu":
            return tuple(f"cpu:{n}" for n in _powers_of_two_up_to(self.num_chips))
        return tuple(f"{self.generation}:{s}" for s in SLICES[self.generation])


def _powers_of_two_up_to(n: int) -> list[int]:
    sizes, k = [], 1
    while k < n:
        sizes.append(k)
        k *= 2
    return sizes + [n]


def topology_names() -> str:
    """Every accepted name, for --help and errors."""
    lines = [f"{gen}: {', '.join(f'{gen}:{s}' for s in shapes)}" for gen, shapes in SLICES.items()]
    return "; ".join(lines) + "; cpu:N (N fake host devices)"


def parse_topology(name: str, *, cpu_memory_bytes: int | None = None) -> Topology:
    """A Topology from its name; a TopologyError names what is wrong and what is accepted.
    ``cpu_memory_bytes``: the per-device memory of ``cpu:N`` (default: this host's RAM / N)."""
    match = _NAME.match(name.strip().lower()) if isinstance(name, str) else None
    if match is None:
        raise TopologyError(f"topology {name!r}: expected GENERATION:SHAPE such as v5e:4x4, "
                            f"v5p:2x2x4 or cpu:8 (accepted: {topology_names()})")
    gen, shape_text = match["gen"], match["shape"]
    if gen == "cpu":
        if not shape_text.isdigit() or int(shape_text) < 1:
            raise TopologyError(f"topology {name!r}: cpu:N takes a positive device count N")
        n = int(shape_text)
        memory = cpu_memory_bytes or max(1, _host_memory_bytes() // n)
        chip = Chip("CPU device", memory, 1e11, 2e10, 1e10,
                    "nominal: a fake host device (memory per --chip-memory-gib, else host RAM / N; "
                    "100 GFLOP/s, 20 GB/s memory, 10 GB/s between devices: placeholders)",
                    nominal=True)
        return Topology(f"cpu:{n}", "cpu", "cpu", (n,), chip)
    if gen not in SLICES:
        raise TopologyError(f"topology {name!r}: unknown generation {gen!r}; known: "
                            f"{', '.join(SLICES)} and cpu")
    try:
        shape = tuple(int(d) for d in shape_text.split("x"))
    except ValueError:
        raise TopologyError(f"topology {name!r}: the shape must be sizes joined by 'x' "
                            f"(e.g. {SLICES[gen][3]})") from None
    if f"{gen}:{'x'.join(map(str, shape))}" not in {f"{gen}:{s}" for s in SLICES[gen]}:
        raise TopologyError(f"topology {name!r}: {gen} slices are {', '.join(SLICES[gen])}")
    return Topology(f"{gen}:{'x'.join(map(str, shape))}", "tpu", gen, shape, CHIPS[gen])


def _host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GIB


def cpu_devices(n: int) -> list:
    import jax

    devices = jax.devices("cpu")
    if len(devices) < n:
        raise TopologyError(
            f"cpu:{n} needs {n} CPU devices and this process has {len(devices)}: `xstilts plan` "
            f"creates them itself; in Python call jax.config.update('jax_num_cpu_devices', {n}) "
            f"before JAX starts")
    return list(devices[:n])


def tpu_devices(topology: Topology) -> list:
    """Abstract devices of a TPU slice (libtpu compiles for them; none need be present)."""
    if importlib.util.find_spec("libtpu") is None:
        raise TopologyError(f"topology {topology.name}: compiling for TPU needs libtpu; install "
                            f"the tpu extra: {TPU_EXTRA}")
    from jax.experimental import topologies

    # libtpu takes a machine-wide lock (/tmp/libtpu_lockfile) meant for processes that drive
    # chips; compiling for abstract devices needs none, so planners may run side by side.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

    # A host holds at most 2x2x1 chips (v5e/v6e: 2x4); smaller slices name their own bounds.
    host = tuple(min(d, b) for d, b in zip((*topology.shape, 1, 1)[:3], (2, 2, 1)))
    try:
        description = topologies.get_topology_desc(
            platform="tpu", topology_name=topology.name, chips_per_host_bounds=list(host))
    except Exception as e:  # libtpu's INVALID_ARGUMENT
        raise TopologyError(f"topology {topology.name}: libtpu refused it: {e}") from e
    return list(description.devices)


__all__ = ["CHIPS", "Chip", "GIB", "SLICES", "TPU_EXTRA", "Topology", "TopologyError",
           "cpu_devices", "parse_topology", "topology_names", "tpu_devices"]
