"""One X-STILTs cell: [intermediate task ->] target task -> zero-shot on the target's languages.

    xstilts run --config configs/xtreme.py:mnli,xnli --workdir runs/mnli-xnli    # X-STILTs
    xstilts run --config configs/xtreme.py:none,xnli --workdir runs/xnli         # direct fine-tuning
    xstilts run --config configs/xtreme.py:squad,udpos ...                       # any pair
    xstilts run --config configs/xtreme.py:mnli,xquad,tiny ...                   # smoke-test sizes

The argument is ``INTERMEDIATE,TARGET[,tiny]``; ``none`` skips the intermediate phase; the
target defaults to xnli. Targets: xnli, pawsx, udpos, panx, xquad, mlqa, tydiqa. INTERMEDIATE
is one task with English training data (the paper's nine: anli_plus, ccg, commonsenseqa,
cosmosqa, hellaswag, mnli, qqp, squad_v2, sst2; also squad and the targets), a mixture
``a+b+c`` trained multi-task (``train/multitask.py``: one sampled task per update, sampling
``proportional`` to the tasks' training rows by default, or ``temperature`` / ``uniform``,
with ``examples_cap``), or ``all9``: the nine together, the paper's multi-task run. ``mlm`` in
a mixture (``mnli+mlm``) adds continued multilingual masked-LM (the paper's alternative (i);
the ``mlm`` section says where the text is).

    xstilts run --config configs/xtreme.py:all9,xnli ...
    xstilts run --config configs/xtreme.py:mnli+squad_v2,pawsx --config.intermediate.sampling=uniform

A mixture shares one max_length: 384 (QA's) when it holds a QA task, so its other tasks'
sequences may be up to 384 tokens there instead of 128.

Hyperparameters follow the paper's code (jiant) for every task: AdamW, lr 1e-5, weight decay
0.01 (not on biases/LayerNorm), 10 % linear warmup then linear decay. Sequences are cut to 128
tokens, QA windows to XTREME's 384 (doc stride 128, questions to 64 tokens).
"""

from xstilts_jax.experiments.defaults import ALL_NINE, TARGETS, cell_config  # noqa: F401


def get_config(arg: str = "mnli,xnli"):
    """``INTERMEDIATE,TARGET[,tiny]`` -> the cell's config (``experiments/defaults.py`` holds
    every field and its default)."""
    args = [a for a in arg.split(",") if a]
    tiny = "tiny" in args
    names = [a for a in args if a != "tiny"]
    if len(names) > 2:
        raise ValueError(f"expected INTERMEDIATE,TARGET[,tiny], got {arg!r}")
    return cell_config(names[0] if names else "mnli", names[1] if len(names) > 1 else "xnli",
                       tiny=tiny)
