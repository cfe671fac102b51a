"""Tagging featurization: windows, <unk> for empty words, cut words, and the round trip
features -> predictions -> word tags -> XTREME's tagging F1 on real UD treebanks."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import SHARED_DATA, build_tiny_tokenizer
from xstilts_jax import metrics
from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.families.tagging import (IGNORE_LABEL, TaggingFeatures, featurize_tagging,
                                                plan_windows, tags_from_predictions,
                                                write_tagging_predictions)
from xstilts_jax.tasks.formats import conllu
from xstilts_jax.tasks.formats.conllu import UPOS_TAGS
from xstilts_jax.tasks.io import DataError

UDPOS = SHARED_DATA / "udpos"
UD_FILES = (("en_ewt-ud-dev.conllu", "en"), ("en_ewt-ud-test.conllu", "en"),
            ("de_gsd-ud-test.conllu", "de"))
TAGS = ("A", "B", "C", "D")


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_tokenizer()


def ud(name: str, lang: str):
    path = UDPOS / name
    if not path.is_file():
        pytest.skip(f"real UD data not present: {path} (the shared data folder is absent)")
    return conllu.read_conllu(path, lang)


def sentence(words, guid="s", tags=None) -> TaggedSentence:
    words = tuple(words)
    if tags is None:
        tags = [TAGS[i % len(TAGS)] for i in range(len(words))]
    return TaggedSentence(words, tuple(tags), guid)


def gold_predictions(features: TaggingFeatures, pad: int = 3, fill: int = 0) -> np.ndarray:
    """What a perfect model outputs: the gold labels, anything on unlabelled and padded tokens."""
    width = max((len(row) for row in features.input_ids), default=0) + pad
    predictions = np.full((len(features), width), fill, dtype=np.int32)
    for w, labels in enumerate(features.token_labels):
        predictions[w, :len(labels)] = np.where(labels >= 0, labels, fill)
    return predictions


def word_pieces(tokenizer, words) -> list[list[int]]:
    """XTREME's per-word tokenization: each word alone, <unk> for a word with no piece."""
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) or [tokenizer.unk_token_id]
            for w in words]


def check_windows(tokenizer, features: TaggingFeatures, sentences, labels,
                  max_length: int) -> None:
    """Every window is <s> + a whole-word slice of its sentence's tokens + </s>, labels on the
    first sub-token of exactly the words it predicts, each word predicted once, predicted runs
    in order, context on both sides of the run except at the sentence's ends (and next to
    words too long to fit beside their neighbours)."""
    assert len(features.token_type_ids) == len(features)
    index = {label: i for i, label in enumerate(labels)}
    by_sentence: dict[int, list[int]] = {}
    for w, s in enumerate(features.window_sentence.tolist()):
        by_sentence.setdefault(s, []).append(w)
    assert sorted(by_sentence) == [i for i, s in enumerate(sentences) if s.words]
    assert features.window_sentence.tolist() == sorted(features.window_sentence.tolist())
    budget = max_length - 2
    for i, windows in by_sentence.items():
        pieces = [p[:budget] for p in word_pieces(tokenizer, sentences[i].words)]
        starts = np.cumsum([0] + [len(p) for p in pieces])
        stream = [t for p in pieces for t in p]
        next_word = 0
        for n, w in enumerate(windows):
            ids, lab, tw = features.input_ids[w], features.token_labels[w], features.token_word[w]
            assert len(ids) <= max_length and len(lab) == len(tw) == len(ids)
            assert features.token_type_ids[w] == [0] * len(ids)
            assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            assert lab.dtype == np.int32 and tw.dtype == np.int32
            marked = np.flatnonzero(tw >= 0)
            assert np.array_equal(marked, np.flatnonzero(lab >= 0))
            assert (lab[tw < 0] == IGNORE_LABEL).all()
            predicted = tw[marked]
            assert predicted.tolist() == list(range(next_word, next_word + len(predicted)))
            p, q = int(predicted[0]), int(predicted[-1])
            begin = int(starts[p]) - (int(marked[0]) - 1)  # sentence token at window position 1
            end = begin + len(ids) - 2
            assert begin in starts and end in starts  # whole words
            assert ids[1:-1] == stream[begin:end]
            assert (marked - 1 + begin).tolist() == starts[p:q + 1].tolist()
            assert lab[marked].tolist() == [index[t] for t in sentences[i].tags[p:q + 1]]
            assert_context(w, [len(x) for x in pieces], starts, begin, end, p, q, budget,
                           first=n == 0, last=n == len(windows) - 1)
            next_word = q + 1
        assert next_word == len(sentences[i].words)


