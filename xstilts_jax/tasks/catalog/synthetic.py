"""The offline demo's tasks (``xstilts demo``): English NLI (intermediate) and paraphrase
identification (target, tested in four synthetic languages), in XTREME's processed pair layout
(``premise<TAB>hypothesis<TAB>label``) under ``<data.dir>/synthetic/``, which the demo writes
from its synthetic world (``demo/synthetic.py``). Tasks of the catalog like any other: the demo
reads, trains and scores them through the same path as ``xstilts run``."""

from __future__ import annotations

from xstilts_jax.tasks.spec import TaskSpec, at, split

SYNTHETIC_LANGUAGES = ("en", "xa", "xb", "xc")
SYNTHETIC_NLI_LABELS = ("entailment", "neutral", "contradiction")  # the world's label order
SYNTHETIC_PARAPHRASE_LABELS = ("not_paraphrase", "paraphrase")
_ORIGIN = "xstilts demo's synthetic world"


def _file(task: str, s: str):
    return at("xtreme_tsv", f"synthetic/{task}/{s}-{{lang}}.tsv", origin=_ORIGIN)


SYNTHETIC_NLI = TaskSpec(
    name="synthetic_nli", family="classification", roles=("demo",), labels=SYNTHETIC_NLI_LABELS,
    languages=("en",), splits=tuple(split(s, _file("nli", s), tfds_note="synthetic")
                                    for s in ("train", "dev")))

SYNTHETIC_PARAPHRASE = TaskSpec(
    name="synthetic_paraphrase", family="classification", roles=("demo",),
    labels=SYNTHETIC_PARAPHRASE_LABELS, languages=SYNTHETIC_LANGUAGES, test_split="test",
    splits=(split("train", _file("paraphrase", "train"), tfds_note="synthetic"),
            split("dev", _file("paraphrase", "dev"), languages=("en",), tfds_note="synthetic"),
            split("test", _file("paraphrase", "test"), tfds_note="synthetic")))

TASKS = (SYNTHETIC_NLI, SYNTHETIC_PARAPHRASE)
