"""Every task the tool knows, one :class:`~xstilts_jax.tasks.spec.TaskSpec` each: XTREME's targets
and retrieval tasks (``xtreme.py``), the English intermediate tasks (``intermediate.py``) and
the offline demo's synthetic tasks (``synthetic.py``)."""

from xstilts_jax.tasks.catalog import intermediate, synthetic, xtreme

TASKS = (*xtreme.TASKS, *intermediate.TASKS, *synthetic.TASKS)