def assert_context(w, lengths, starts, begin, end, p, q, budget, *, first, last) -> None:
    """The context plan_windows promises around predicted words p..q of window w, whose
    tokens are [begin, end) of the sentence."""
    n = len(lengths)
    if first:
        assert begin == 0 and p == 0
    elif lengths[p - 1] + lengths[p] + (lengths[p + 1] if p + 1 < n else 0) <= budget:
        assert begin < starts[p], f"window {w} has no left context"
    if last:
        assert end == starts[-1] and q == n - 1
    elif lengths[q] + lengths[q + 1] <= budget:
        assert end > starts[q + 1], f"window {w} has no right context"


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name,lang", UD_FILES)
def test_round_trip_real_ud(xlmr_tokenizer, tmp_path, name, lang):
    """Acceptance: gold labels through windows and back give the gold tags and F1 100."""
    sentences = ud(name, lang)
    gold = [list(s.tags) for s in sentences]
    for max_length in (128, 24):
        features = featurize_tagging(xlmr_tokenizer, sentences, UPOS_TAGS, max_length)
        assert features.num_sentences == len(sentences)
        assert features.guids == [s.guid for s in sentences]
        assert features.num_words.tolist() == [len(s.words) for s in sentences]
        assert max(len(row) for row in features.input_ids) <= max_length
        assert features.num_empty_words == 0
        tags = tags_from_predictions(features, gold_predictions(features, fill=7), UPOS_TAGS)
        assert tags == gold
        assert metrics.tagging_f1(gold, tags)["f1"] == 100.0
        # Through XTREME's file layout and scorer too.
        write_tagging_predictions(tmp_path / "pred" / "udpos" / f"test-{lang}.tsv", tags)
        write_tagging_predictions(tmp_path / "gold" / "udpos" / f"test-{lang}.tsv", gold)
        scores = metrics.score_task("udpos", tmp_path / "pred", tmp_path / "gold", [lang])
        assert scores["avg_f1"] == 100.0
        if max_length == 24:
            assert features.num_sentences_split > 0 and len(features) > len(sentences)
        print(f"{name} max_length={max_length}: {len(sentences)} sentences, {len(features)} "
              f"windows, {features.num_sentences_split} split, {features.num_words_cut} words "
              f"cut, {features.num_empty_words} empty")


def test_real_windows_match_per_word_tokenization(xlmr_tokenizer):
    """The batch call gives XTREME's per-word pieces; windows are whole-word slices of them."""
    sentences = ud("en_ewt-ud-test.conllu", "en")
    features = featurize_tagging(xlmr_tokenizer, sentences, UPOS_TAGS, 2048)
    assert len(features) == len(sentences) and features.num_words_cut == 0
    for s, ids in zip(sentences[::3], features.input_ids[::3]):
        pieces = word_pieces(xlmr_tokenizer, s.words)
        assert ids == [xlmr_tokenizer.cls_token_id, *(t for p in pieces for t in p),
                       xlmr_tokenizer.sep_token_id]
    features = featurize_tagging(xlmr_tokenizer, sentences, UPOS_TAGS, 24)
    assert features.num_sentences_split > 0 and features.num_words_cut > 0
    check_windows(xlmr_tokenizer, features, sentences, UPOS_TAGS, 24)


def test_real_chunking_and_empty_words(xlmr_tokenizer):
    sentences = ud("de_gsd-ud-test.conllu", "de")[:200]
    assert_same(featurize_tagging(xlmr_tokenizer, sentences, UPOS_TAGS, 24),
                featurize_tagging(xlmr_tokenizer, sentences, UPOS_TAGS, 24, chunk_size=7))
    # Words XLM-R reads as nothing: XTREME gives them <unk>.
    s = TaggedSentence(("a", "\u200b", "b", "\u00a0"), ("NOUN", "X", "VERB", "PUNCT"), "z:1")
    features = featurize_tagging(xlmr_tokenizer, [s], UPOS_TAGS)
    unk = xlmr_tokenizer.unk_token_id
    assert features.num_empty_words == 2
    assert features.input_ids[0][2] == unk and features.input_ids[0][-2] == unk
    assert features.token_word[0].tolist() == [-1, 0, 1, 2, 3, -1]
    assert tags_from_predictions(features, gold_predictions(features), UPOS_TAGS) == [list(s.tags)]


# --------------------------------------------------------------------------- tiny tokenizer


def long_sentences():
    rng = np.random.default_rng(0)
    vocab = ["the", "cat", "dog", "sat", "on", "mat", "big", "xyz", "qu", "hello", "a", "!"]
    out = []
    for i, n in enumerate((1, 3, 40, 7, 120, 25, 0, 60)):
        words = [vocab[k] for k in rng.integers(0, len(vocab), n)]
        out.append(sentence(words, f"long:{i}", [TAGS[k] for k in rng.integers(0, 4, n)]))
    return out


