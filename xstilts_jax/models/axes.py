"""Logical axis names of parameters and activations, the vocabulary the sharding rules speak.

Models name axes only; ``config.mesh.rules`` (default :data:`xstilts_jax.sharding.DEFAULT_RULES`)
maps each name to mesh axes. Parameters and activations have separate names because they are
placed differently: ``embed`` is fsdp-sharded in the weights but whole in the hidden states.
"""

# Parameters.
VOCAB, EMBED, HEADS, KV, MLP, POSITIONS, TYPES, NORM, CLASSES = (
    "vocab", "embed", "heads", "kv", "mlp", "positions", "types", "norm", "classes")
LAYERS = "layers"  # the leading axis of the blocks' parameters, stacked for scan
HEAD_HIDDEN = MLP  # a head's inner dense is sharded like the FFN's inner dimension
LOGICAL_AXES = (VOCAB, EMBED, HEADS, KV, MLP, POSITIONS, TYPES, NORM, LAYERS)  # backbone parameters

# Activations.
ACT_BATCH, ACT_LENGTH, ACT_EMBED, ACT_HEADS, ACT_KV, ACT_MLP, ACT_VOCAB = (
    "act_batch", "act_length", "act_embed", "act_heads", "act_kv", "act_mlp", "act_vocab")
HIDDEN = (ACT_BATCH, ACT_LENGTH, ACT_EMBED)  # [batch, length, embed]
