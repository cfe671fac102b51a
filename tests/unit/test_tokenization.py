"""Tokenizers load from local files only, fast, with a padding token."""

from __future__ import annotations

import shutil

import pytest

from xstilts_jax.tokenization import TokenizerError, load_tokenizer


def test_tiny_tokenizer_roundtrip(tiny_checkpoints):
    tokenizer = load_tokenizer(tiny_checkpoints("xlmr"))
    assert tokenizer.is_fast and tokenizer.pad_token_id == 1
    ids = tokenizer("The cat sat.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids  # <s> ... </s>, nothing unknown
    encoded = tokenizer("der hund", return_offsets_mapping=True)
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["<s>", "▁der", "▁hund", "</s>"]
    assert [end for _, end in encoded["offset_mapping"][1:-1]] == [3, 8]


def test_no_tokenizer_files(tmp_path, tiny_checkpoints):
    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints("xlmr"), directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (directory / name).unlink(missing_ok=True)
    with pytest.raises(TokenizerError, match=rf"{directory}: no tokenizer files"):
        load_tokenizer(directory)


def test_corrupt_tokenizer_json(tmp_path, tiny_checkpoints):
    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints("xlmr"), directory)
    (directory / "tokenizer.json").write_text("{ not json")
    with pytest.raises(TokenizerError, match=rf"{directory}: cannot load the tokenizer"):
        load_tokenizer(directory)
