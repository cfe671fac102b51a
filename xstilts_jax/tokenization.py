"""Tokenizers: transformers' fast (Rust) tokenizers, loaded from local files only, and the
special-token format task featurization uses (:func:`task_tokenizer`)."""

from __future__ import annotations

import copy
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


def task_tokenizer(tokenizer):
    """The tokenizer task featurization uses: ``tokenizer`` itself when its post-processor
    adds special tokens to a pair (XLM-R: ``<s> A </s></s> B </s>``; BERT), else a copy that
    adds the eos token after each segment:

    - a sentence: ``A </s>``;
    - a pair (sentence pairs; multiple choice's (prompt, choice); QA's (question, context)):
      ``A </s> B </s>``, segment ids 0 for ``A </s>`` and 1 for ``B </s>``.

    Why: a decoder (BLOOM, whose tokenizer adds nothing, so a pair would be A's tokens run
    into B's) pools its last real token, and with this format that token is always ``</s>``,
    having attended to the whole input; the ``</s>`` between the segments marks where A ends,
    as an end of text does in pretraining, and B starts as a new text (no leading space).
    ``</s>`` is the only marker such a checkpoint has learnt; it adds no new embedding.
    The format is installed as the fast tokenizer's post-processor, so every featurizer's
    ``num_special_tokens_to_add``, ``longest_first`` truncation, ``word_ids``,
    ``sequence_ids`` and offsets see it as any other template. A ByteLevel post-processor
    (BLOOM's, which only adjusts offsets) stays and runs first.

    ``tokenizer`` is never modified: ``embed``/``retrieve`` keep the checkpoint's own
    tokenization (``tokenizer(sentences)`` as the torch model is fed).
    """
    from tokenizers import processors

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerError(f"{tokenizer.name_or_path}: not a fast tokenizer")
    if tokenizer.num_special_tokens_to_add(pair=True):
        return tokenizer
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eos_id is None:
        raise TokenizerError(f"{tokenizer.name_or_path}: the tokenizer adds no special tokens "
                             f"and defines no eos token to close its segments")
    template = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 {eos}:0 $B:1 {eos}:1",
        special_tokens=[(eos, eos_id)])
    current = backend.post_processor
    if isinstance(current, processors.ByteLevel):
        template = processors.Sequence([current, template])
    elif current is not None and not isinstance(current, processors.TemplateProcessing):
        raise TokenizerError(f"{tokenizer.name_or_path}: cannot add the task format to the "
                             f"post-processor {current}")
    templated = copy.deepcopy(tokenizer)
    templated.backend_tokenizer.post_processor = template
    a, b = templated(["a", "b"], add_special_tokens=False)["input_ids"]
    pair = templated("a", "b")["input_ids"]
    if pair != a + [eos_id] + b + [eos_id]:  # the backend kept another post-processor
        raise TokenizerError(f"{tokenizer.name_or_path}: the task format did not apply: "
                             f"{templated.convert_ids_to_tokens(pair)}")
    return templated
