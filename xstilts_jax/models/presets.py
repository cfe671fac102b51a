"""Named encoder sizes with the real shapes of the published checkpoints.

The X-STILTs scaling question spans these: ~0.3B (base) to 10.7B (XXL) parameters for XLM-R;
larger sizes are added here as presets, not as code.
"""

from __future__ import annotations

import dataclasses

from xstilts_jax.models.encoder import EncoderConfig

_XLMR_VOCAB = 250002

PRESETS: dict[str, EncoderConfig] = {
    # For tests and smoke runs: 2 layers, hidden 64, a small vocabulary.
    "tiny": EncoderConfig(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                          intermediate_size=128, max_position_embeddings=130),
    # FacebookAI/xlm-roberta-base
    "xlmr-base": EncoderConfig(vocab_size=_XLMR_VOCAB, hidden_size=768, num_layers=12,
                               num_heads=12, intermediate_size=3072),
    # FacebookAI/xlm-roberta-large
    "xlmr-large": EncoderConfig(vocab_size=_XLMR_VOCAB, hidden_size=1024, num_layers=24,
                                num_heads=16, intermediate_size=4096),
    # facebook/xlm-roberta-xl
    "xlmr-xl": EncoderConfig(vocab_size=_XLMR_VOCAB, hidden_size=2560, num_layers=36,
                             num_heads=32, intermediate_size=10240, pre_layer_norm=True),
    # facebook/xlm-roberta-xxl
    "xlmr-xxl": EncoderConfig(vocab_size=_XLMR_VOCAB, hidden_size=4096, num_layers=48,
                              num_heads=32, intermediate_size=16384, pre_layer_norm=True),
}


def get_preset(name: str, **overrides) -> EncoderConfig:
    """The preset's config, with dataclass fields overridden (e.g. ``dtype="bfloat16"``,
    ``remat="dots_saveable"``)."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}") from None
    return dataclasses.replace(config, **overrides)
