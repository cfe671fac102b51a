"""``xstilts demo``: the whole method offline on a synthetic multilingual world (``synthetic.py``),
run through the same cells as ``xstilts run`` (``run.py``)."""

from xstilts_jax.demo.run import DEMO_PHASES, TARGET_SEEDS, format_table, paired_gain, run_demo

__all__ = ["DEMO_PHASES", "TARGET_SEEDS", "format_table", "paired_gain", "run_demo"]
