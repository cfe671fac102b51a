"""Every family's featurization with a BLOOM-shaped tokenizer (no special-token template):
the task format ``A </s>`` / ``A </s> B </s>`` (``tokenization.task_tokenizer``), tagging words
tokenized as in running text, QA offsets and answers through byte-level BPE."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from conftest import BLOOM_TEXTS, build_tiny_bloom_tokenizer
from xstilts_jax.embed import tokenize_sentences
from xstilts_jax.tasks.examples import MCExample, PairExample, QAExample, TaggedSentence
from xstilts_jax.tasks.families.classification import featurize_pairs
from xstilts_jax.tasks.families.multiple_choice import featurize_choices
from xstilts_jax.tasks.families.qa import answers_from_logits, featurize_qa
from xstilts_jax.tasks.families.tagging import featurize_tagging, tags_from_predictions
from xstilts_jax.tokenization import load_tokenizer, task_tokenizer

EOS = 2

@pytest.fixture(scope="module")
def bloom_dir(tmp_path_factory) -> pathlib.Path:
    return build_tiny_bloom_tokenizer(tmp_path_factory.mktemp("tiny-bloom"))


@pytest.fixture(scope="module")
def bloom(bloom_dir):
    """The task tokenizer: the checkpoint's own, with the task format."""
    return task_tokenizer(load_tokenizer(bloom_dir))


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --------------------------------------------------------------------------- the tokenizer


