"""File format readers, grouped by format (not by task): each reads one kind of file into a
:class:`~xstilts_jax.tasks.io.ReadResult` of one example type; which task keeps which file
where is the catalog's business. They import only ``tasks.io`` and ``tasks.examples``."""