def assert_same(a: TaggingFeatures, b: TaggingFeatures) -> None:
    assert a.input_ids == b.input_ids and a.token_type_ids == b.token_type_ids
    for x, y in ((a.token_labels, b.token_labels), (a.token_word, b.token_word)):
        assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))
    assert np.array_equal(a.window_sentence, b.window_sentence)
    assert np.array_equal(a.num_words, b.num_words) and a.guids == b.guids
    assert (a.num_sentences_split, a.num_empty_words, a.num_words_cut) == \
        (b.num_sentences_split, b.num_empty_words, b.num_words_cut)


def test_long_sentence_windows(tiny):
    sentences = long_sentences()
    features = featurize_tagging(tiny, sentences, TAGS, 16)
    too_long = [sum(map(len, word_pieces(tiny, s.words))) > 14 for s in sentences]
    assert features.num_sentences_split == sum(too_long) == 4
    assert features.window_sentence.dtype == np.int64 and features.num_words.dtype == np.int64
    assert 6 not in features.window_sentence.tolist()  # the empty sentence has no window
    check_windows(tiny, features, sentences, TAGS, 16)
    tags = tags_from_predictions(features, gold_predictions(features), TAGS)
    assert tags == [list(s.tags) for s in sentences]
    assert tags[6] == []
    # One window per sentence when it fits; bigger windows give fewer.
    big = featurize_tagging(tiny, sentences, TAGS, 512)
    assert big.num_sentences_split == 0 and len(big) == 7
    assert len(featurize_tagging(tiny, sentences, TAGS, 32)) < len(features)
    # A sentence of exactly max_length - 2 single-piece words fits; one more word does not.
    assert len(featurize_tagging(tiny, [sentence(["the"] * 14)], TAGS, 16)) == 1
    split = featurize_tagging(tiny, [sentence(["the"] * 15)], TAGS, 16)
    assert len(split) == 2 and split.num_sentences_split == 1


def test_chunk_boundaries_do_not_matter(tiny):
    sentences = long_sentences() * 2
    reference = featurize_tagging(tiny, sentences, TAGS, 16)
    for chunk_size in (1, 3, 5):
        assert_same(reference, featurize_tagging(tiny, sentences, TAGS, 16, chunk_size=chunk_size))


def test_context_parameter(tiny):
    sentences = long_sentences()
    none = featurize_tagging(tiny, sentences, TAGS, 16, context=0)
    check_windows(tiny, none, sentences, TAGS, 16)
    wide = featurize_tagging(tiny, sentences, TAGS, 16, context=6)
    check_windows(tiny, wide, sentences, TAGS, 16)
    assert len(none) < len(featurize_tagging(tiny, sentences, TAGS, 16)) < len(wide)
    for features in (none, wide):
        assert tags_from_predictions(features, gold_predictions(features), TAGS) == \
            [list(s.tags) for s in sentences]
    with pytest.raises(ValueError, match="context"):
        featurize_tagging(tiny, sentences, TAGS, 16, context=7)


