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

import ml_collections

from xstilts_jax.sharding import DEFAULT_RULES

QA_TASKS = ("squad", "squad_v2", "xquad", "mlqa", "tydiqa")
# The paper's nine intermediate tasks (its Table 1), the "all9" mixture.
ALL_NINE = ("anli_plus", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp",
            "squad_v2", "sst2")


def phase(task: str, **overrides) -> ml_collections.ConfigDict:
    """One phase's section; ``task`` is a task name or a ``+``-joined mixture."""
    qa = any(t in QA_TASKS for t in task.split("+"))
    fields = dict(task=task, learning_rate=1e-5, batch_size=32, num_steps=None, num_epochs=2.0,
                  warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, grad_accumulation=1,
                  eval_every=1000, checkpoint_every=None, patience=None,
                  max_length=384 if qa else 128,
                  buckets=(128, 256, 384) if qa else (32, 64, 128), eval_batch_size=None,
                  doc_stride=128, max_query_length=64, max_answer_length=30, n_best_size=20,
                  # mixtures only (train/multitask.py): how tasks are drawn per update
                  sampling="proportional", temperature=1.0, examples_cap=0,  # 0: no cap
                  # alternative (ii): train on English plus machine translations, e.g.
                  # ('en', 'de', 'fr'); () : English only
                  train_languages=())
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def get_config(arg: str = "mnli,xnli") -> ml_collections.ConfigDict:
    args = [a for a in arg.split(",") if a]
    tiny = "tiny" in args
    names = [a for a in args if a != "tiny"]
    if len(names) > 2:
        raise ValueError(f"expected INTERMEDIATE,TARGET[,tiny], got {arg!r}")
    intermediate = names[0] if names else "mnli"
    if intermediate == "all9":
        intermediate = "+".join(ALL_NINE)
    target = names[1] if len(names) > 1 else "xnli"
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict(dict(
        name="FacebookAI/xlm-roberta-base",  # a checkpoint directory, offline name or hub id
        dtype="float32", hidden_dropout=0.1, attention_dropout=0.1))
    config.data = ml_collections.ConfigDict(dict(
        source="files",  # "files": XTREME's download/ folder; "tfds": prepared TFDS datasets
        dir="data",  # XTREME's download/ folder (mnli/ and squad/ beside xnli/, ...)
        tfds_dir=""))  # TFDS data_dir for source="tfds" ("": $TFDS_DATA_DIR or ~/tensorflow_datasets)
    # Alternative (i): "mlm" in an intermediate mixture (e.g. mnli+mlm) adds masked-LM on plain
    # multilingual text: <dir>/<lang>.txt, one sentence or document a line ("" : data.dir/mlm;
    # languages () : every .txt there), languages drawn with XLM-R's alpha 0.3 (T = 1/0.3),
    # each language's last dev_lines lines held out.
    config.mlm = ml_collections.ConfigDict(dict(dir="", languages=(), temperature=1 / 0.3,
                                                dev_lines=100))
    # Devices per mesh axis (one may be -1: the rest), and the logical-axis rules that place
    # parameters, batches and activations on them (MaxText/flax style: (name, mesh axes)).
    config.mesh = ml_collections.ConfigDict(dict(shape=dict(data=-1, fsdp=1, tensor=1),
                                                 rules=DEFAULT_RULES))
    config.distributed = False  # jax.distributed.initialize() first (multi-host TPU pods)
    config.intermediate = phase("" if intermediate == "none" else intermediate)
    config.target = phase(target)
    config.eval = ml_collections.ConfigDict(dict(languages=()))  # () = every language of the task
    # Fault injection for tests: poison the loss / SIGKILL the process at an update of `phase`.
    config.debug = ml_collections.ConfigDict(dict(
        phase="intermediate", inject_nan_at_step=-1, kill_at_step=-1, params_checksum=True))
    if tiny:
        for section in (config.intermediate, config.target):
            qa = any(t in QA_TASKS for t in section.task.split("+"))
            section.update(num_epochs=None, num_steps=20, eval_every=10, batch_size=8,
                           max_length=96 if qa else 64, buckets=(96,) if qa else (32, 64),
                           doc_stride=32, learning_rate=1e-4)
    return config
