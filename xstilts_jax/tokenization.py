"""Tokenizers: transformers' fast (Rust) tokenizers, loaded from local files only."""

from __future__ import annotations

import os
import pathlib


class TokenizerError(ValueError):
    """A checkpoint directory whose tokenizer cannot be loaded; the message says why."""


def load_tokenizer(model_dir: str | os.PathLike):
    """The fast tokenizer saved in a checkpoint directory (tokenizer.json and its config).

    Slow (Python) tokenizers are refused: featurization relies on offset mappings and
    batch speed that only the fast ones give.
    """
    from transformers import AutoTokenizer

    model_dir = pathlib.Path(model_dir)
    if not any((model_dir / f).is_file() for f in
               ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "vocab.txt")):
        raise TokenizerError(
            f"{model_dir}: no tokenizer files (expected tokenizer.json, or tokenizer_config.json "
            "with sentencepiece.bpe.model / vocab.txt)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True, local_files_only=True)
    except Exception as e:  # transformers raises many types for broken files
        raise TokenizerError(f"{model_dir}: cannot load the tokenizer: {e}") from e
    if not tokenizer.is_fast:
        raise TokenizerError(f"{model_dir}: only a slow tokenizer is available; save a tokenizer.json")
    if tokenizer.pad_token_id is None:
        raise TokenizerError(f"{model_dir}: the tokenizer defines no padding token")
    return tokenizer