def test_plan_windows_properties():
    rng = np.random.default_rng(1)
    for _ in range(300):
        budget = int(rng.integers(1, 40))
        context = int(rng.integers(0, (budget + 1) // 2))
        lengths = rng.integers(1, budget + 1, int(rng.integers(1, 60)))
        starts = np.cumsum(lengths) - lengths
        ends = starts + lengths
        windows = plan_windows(starts, ends, budget, context)
        assert windows[0][2] == 0 and windows[-1][3] == len(lengths)
        bounds = np.append(starts, ends[-1])
        for k, ((a, b, p, q), nxt) in enumerate(zip(windows, windows[1:] + [None])):
            assert p < q and b - a <= budget
            assert a in starts and b in ends and a <= starts[p] and ends[q - 1] <= b
            assert_context(k, lengths, bounds, a, b, p, q - 1, budget, first=k == 0,
                           last=nxt is None)
            if nxt is not None:
                assert nxt[2] == q
        if ends[-1] <= budget:
            assert windows == [(0, int(ends[-1]), 0, len(lengths))]


def test_word_with_no_subtoken_gets_unk(tiny):
    s = sentence(["the", "", "cat"], "e:1", ["A", "B", "C"])
    features = featurize_tagging(tiny, [s, sentence(["", ""], "e:2", "AD")], TAGS)
    assert features.num_empty_words == 3
    the, cat = tiny.convert_tokens_to_ids(["▁the", "▁cat"])
    unk = tiny.unk_token_id
    assert features.input_ids == [[0, the, unk, cat, 2], [0, unk, unk, 2]]
    assert features.token_labels[0].tolist() == [-1, 0, 1, 2, -1]
    assert features.token_word[1].tolist() == [-1, 0, 1, -1]
    assert tags_from_predictions(features, gold_predictions(features), TAGS) == \
        [["A", "B", "C"], ["A", "D"]]
    assert featurize_tagging(tiny, [sentence(["the"])], TAGS).num_empty_words == 0


def test_word_too_long_for_a_window_is_cut(tiny):
    # "abcdefghij" is ▁a b c ... j: 10 sub-tokens; a window of 8 holds 6.
    s = sentence(["the", "abcdefghij", "cat", "dog"], "cut:1")
    features = featurize_tagging(tiny, [s], TAGS, 8)
    assert features.num_words_cut == 1 and features.num_sentences_split == 1
    pieces = word_pieces(tiny, ["abcdefghij"])[0]
    assert len(pieces) == 10
    cut_windows = [w for w, tw in enumerate(features.token_word) if 1 in tw.tolist()]
    assert len(cut_windows) == 1
    ids = features.input_ids[cut_windows[0]]
    assert ids == [0, *pieces[:6], 2]
    check_windows(tiny, features, [s], TAGS, 8)
    assert tags_from_predictions(features, gold_predictions(features), TAGS) == [list(s.tags)]


def test_unknown_tag_names_the_sentence(tiny):
    good = sentence(["the", "cat"], "file.conllu:3", ["A", "B"])
    bad = sentence(["the", "cat"], "file.conllu:9", ["A", "NOPE"])
    with pytest.raises(DataError, match=r"file\.conllu:9.*'NOPE'"):
        featurize_tagging(tiny, [good, bad], TAGS)
    with pytest.raises(DataError, match=r"file\.conllu:9.*2 words but 1 tags"):
        featurize_tagging(tiny, [TaggedSentence(("a", "b"), ("A",), "file.conllu:9")], TAGS)


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="max_length 2"):
        featurize_tagging(tiny, [sentence(["the"])], TAGS, 2)
    one = featurize_tagging(tiny, [sentence(["the", "abc"])], TAGS, 3)  # one token a window
    assert len(one) == 2 and one.num_words_cut == 1
    with pytest.raises(ValueError, match="duplicates"):
        featurize_tagging(tiny, [sentence(["the"])], ("A", "A"))


def test_tags_from_predictions_checks(tiny):
    sentences = long_sentences()
    features = featurize_tagging(tiny, sentences, TAGS, 16)
    predictions = gold_predictions(features)
    with pytest.raises(ValueError, match="positions"):
        tags_from_predictions(features, predictions[:, :10], TAGS)
    with pytest.raises(ValueError, match="n_windows"):
        tags_from_predictions(features, predictions[1:], TAGS)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        tags_from_predictions(features, predictions + 4, TAGS)
    with pytest.raises(ValueError, match="integers"):
        tags_from_predictions(features, predictions.astype(np.float32), TAGS)
    # A window dropped: its words get no prediction; a window repeated: two.
    w = int(np.flatnonzero(features.window_sentence == 2)[1])
    keep = [i for i in range(len(features)) if i != w]
    dropped = pick(features, keep)
    with pytest.raises(ValueError, match="'long:2' has 0"):
        tags_from_predictions(dropped, predictions[keep], TAGS)
    twice = pick(features, list(range(len(features))) + [w])
    with pytest.raises(ValueError, match="'long:2' has 2"):
        tags_from_predictions(twice, predictions[list(range(len(features))) + [w]], TAGS)


def pick(f: TaggingFeatures, rows: list[int]) -> TaggingFeatures:
    return TaggingFeatures([f.input_ids[i] for i in rows], [f.token_type_ids[i] for i in rows],
                           [f.token_labels[i] for i in rows], [f.token_word[i] for i in rows],
                           f.window_sentence[rows], f.num_words, f.guids, 0, 0, 0)


def test_write_predictions_round_trips_through_the_scorer_reader(tmp_path):
    tags = [["NOUN", "VERB"], [], ["B-PER", "I-PER", "O"], []]
    path = write_tagging_predictions(tmp_path / "udpos" / "test-en.tsv", tags)
    assert path.read_text() == "NOUN\nVERB\n\n\nB-PER\nI-PER\nO\n\n\n"
    assert metrics.read_tags(path) == tags
    leading_empty = write_tagging_predictions(tmp_path / "a.tsv", [[], ["X"]])
    assert metrics.read_tags(leading_empty) == [[], ["X"]]
    for bad in ("", " X", "X\n"):
        with pytest.raises(ValueError, match="sentence 1"):
            write_tagging_predictions(tmp_path / "b.tsv", [["X"], ["Y", bad]])
