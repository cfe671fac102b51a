"""The synthetic multilingual world behind ``xstilts demo``: layout, determinism, tasks, sanity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xstilts_jax.demo.synthetic import (
    BOS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, Entity, Form, Meaning, SyntheticConfig,
    make_world)

# Small sizes keep the suite fast; the default sizes are exercised where it matters.
SMALL = SyntheticConfig(intermediate_train_size=900, intermediate_dev_size=150,
                        intermediate_test_size=300, mlm_sentences_per_language=300,
                        parallel_fraction=0.1)


@pytest.fixture(scope="module")
def world():
    return make_world(SMALL)


@pytest.fixture(scope="module")
def default_world():
    return make_world()


def _all_sequences(w):
    seqs = list(w.mlm_corpus())
    for split in ("train", "dev", "test"):
        for lang in w.languages:
            for d in (w.intermediate_task(split, lang), w.target_task(split, lang)):
                seqs += d.a + d.b
    return seqs


def test_vocabulary_layout(world):
    assert (world.bos_id, world.pad_id, world.eos_id, world.mask_id) == (BOS_ID, PAD_ID, EOS_ID, MASK_ID)
    assert (BOS_ID, PAD_ID, EOS_ID, MASK_ID) == (0, 1, 2, 4)
    assert world.token_strings[:5] == SPECIAL_TOKENS
    assert world.vocab_size == len(world.token_strings) <= 1000
    assert len(set(world.token_strings)) == world.vocab_size  # readable and unambiguous
    # Anchors come right after the specials, then one contiguous block per language.
    assert world.anchor_ids.start == len(SPECIAL_TOKENS)
    blocks = [world.language_blocks[lang] for lang in world.languages]
    assert blocks[0].start == world.anchor_ids.stop and blocks[-1].stop == world.vocab_size
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
    for lang, block in world.language_blocks.items():
        assert all(world.language_of(t) == lang for t in block)
    assert all(world.language_of(t) is None for t in world.anchor_ids)
    # Every language names every content concept, each with its own token ids.
    content = {lang: {int(world.token_concept[t]) for t in block
                      if world.concept_kinds[world.token_concept[t]] != "grammar"}
               for lang, block in world.language_blocks.items()}
    assert all(concepts == content["en"] for concepts in content.values())
    assert {world.token_strings[t] for t in world.anchor_ids} >= {"Anna", "2", "9", "."}


def test_anchors_are_shared_and_content_words_are_not(world):
    m = Meaning(agent=Entity(name=0), verb=0, patient=Entity(noun=world.class_nouns[1][0], adjective=0),
                negated=True)
    rendered = {lang: world.render(m, Form(), lang) for lang in world.languages}
    shared = set.intersection(*map(set, rendered.values()))
    anchors = set(world.anchor_ids)
    assert {world.token_strings.index("Anna"), world.token_strings.index(".")} <= shared <= anchors
    for lang, ids in rendered.items():
        own = [t for t in ids if t not in anchors]
        assert own and all(world.language_of(t) == lang for t in own)
    # The same meaning has the same concepts in every language.
    concepts = {lang: sorted(world.concepts(ids)) for lang, ids in rendered.items()}
    assert all(c == concepts["en"] for c in concepts.values())
    # Cognates: a few content concepts share one anchor token; the rest have one word per language.
    c = world.config
    n_candidates = (len(world.class_nouns) * c.nouns_per_class + 2 * c.verbs_per_type
                    + 2 * c.n_adjective_pairs)
    assert len(world.shared_concepts) == round(c.shared_concept_fraction * n_candidates) > 0
    assert all(world.concept_kinds[k] in ("noun", "verb", "adjective") for k in world.shared_concepts)
    no_cognates = make_world(SMALL, shared_concept_fraction=0.0)
    assert no_cognates.shared_concepts == ()
    assert len(no_cognates.anchor_ids) == c.n_names + 8 + 2  # names, digits 2..9, "," and "."


def test_languages_differ_in_word_order(world):
    adjective, noun = 0, world.class_nouns[1][0]  # "big dog"
    m = Meaning(agent=Entity(noun=noun, adjective=adjective), verb=1,
                patient=Entity(noun=world.class_nouns[0][0]))
    c_adj, c_noun = world._c_adj[adjective], world._c_noun[noun]
    c_verb, c_patient = world._c_verb[1], world._c_noun[world.class_nouns[0][0]]

    def order(lang):
        concepts = world.concepts(world.render(m, Form(), lang))
        return {c: concepts.index(c) for c in (c_adj, c_noun, c_verb, c_patient)}

    en, xa, xb, xc = (order(lang) for lang in ("en", "xa", "xb", "xc"))
    assert en[c_adj] < en[c_noun] and xa[c_adj] > xa[c_noun]  # adjective-noun order
    assert en[c_noun] < en[c_verb] < en[c_patient]  # SVO
    assert xb[c_noun] < xb[c_patient] < xb[c_verb]  # SOV: verb-final
    assert xc[c_verb] < xc[c_noun] < xc[c_patient]  # VSO
    assert world.specs["xb"].determiner is None
    # Passive voice keeps the meaning and changes the order.
    passive = world.concepts(world.render(m, Form(passive=True), "en"))
    assert passive.index(c_patient) < passive.index(c_verb) < passive.index(c_noun)


def test_every_id_is_in_the_vocabulary_and_no_specials(world):
    for seq in _all_sequences(world):
        assert seq and all(5 <= t < world.vocab_size for t in seq)  # no specials inside
        assert seq[-1] == world.token_strings.index(".")


def test_edits_never_bring_in_what_the_world_lacks(world):
    """With p_place = p_hypernym = 0 (the defaults) no pair mentions a place or a hypernym:
    otherwise the edited sentence alone would give the label away."""
    assert world.config.p_place == world.config.p_hypernym == 0.0
    for get in (world.intermediate_task, world.target_task):
        for a, b in get("train").meanings:
            for m in (a, b):
                assert m.place is None
                assert not any(e.noun is not None and world.noun_is_hypernym[e.noun]
                               for e in (m.agent, m.patient))
    rich = make_world(SMALL, p_place=0.3, p_hypernym=0.2, n_synonyms=2, intermediate_extra_edits=2)
    nli = rich.intermediate_task("train")
    assert any(a.place is not None for a, _ in nli.meanings)
    assert all(rich.nli_label(p, h) == y for (p, h), y in zip(nli.meanings, nli.labels))
    counts = np.bincount(nli.labels)
    assert counts.max() - counts.min() <= 1


def test_large_inventory_stays_unambiguous():
    w = make_world(SMALL, n_names=16, nouns_per_class=10, verbs_per_type=10, n_adjective_pairs=9,
                   n_places=9, n_synonyms=3, languages=("en", "xa", "xb", "xc", "xd", "xe"))
    assert len(set(w.token_strings)) == w.vocab_size < 2000
    assert all(t < w.vocab_size for s in w.target_task("test", "xe").a for t in s)


def test_determinism():
    a, b = make_world(SMALL), make_world(SMALL)
    other = make_world(dataclasses.replace(SMALL, seed=1))
    assert a.token_strings == other.token_strings  # the layout does not depend on the seed
    assert a.mlm_corpus() == b.mlm_corpus() != other.mlm_corpus()
    assert a.mlm_corpus(seed=7) != a.mlm_corpus()
    for get in ("intermediate_task", "target_task"):
        for split in ("train", "test"):
            x, y, z = (getattr(w, get)(split, "xb") for w in (a, b, other))
            assert x.a == y.a and x.b == y.b and np.array_equal(x.labels, y.labels)
            assert x.a != z.a
    # Call order does not matter: test sets do not depend on what was generated before.
    fresh = make_world(SMALL)
    assert fresh.target_task("test", "xc").a == a.target_task("test", "xc").a
    assert a.parallel_sentences("xa", 50) == b.parallel_sentences("xa", 50)


def test_sizes_and_balanced_labels(world, default_world):
    c = default_world.config
    assert len(default_world.intermediate_task("train")) == c.intermediate_train_size
    assert len(default_world.target_task("train")) == c.target_train_size
    for w in (world, default_world):
        for split in ("train", "dev", "test"):
            for d in (w.intermediate_task(split), w.target_task(split)):
                counts = np.bincount(d.labels, minlength=len(d.label_names))
                assert counts.max() - counts.min() <= 1, (d.task, split, counts)
                assert d.labels.dtype == np.int64 and len(d.a) == len(d.b) == len(d)
    assert world.intermediate_task().label_names == ("entailment", "neutral", "contradiction")
    assert world.target_task().label_names == ("not_paraphrase", "paraphrase")
    assert world.target_task().language == "en"


def test_labels_follow_from_the_latent_meanings(world):
    nli = world.intermediate_task("train")
    assert all(world.nli_label(p, h) == y for (p, h), y in zip(nli.meanings, nli.labels))
    tgt = world.target_task("train")
    assert all(int(a == b) == y for (a, b), y in zip(tgt.meanings, tgt.labels))
    # Every pair reads differently, paraphrases included; sentences are rendered from the latents.
    assert all(a != b for a, b in zip(tgt.a, tgt.b))
    (m, _), (f, _) = tgt.meanings[0], tgt.forms[0]
    assert tgt.a[0] == world.render(m, f, "en")
    # Splits do not share sentences.
    train = {m for pair in tgt.meanings for m in pair}
    assert not train & {m for pair in world.target_task("test").meanings for m in pair}


def test_nli_logic(world):
    dog, animal = world.class_nouns[1][0], world.hypernym_of[1]
    person = world.hypernym_of[0]
    big, small, old = 0, 1, 2
    chases = 1
    p = Meaning(Entity(noun=dog, adjective=big), chases, Entity(name=0), place=2)
    label = lambda h: world.label_names["intermediate"][world.nli_label(p, h)]  # noqa: E731
    assert label(p) == "entailment"
    assert label(Meaning(Entity(noun=animal), chases, Entity(noun=person))) == "entailment"
    assert label(p._replace(place=None)) == "entailment"
    assert label(p._replace(negated=True)) == "contradiction"
    assert label(p._replace(agent=Entity(noun=dog, adjective=small))) == "contradiction"
    assert label(p._replace(place=3)) == "contradiction"
    assert label(p._replace(agent=Entity(noun=dog, adjective=old))) == "neutral"
    assert label(p._replace(agent=Entity(name=0), patient=Entity(noun=dog, adjective=big))) == "neutral"
    assert label(p._replace(agent=Entity(noun=animal), negated=True)) == "contradiction"
    # Negated premises: "the dog does not chase Anna" entails "the big dog does not chase Anna".
    q = Meaning(Entity(noun=dog), chases, Entity(name=0), negated=True)
    assert world.nli_label(q, q._replace(agent=Entity(noun=dog, adjective=big))) == 0
    assert world.nli_label(q, q._replace(agent=Entity(noun=animal))) == 1
    assert world.nli_label(q, q._replace(negated=False, agent=Entity(noun=dog, adjective=big))) == 2


def test_target_test_sets_share_latent_pairs_across_languages(default_world):
    w = default_world
    tests = {lang: w.target_task("test", lang) for lang in w.languages}
    en = tests["en"]
    assert len(en) == w.config.target_test_size
    for lang, d in tests.items():
        assert d.language == lang and np.array_equal(d.labels, en.labels)
        assert d.meanings == en.meanings and d.forms == en.forms
        assert [w.concepts(x) for x in d.a[:50]] != [] and all(
            sorted(w.concepts(x)) == sorted(w.concepts(y)) for x, y in zip(d.a, en.a))
        if lang != "en":
            assert not set(np.concatenate(d.a)) & set(np.concatenate(en.a)) - set(w.anchor_ids)
    # A share of the negatives are word-order swaps: same bag of words, different meaning.
    negatives = en.labels == 0
    same_bag = np.array([sorted(w.concepts(a)) == sorted(w.concepts(b)) for a, b in zip(en.a, en.b)])
    assert abs(same_bag[negatives].mean() - w.config.target_swap_fraction) < 0.06


def test_mlm_corpus_mixes_languages(world):
    c = world.config
    seqs, langs = world.mlm_corpus(return_languages=True)
    assert len(seqs) == len(world.languages) * c.mlm_sentences_per_language
    assert {lang: langs.count(lang) for lang in world.languages} == dict.fromkeys(
        world.languages, c.mlm_sentences_per_language)
    n_langs = [len({world.language_of(t) for t in s} - {None}) for s in seqs]
    mixed = np.mean(np.array(n_langs) > 1)
    expected = c.code_switch_fraction + c.parallel_fraction
    assert expected - 0.1 < mixed <= expected + 1e-9  # a code-switched sentence may switch nothing
    assert max(map(len, seqs)) <= 34  # a sentence plus its translation fits 36 with <s>, </s>
    assert len(world.mlm_corpus(n_per_language=10)) == 10 * len(world.languages)
    src, tgt = world.parallel_sentences("xc", 20)
    assert [world.concepts(s) and sorted(world.concepts(s)) for s in src] == [
        sorted(world.concepts(t)) for t in tgt]


def test_decode_is_readable():
    world = make_world(SMALL, shared_concept_fraction=0.0)
    m = Meaning(Entity(name=0), 1, Entity(noun=world.class_nouns[1][0], adjective=0, count=3),
                negated=True, place=0)
    assert world.decode(world.render(m, Form(), "en")) == "Anna not chases the 3 big dog in the park ."
    assert world.decode([BOS_ID, PAD_ID]) == "<s> <pad>"
    assert world.decode(world.render(m, Form(), "xa"), show_language=True).startswith("Anna xa:")
    assert world.describe(m) == "Anna NOT chases 3 big dog @park"


def test_config_validation():
    with pytest.raises(ValueError, match="source_language"):
        SyntheticConfig(source_language="de")
    with pytest.raises(ValueError, match="p_adjective"):
        SyntheticConfig(p_adjective=1.5)
    with pytest.raises(ValueError, match="distinct"):
        SyntheticConfig(languages=("en", "en"))
    w = make_world(SMALL, languages=("en", "xa", "zz"))  # unknown names get a drawn grammar
    assert w.target_task("test", "zz").labels.tolist() == w.target_task("test", "en").labels.tolist()


# ----------------------------------------------------------------------------- sanity baselines
def _bags(seqs, size):
    rows = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    flat = rows * size + np.concatenate(seqs)
    return np.bincount(flat, minlength=len(seqs) * size).reshape(len(seqs), size).astype(np.float32)


def _pair_features(a, b, size):
    A, B = _bags(a, size), _bags(b, size)
    return np.concatenate([A + B, np.abs(A - B), A * B], axis=1)


def _logistic_regression(X, y, k, steps=300, lr=0.1, l2=1e-3):
    """Softmax regression fitted by full-batch Adam."""
    W, bias, Y = np.zeros((X.shape[1], k), np.float32), np.zeros(k, np.float32), np.eye(k)[y]
    m, v = np.zeros_like(W), np.zeros_like(W)
    for t in range(1, steps + 1):
        z = X @ W + bias
        p = np.exp(z - z.max(1, keepdims=True))
        g = (p / p.sum(1, keepdims=True) - Y) / len(y)
        gW = X.T @ g + l2 * W
        m, v = 0.9 * m + 0.1 * gW, 0.999 * v + 0.001 * gW ** 2
        W -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        bias -= lr * g.sum(0)
    return lambda X_: (X_ @ W + bias).argmax(1)


def _baseline_accuracies(w, task, featurize, size):
    get = getattr(w, f"{task}_task")
    train = get("train")
    predict = _logistic_regression(_pair_features(featurize(train.a), featurize(train.b), size),
                                   train.labels, len(train.label_names))
    out = {}
    for lang in w.languages:
        test = get("test", lang)
        out[lang] = float(np.mean(predict(_pair_features(featurize(test.a), featurize(test.b), size))
                                  == test.labels))
    return out


@pytest.fixture(scope="module")
def disjoint_world():
    """The default world without cognates: languages share names, digits and punctuation only."""
    return make_world(shared_concept_fraction=0.0)


def test_bag_of_words_learns_english_but_does_not_transfer(disjoint_world, default_world):
    acc = _baseline_accuracies(disjoint_world, "target", lambda s: s, disjoint_world.vocab_size)
    assert acc["en"] > 0.7, acc  # lexical cues exist in English...
    for lang in ("xa", "xb", "xc"):  # ...but other languages share only names and digits
        assert acc[lang] < 0.58, acc
    # Cognates (the default) let a little of the lexical signal through, not all of it.
    acc = _baseline_accuracies(default_world, "target", lambda s: s, default_world.vocab_size)
    assert all(0.55 < acc[lang] < acc["en"] - 0.1 for lang in ("xa", "xb", "xc")), acc


def test_latent_oracle_scores_the_same_in_every_language(disjoint_world):
    w = disjoint_world
    acc = _baseline_accuracies(w, "target", lambda s: [w.concepts(x) for x in s], w.n_concepts)
    assert acc["en"] > 0.7, acc  # well above chance from the concepts alone...
    assert len(set(acc.values())) == 1, acc  # ...and identical across languages
    # Order-free concepts cannot see swaps: the rest needs word order, i.e. the grammar.
    assert acc["en"] < 1 - w.config.target_swap_fraction / 2 + 0.02, acc