def test_tiny_bloom_tokenizer_has_blooms_shape(bloom_dir):
    config = json.loads((bloom_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BloomTokenizerFast"
    own = load_tokenizer(bloom_dir)
    assert [own.unk_token_id, own.bos_token_id, own.eos_token_id, own.pad_token_id] == [0, 1, 2, 3]
    assert own.padding_side == "left" and own.cls_token_id is None
    assert own.num_special_tokens_to_add(pair=False) == 0
    assert own.num_special_tokens_to_add(pair=True) == 0
    # A pair is A's tokens followed directly by B's; a word after a space carries it.
    assert own("The cat", "sat on")["input_ids"] == ids(own, "The cat") + ids(own, "sat on")
    assert own.convert_ids_to_tokens(ids(own, "The cat")) == ["The", "Ġcat"]
    encoded = own("The cat", add_special_tokens=False, return_offsets_mapping=True)
    assert encoded["offset_mapping"] == [(0, 3), (3, 7)]  # the space is in "Ġcat"'s offsets
    assert 0 not in ids(own, " ".join(BLOOM_TEXTS))  # byte-level: nothing is unknown


def test_task_format_ids(bloom):
    a, b = ids(bloom, "The cat sat."), ids(bloom, "Der Hund ist groß.")
    assert bloom("The cat sat.")["input_ids"] == a + [EOS]
    pair = bloom("The cat sat.", "Der Hund ist groß.", return_token_type_ids=True)
    assert pair["input_ids"] == a + [EOS] + b + [EOS]
    assert pair["token_type_ids"] == [0] * (len(a) + 1) + [1] * (len(b) + 1)
    assert pair.sequence_ids() == [0] * len(a) + [None] + [1] * len(b) + [None]
    assert bloom.num_special_tokens_to_add(pair=False) == 1
    assert bloom.num_special_tokens_to_add(pair=True) == 2
    assert not bloom.convert_ids_to_tokens(b)[0].startswith("Ġ")  # B starts a text: no space


def test_loading_for_tasks_leaves_the_checkpoints_tokenization(bloom_dir):
    own = load_tokenizer(bloom_dir)
    sentences = ["The cat sat.", "Москва — столица России."]
    before = own(sentences)["input_ids"]
    templated = task_tokenizer(own)
    assert templated is not own
    assert templated(sentences)["input_ids"] == [row + [EOS] for row in before]
    assert own(sentences)["input_ids"] == before and EOS not in sum(before, [])
    assert load_tokenizer(bloom_dir)(sentences)["input_ids"] == before
    # embed/retrieve tokenize with the checkpoint's own tokenizer: no specials added.
    assert tokenize_sentences(own, sentences, 64) == before
    assert task_tokenizer(templated) is templated  # already has a template: unchanged


# --------------------------------------------------------------------------- classification


def test_pairs_and_singles(bloom):
    pairs = [PairExample("p:1", "The cat sat on the mat.", "Le chat est sur la table.", 1, "en"),
             PairExample("p:2", "naïve café", "東京は日本の首都です。", 0, "en")]
    features = featurize_pairs(bloom, pairs, 64)
    for e, row, types in zip(pairs, features.input_ids, features.token_type_ids):
        assert row == ids(bloom, e.text_a) + [EOS] + ids(bloom, e.text_b) + [EOS]
        assert len(types) == len(row) and set(types) <= {0, 1}
    assert features.num_truncated == 0 and features.labels.tolist() == [1, 0]
    singles = [PairExample("s:1", "The dog is big!", None, 1, "en")]
    assert featurize_pairs(bloom, singles, 64).input_ids == [ids(bloom, "The dog is big!") + [EOS]]


def test_truncation_keeps_the_format_within_max_length(bloom):
    long_a = " ".join(["The cat sat on the mat."] * 6)
    pairs = [PairExample("p:1", long_a, "Le chat est sur la table.", 1, "en"),
             PairExample("p:2", "The cat", "sat", 0, "en")]
    features = featurize_pairs(bloom, pairs, 12)
    row = features.input_ids[0]
    assert len(row) == 12 and features.num_truncated == 1
    assert row[-1] == EOS and row.count(EOS) == 2
    a_len = row.index(EOS)  # longest_first cut A, the longer text
    assert row[:a_len] == ids(bloom, long_a)[:a_len]
    assert features.input_ids[1] == ids(bloom, "The cat") + [EOS] + ids(bloom, "sat") + [EOS]
    singles = [PairExample("s:1", long_a, None, 1, "en")]
    cut = featurize_pairs(bloom, singles, 5).input_ids[0]
    assert cut == ids(bloom, long_a)[:4] + [EOS]
    with pytest.raises(ValueError, match="max_length 3 .* at least 4"):
        featurize_pairs(bloom, pairs, 3)
    with pytest.raises(ValueError, match="max_length 1 .* at least 2"):
        featurize_pairs(bloom, singles, 1)


def test_choices(bloom):
    example = MCExample("mc:1", "The cat sat on", ("the mat.", "a big house.", "Москва."), 0)
    features = featurize_choices(bloom, [example], 64, num_choices=3)
    assert features.input_ids == [ids(bloom, example.prompt) + [EOS] + ids(bloom, c) + [EOS]
                                  for c in example.choices]
    long = MCExample("mc:2", " ".join(["The dog is big."] * 8), ("the mat.", "a house."), 1)
    cut = featurize_choices(bloom, [long], 10, num_choices=2)
    assert all(len(row) == 10 and row[-1] == EOS and row.count(EOS) == 2
               for row in cut.input_ids)
    assert cut.num_truncated == 2


# --------------------------------------------------------------------------- tagging


TAGS = ("A", "B", "C", "D")


def tagged(words, guid="t:1") -> TaggedSentence:
    return TaggedSentence(tuple(words), tuple(TAGS[i % 4] for i in range(len(words))), guid)


def test_tagging_words_read_as_running_text_labels_on_first_tokens(bloom):
    sentences = [tagged("The cat sat on the mat .".split()),
                 tagged("Der Hund ist groß , die Katze klein".split(), "t:2"),
                 tagged(["東京は", "日本の", "首都です", "。"], "t:3"),
                 tagged(["naïve", "", "café"], "t:4")]
    features = featurize_tagging(bloom, sentences, TAGS, 64)
    assert features.num_sentences_split == 0 and features.num_empty_words == 1
    for s, row, labels, words in zip(sentences, features.input_ids, features.token_labels,
                                     features.token_word):
        starts = [k for k, w in enumerate(words.tolist()) if w >= 0]
        if all(s.words):  # the tokens are those of the sentence as text, and each word's
            text = " ".join(s.words)  # label is on its first token with one of its characters
            assert row == ids(bloom, text) + [EOS]
            ends = np.array(bloom(text, return_offsets_mapping=True)["offset_mapping"])[:, 1]
            begins = np.cumsum([0] + [len(w) + 1 for w in s.words[:-1]])
            assert starts == [int(np.argmax(ends > b)) for b in begins]
        assert words[starts].tolist() == list(range(len(s.words)))
        assert labels[starts].tolist() == [TAGS.index(t) for t in s.tags]
        assert (labels[[k for k in range(len(row)) if k not in starts]] == -1).all()
        assert row[-1] == EOS
    tokens = bloom.convert_ids_to_tokens(features.input_ids[0])
    assert tokens[:3] == ["The", "Ġcat", "Ġs"]  # not "c", "at" and "s": words alone
    # " ." is two tokens, a lone space and "."; the label is on ".", which has seen the word.
    assert tokens[-3:] == ["Ġ", ".", "</s>"]
    assert features.token_word[0].tolist()[-3:] == [-1, 6, -1]
    unk = features.input_ids[3][int(np.flatnonzero(features.token_word[3] == 1)[0])]
    assert unk == bloom.unk_token_id  # an empty word gets <unk>, not a space token
    assert tags_from_predictions(features, np.stack([np.pad(np.maximum(lab, 0),
                                                            (0, 64 - len(lab)))
                                                     for lab in features.token_labels]),
                                 TAGS) == [list(s.tags) for s in sentences]


def test_tagging_words_cut_to_one_token_keep_the_labelled_one(bloom):
    s = tagged("The cat sat .".split())
    features = featurize_tagging(bloom, [s], TAGS, 2)  # a window of one token and </s>
    assert features.num_words_cut == 2  # "sat" (Ġs at) and "." (Ġ .)
    tokens = [bloom.convert_ids_to_tokens(row) for row in features.input_ids]
    assert tokens == [["The", "</s>"], ["Ġcat", "</s>"], ["Ġs", "</s>"], [".", "</s>"]]
    width = max(map(len, features.input_ids))
    gold = np.stack([np.pad(np.maximum(lab, 0), (0, width - len(lab)))
                     for lab in features.token_labels])
    assert tags_from_predictions(features, gold, TAGS) == [list(s.tags)]


def test_tagging_windows_over_a_long_sentence(bloom):
    words = ("The cat sat on the mat . Der Hund ist groß , die Katze klein ." * 4).split()
    s = tagged(words)
    features = featurize_tagging(bloom, [s], TAGS, 16)
    assert features.num_sentences_split == 1 and len(features) > 2
    stream = ids(bloom, " ".join(words))
    for row in features.input_ids:  # whole-word slices of the sentence's text tokens + </s>
        assert len(row) <= 16 and row[-1] == EOS
        body = row[:-1]
        assert any(stream[i:i + len(body)] == body for i in range(len(stream)))
    width = max(map(len, features.input_ids))
    gold = np.zeros((len(features), width), dtype=np.int32)
    for w, labels in enumerate(features.token_labels):
        gold[w, :len(labels)] = np.maximum(labels, 0)
    assert tags_from_predictions(features, gold, TAGS) == [list(s.tags)]


# --------------------------------------------------------------------------- QA


def qa(context: str, answer: str, question: str = "What is it?", qid: str = "q") -> QAExample:
    return QAExample(qid, question, context, ((answer, context.index(answer)),), "t", 0)


QA_EXAMPLES = [
    qa("The cat sat on the mat. The dog is big.", "the mat", "Where did the cat sit?", "en:1"),
    qa("The cat sat on the mat. The dog is big.", "The dog", "Who is big?", "en:2"),
    qa("Москва — столица России. Река течёт через город.", "столица России", "Что?", "ru:1"),
    qa("naïve café, déjà vu? El niño comió en la ciudad.", "la ciudad", "¿Dónde?", "es:1"),
    qa("naïve café, déjà vu? El niño comió en la ciudad.", "café", "Quoi?", "fr:1"),
    qa("हिन्दी भाषा भारत में बोली जाती है।", "भारत", "कहाँ?", "hi:1"),
    qa("Der Hund ist groß, die Katze ist klein.", "groß", "Wie?", "de:1"),
]


def gold_logits(features):
    width = max(map(len, features.input_ids))
    start, end = np.zeros((len(features), width)), np.zeros((len(features), width))
    holds = np.flatnonzero(features.start_positions > 0)
    start[holds, features.start_positions[holds]] = 10.0
    end[holds, features.end_positions[holds]] = 10.0
    return start, end


def test_qa_windows_are_the_pair_format_and_answers_round_trip(bloom):
    features = featurize_qa(bloom, QA_EXAMPLES, max_length=64, doc_stride=16)
    assert len(features) == len(QA_EXAMPLES)
    for e, row, offsets in zip(QA_EXAMPLES, features.input_ids, features.offsets):
        assert row == bloom(e.question, e.context)["input_ids"]
        assert row == ids(bloom, e.question) + [EOS] + ids(bloom, e.context) + [EOS]
        context = offsets[offsets[:, 0] >= 0]
        # offsets point back into the context, without the space byte-level BPE attaches
        assert (np.diff(context[:, 0]) >= 0).all() and context[-1, 1] == len(e.context)
        assert not any(e.context[a:b] != e.context[a:b].strip() for a, b in context)
    assert features.num_questions_answer_in_no_window == 0
    answers = answers_from_logits(features, QA_EXAMPLES, *gold_logits(features))
    assert answers == {e.id: e.answers[0][0] for e in QA_EXAMPLES}


def test_qa_characters_split_over_tokens(bloom):
    """Byte-level BPE splits characters' bytes over tokens, which then share the character
    in their offsets. Where a token holds the end of one character and the start of the
    next (CJK here), an answer edge between them is inside a token: the answer comes back
    with its neighbours, a tokenizer limit (as XLM-R's pieces running past an answer)."""
    context = "東京は日本の首都です。大阪は大きい都市です。"
    encoded = bloom(context, add_special_tokens=False, return_offsets_mapping=True)
    offsets = np.asarray(encoded["offset_mapping"])
    assert (offsets[1:, 0] < offsets[:-1, 1]).any()  # tokens sharing a character
    examples = [QAExample("ja:1", "何?", context, (("日本", 3),), "t", 0),
                QAExample("hi:2", "क्या?", "हिन्दी भाषा", (("हिन्दी", 0),), "t", 0)]
    features = featurize_qa(bloom, examples, max_length=64)
    assert len(features) == 2
    answers = answers_from_logits(features, examples, *gold_logits(features))
    edge_inside = []
    for w, e in enumerate(examples):
        (gold, begin), = e.answers
        window = features.offsets[w]
        target = e.context[window[features.start_positions[w], 0]:
                           window[features.end_positions[w], 1]]
        assert answers[e.id] == target and gold in target
        context = window[window[:, 0] >= 0].tolist()
        edge_inside.append(any(a < edge < b for a, b in context
                               for edge in (begin, begin + len(gold))))
        assert (target == gold) == (not edge_inside[-1])
    assert edge_inside == [True, False]  # 日本 is cut out of は日 and 本の; हिन्दी is whole


def test_qa_long_context_windows_and_null_target(bloom):
    context = " ".join(["The cat sat on the mat."] * 6 + ["Москва — столица России."])
    e = qa(context, "столица России", "Что?", "ru:2")
    features = featurize_qa(bloom, [e], max_length=24, doc_stride=6)
    question = ids(bloom, "Что?")
    assert len(features) > 2
    for row in features.input_ids:
        assert len(row) <= 24 and row[:len(question) + 1] == question + [EOS] and row[-1] == EOS
    # Windows without the answer target index 0, the question's first token (no CLS).
    holds = np.flatnonzero(features.start_positions > 0)
    assert len(features) - len(holds) == features.num_answers_outside > 0 and len(holds)
    for w in holds:  # the targets of the windows holding it are the answer's characters
        offsets = features.offsets[w]
        begin = offsets[features.start_positions[w], 0]
        assert e.context[begin:offsets[features.end_positions[w], 1]] == "столица России"
