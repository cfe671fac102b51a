"""XNLI as the target task, with or without an English intermediate task.

    xstilts run --config configs/xnli.py:mnli --workdir runs/mnli-xnli      # X-STILTs: MNLI -> XNLI
    xstilts run --config configs/xnli.py:none --workdir runs/xnli           # direct fine-tuning
    xstilts run --config configs/xnli.py:mnli,tiny ...                      # smoke-test sizes

Hyperparameters follow the paper's code (jiant): AdamW, lr 1e-5, weight decay 0.01 (not on
biases/LayerNorm), 10 % linear warmup then linear decay, max sequence length 128.
"""

import ml_collections


def phase(task: str, **overrides) -> ml_collections.ConfigDict:
    fields = dict(task=task, learning_rate=1e-5, batch_size=32, num_steps=None, num_epochs=2.0,
                  warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, grad_accumulation=1,
                  eval_every=1000, checkpoint_every=None, patience=None, max_length=128,
                  buckets=(32, 64, 128), eval_batch_size=None)
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def get_config(arg: str = "mnli") -> ml_collections.ConfigDict:
    args = [a for a in arg.split(",") if a]
    intermediate = next((a for a in args if a != "tiny"), "mnli")
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict(dict(
        name="FacebookAI/xlm-roberta-base",  # a checkpoint directory, offline name or hub id
        dtype="float32", hidden_dropout=0.1, attention_dropout=0.1))
    config.data_dir = "data"  # XTREME's download/ folder, with mnli/ beside xnli/
    config.mesh = ml_collections.ConfigDict(dict(shape=dict(data=-1, fsdp=1, tensor=1)))
    config.distributed = False  # jax.distributed.initialize() first (multi-host TPU pods)
    config.intermediate = phase("" if intermediate == "none" else intermediate)
    config.target = phase("xnli")
    config.eval = ml_collections.ConfigDict(dict(languages=()))  # () = every language of the task
    # Fault injection for tests: poison the loss / SIGKILL the process at an update of `phase`.
    config.debug = ml_collections.ConfigDict(dict(
        phase="intermediate", inject_nan_at_step=-1, kill_at_step=-1, params_checksum=True))
    if "tiny" in args:
        for section in (config.intermediate, config.target):
            section.update(num_epochs=None, num_steps=20, eval_every=10, batch_size=8,
                           max_length=64, buckets=(32, 64), learning_rate=1e-4)
    return config
