"""Named backbone sizes with the real shapes of the published checkpoints, and the languages
each was pretrained on.

The X-STILTs scaling question spans these: ~0.3B (base) to 10.7B (XXL) parameters for the
XLM-R encoders, 0.56B to 176B for the BLOOM decoders; larger sizes are added here as presets,
not as code.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax

from xstilts_jax.models.decoder import Decoder, DecoderConfig
from xstilts_jax.models.encoder import Encoder, EncoderConfig

_XLMR_VOCAB = 250002
_BLOOM_VOCAB = 250880  # the embedding matrix (250,680 tokenizer pieces, padded)
_BLOOM_PAD = 3  # every released BLOOM's pad_token_id


def _bloom(hidden: int, layers: int, heads: int) -> DecoderConfig:
    return DecoderConfig(vocab_size=_BLOOM_VOCAB, hidden_size=hidden, num_layers=layers,
                         num_heads=heads, pad_token_id=_BLOOM_PAD)


PRESETS: dict[str, EncoderConfig | DecoderConfig] = {
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
    # The BLOOM decoder in the tiny preset's shape (4 heads; ALiBi slopes as bloom-560m's
    # power-of-two case).
    "bloom-tiny": DecoderConfig(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                                pad_token_id=_BLOOM_PAD),
    # bigscience/bloom-* config.json: n_embed / n_layer / n_head; layer_norm_epsilon 1e-5,
    # dropouts 0.0, apply_residual_connection_post_layernorm false in all six.
    "bloom-560m": _bloom(1024, 24, 16),
    "bloom-1b1": _bloom(1536, 24, 16),
    "bloom-1b7": _bloom(2048, 24, 16),
    "bloom-3b": _bloom(2560, 30, 32),
    "bloom-7b1": _bloom(4096, 30, 32),
    "bloom-176b": _bloom(14336, 70, 112),  # bigscience/bloom
}


# The published checkpoint of each real-sized preset: `model.name` may be a preset name, which
# training resolves to this hub id and planning (`xstilts plan`) builds from its shape alone.
HUB_IDS: Mapping[str, str] = {
    "xlmr-base": "FacebookAI/xlm-roberta-base",
    "xlmr-large": "FacebookAI/xlm-roberta-large",
    "xlmr-xl": "facebook/xlm-roberta-xl",
    "xlmr-xxl": "facebook/xlm-roberta-xxl",
    "bloom-560m": "bigscience/bloom-560m",
    "bloom-1b1": "bigscience/bloom-1b1",
    "bloom-1b7": "bigscience/bloom-1b7",
    "bloom-3b": "bigscience/bloom-3b",
    "bloom-7b1": "bigscience/bloom-7b1",
    "bloom-176b": "bigscience/bloom",
}


def new_backbone(config: EncoderConfig | DecoderConfig, *, rngs) -> Encoder | Decoder:
    """The backbone module of a config of either family (random weights; under
    ``nnx.eval_shape``, shapes only)."""
    if isinstance(config, DecoderConfig):
        return Decoder(config, rngs=rngs)
    if isinstance(config, EncoderConfig):
        return Encoder(config, rngs=rngs)
    raise TypeError(f"not a backbone config: {type(config).__name__}")


class ShapeOnlyRngs:
    """Stands in for ``nnx.Rngs`` where a model is built under ``nnx.eval_shape`` for its
    shapes alone (plans, checkpoint slots): every stream gives the same key and counts
    nothing. An ``nnx.Rngs`` counts its draws in a Variable; under a trace each count update
    makes flax ask a tracer for its sharding, and JAX's error for that searches the whole
    trace so far: quadratic in the model's size, most of the time an abstract XLM-R XXL or
    BLOOM-176B took to build."""

    def __init__(self, seed: int = 0):
        self._seed = seed

    def __getattr__(self, stream: str):
        if stream.startswith("_"):
            raise AttributeError(stream)
        return lambda: jax.random.key(self._seed)


def get_preset(name: str, **overrides) -> EncoderConfig | DecoderConfig:
    """The preset's config, with dataclass fields overridden (e.g. ``dtype="bfloat16"``,
    ``remat="dots_saveable"``)."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}") from None
    return dataclasses.replace(config, **overrides)


# XLM-R's pretraining languages (CC-100) as the model card's ISO 639-1 codes: 93 codes (the
# hub shows "94 languages", counting its "multilingual" tag). The paper's 100 languages are
# these plus 7 script variants that share a code: romanized Bengali, Hindi, Tamil, Telugu and
# Urdu, Burmese in Zawgyi, and Traditional Chinese.
XLMR_LANGUAGES: tuple[str, ...] = tuple(sorted("""
    af am ar as az be bg bn br bs ca cs cy da de el en eo es et eu fa fi fr fy ga gd gl gu ha
    he hi hr hu hy id is it ja jv ka kk km kn ko ku ky la lo lt lv mg mk ml mn mr ms my ne nl
    no om or pa pl ps pt ro ru sa sd si sk sl so sq sr su sv sw ta te th tl tr ug uk ur uz vi
    xh yi zh""".split()))
# BLOOM's natural languages (ROOTS), as the model card's codes: 45 codes. The card's "46
# natural languages" counts Simplified and Traditional Chinese (its zhs and zht) as two; here
# both are "zh". The 13 programming languages ("code") are not natural languages.
BLOOM_LANGUAGES: tuple[str, ...] = tuple(sorted("""
    ak ar as bm bn ca en es eu fon fr gu hi id ig ki kn lg ln ml mr ne nso ny or pa pt rn rw sn
    st sw ta te tn ts tum tw ur vi wo xh yo zh zu""".split()))

PRETRAINING_LANGUAGES: Mapping[str, tuple[str, ...]] = {
    **{name: XLMR_LANGUAGES for name in ("xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl")},
    **{name: BLOOM_LANGUAGES for name in ("bloom-560m", "bloom-1b1", "bloom-1b7", "bloom-3b",
                                           "bloom-7b1", "bloom-176b")},
}


def pretraining_languages(name: str) -> tuple[str, ...] | None:
    """The ISO 639 codes of the languages a preset's published checkpoint was pretrained on
    (sorted), or None for a preset with no published checkpoint (``tiny``, ``bloom-tiny``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return PRETRAINING_LANGUAGES.get(name)
