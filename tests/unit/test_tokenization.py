"""Tokenizers load from local files only, fast, with a padding token."""

from __future__ import annotations

import shutil

import pytest

from conftest import build_tiny_tokenizer
from xstilts_jax.tokenization import TokenizerError, load_tokenizer, task_tokenizer


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


# --------------------------------------------------------------------------- task format


def word_level_tokenizer(post_processor=None, **special):
    """A tokenizer whose post-processor adds no special token (as BLOOM's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate("<unk> <s> </s> <pad> a b c".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = post_processor
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   **special)


def test_task_tokenizer_leaves_templated_tokenizers_alone():
    tokenizer = build_tiny_tokenizer()
    before = (tokenizer("the cat", "der hund")["input_ids"], tokenizer("the cat")["input_ids"])
    assert task_tokenizer(tokenizer) is tokenizer
    after = (tokenizer("the cat", "der hund")["input_ids"], tokenizer("the cat")["input_ids"])
    assert after == before == ([0, 4, 5, 2, 2, 18, 22, 2], [0, 4, 5, 2])


def test_task_tokenizer_leaves_real_xlmr_alone(xlmr_tokenizer):
    assert task_tokenizer(xlmr_tokenizer) is xlmr_tokenizer
    assert xlmr_tokenizer("a", "b")["input_ids"][0] == xlmr_tokenizer.cls_token_id


def test_task_tokenizer_closes_segments_with_eos_on_a_copy():
    tokenizer = word_level_tokenizer(eos_token="</s>")
    assert tokenizer("a b", "c")["input_ids"] == [4, 5, 6]
    templated = task_tokenizer(tokenizer)
    assert templated("a b", "c", return_token_type_ids=True).data == {
        "input_ids": [4, 5, 2, 6, 2], "token_type_ids": [0, 0, 0, 1, 1],
        "attention_mask": [1] * 5}
    assert templated("a b")["input_ids"] == [4, 5, 2]
    assert tokenizer("a b", "c")["input_ids"] == [4, 5, 6]  # the original is untouched
    assert templated.num_special_tokens_to_add(pair=True) == 2


def test_task_tokenizer_errors_name_the_tokenizer():
    from tokenizers import processors

    with pytest.raises(TokenizerError, match="no eos token"):
        task_tokenizer(word_level_tokenizer())
    odd = word_level_tokenizer(processors.Sequence([processors.ByteLevel(trim_offsets=True)]),
                               eos_token="</s>")
    with pytest.raises(TokenizerError, match="cannot add the task format to the post-processor"):
        task_tokenizer(odd)
