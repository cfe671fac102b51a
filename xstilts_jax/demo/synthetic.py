"""A small synthetic multilingual world for the offline ``xstilts demo`` (numpy only).

Every sentence expresses one latent *event*: an agent does something (a verb) to a patient,
optionally negated and optionally somewhere. Entities are names or nouns of four classes
(person, animal, food, tool; optionally the class hypernyms) with an optional adjective
(adjectives come in antonym pairs) and, on patients, an optional count 2..9. Verbs have
selectional restrictions (``chases`` wants an animate patient, ``eats`` food) and every word
has collocational preferences (which nouns a verb takes, which adjectives a noun takes), so
that words differ in distribution, as real words do, and masked-LM can tell them apart.

The languages (default ``en`` plus ``xa``, ``xb``, ``xc``) share this latent grammar but not
their words: each has its own block of token ids (content words and function words), and
they realise the grammar differently — ``xa`` puts adjectives after nouns and negation after
the verb, ``xb`` is verb-final with postpositions, no articles and a pre-verbal place phrase,
``xc`` is verb-initial with sentence-initial negation and suffixed articles. Shared *anchor*
tokens, with one id in every language as in real text: names, digits, punctuation, and a few
cognates (``shared_concept_fraction`` of the content words, spelled like English). A
sentence is rendered from (meaning, form); the form (voice, fronted place phrase, synonym
choices) is language-neutral, so every latent sentence has an exact translation everywhere.

The tasks are pair classification (``<s> A </s></s> B </s>``), labels computed from the latent
meanings only, never from the surface:

* intermediate (English, large): NLI — entailment / neutral / contradiction from a small logic
  of events (a rewording or a dropped modifier entails; a flipped negation, an antonym or
  another count of the same event contradicts; a role swap, another verb or noun, or an added
  modifier is neutral; negated premises reverse the direction of modifiers);
* target (English train/dev small, test in every language from the same latent pairs):
  PAWS-X-like paraphrase identification — "paraphrase" iff the meanings are equal, whatever
  the two wordings; negatives are minimal pairs, a ``target_swap_fraction`` of them swaps
  (agent/patient or the two adjectives) that a bag of words cannot see.

Both tasks need the same skill — compare two sentences slot by slot, knowing which
differences matter — which 12k NLI pairs teach far better than 500 paraphrase pairs: the
low-resource regime where intermediate training pays. The masked-LM corpus has every language,
some code-switched sentences and some sentence + translation snippets.

Usage::

    world = make_world(SyntheticConfig(seed=0))
    corpus = world.mlm_corpus()                       # list of token-id lists, no specials
    nli = world.intermediate_task("train")            # PairData: a, b, labels, label_names...
    tests = {lang: world.target_task("test", lang) for lang in world.languages}
    print(world.decode(nli.a[0]), "||", world.decode(nli.b[0]), nli.label_names[nli.labels[0]])
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import NamedTuple, Sequence

import numpy as np

BOS_ID, PAD_ID, EOS_ID, UNK_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

SPLITS = ("train", "dev", "test")
NLI_LABELS = ("entailment", "neutral", "contradiction")  # MNLI's label order
PARAPHRASE_LABELS = ("not_paraphrase", "paraphrase")  # PAWS-X's label order

# The latent inventory. English surface words double as concept names; sizes beyond these
# lists get generated names ("noun7", ...).
NOUN_CLASSES = ("person", "animal", "food", "tool")
ANIMATE_CLASSES = (0, 1)
PERSON = 0
_NOUNS = (
    ("teacher", "farmer", "doctor", "child", "singer", "pilot", "nurse", "baker"),
    ("dog", "cat", "horse", "bird", "fox", "rabbit", "goat", "mouse"),
    ("apple", "bread", "cake", "cheese", "egg", "rice", "soup", "pear"),
    ("hammer", "knife", "rope", "lamp", "key", "brush", "saw", "cup"),
)
_SOCIAL_VERBS = ("sees", "chases", "helps", "follows", "greets", "calls", "watches", "pushes")
_HANDLING_VERBS = (("eats", (2,)), ("uses", (3,)), ("carries", (2, 3)), ("cooks", (2,)),
                   ("fixes", (3,)), ("finds", (2, 3)), ("buys", (2, 3)), ("drops", (2, 3)))
_ADJECTIVE_PAIRS = (("big", "small"), ("old", "new"), ("clean", "dirty"), ("heavy", "light"),
                    ("dark", "bright"), ("fast", "slow"), ("hot", "cold"), ("soft", "hard"))
_PLACES = ("park", "kitchen", "garden", "school", "market", "forest", "river", "house")
_NAMES = ("Anna", "Ben", "Carl", "Dana", "Emil", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kim",
          "Lea", "Max", "Nora", "Omar", "Pia")
DIGITS = tuple(range(2, 10))  # patient counts, rendered as the shared anchors "2".."9"
FUNCTION_WORDS = ("det", "neg", "pass", "by", "in")
_ENGLISH_FUNCTION_WORDS = {"det": "the", "neg": "not", "pass": "is", "by": "by", "in": "in"}

# Synonym-choice slots of a Form.
_AGENT_NOUN, _AGENT_ADJ, _VERB, _PATIENT_NOUN, _PATIENT_ADJ, _PLACE = range(6)
_N_SLOTS = 6


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


@dataclasses.dataclass(frozen=True)
class LanguageSpec:
    """How one language realises the latent grammar (all of it surface: the meaning is shared)."""

    name: str
    order: str = "SVO"  # clause order of subject, verb group, object: "SVO", "SOV" or "VSO"
    adjective_after_noun: bool = False
    determiner: str | None = "pre"  # "pre", "post" (suffixed article) or None (no articles)
    count_after_noun: bool = False
    negation: str = "pre_verb"  # "pre_verb", "post_verb" or "initial" (sentence-initial)
    passive_marker: str = "pre"  # auxiliary before ("pre") or particle after ("post") the verb
    adposition: str = "pre"  # prepositions ("pre") or postpositions ("post") for by/in
    place: str = "end"  # unfronted place phrase: at the "end" or right before the verb ("pre_verb")


DEFAULT_LANGUAGE_SPECS = {
    "en": LanguageSpec("en"),
    "xa": LanguageSpec("xa", adjective_after_noun=True, negation="post_verb", passive_marker="post"),
    "xb": LanguageSpec("xb", order="SOV", determiner=None, count_after_noun=True,
                       negation="post_verb", passive_marker="post", adposition="post",
                       place="pre_verb"),
    "xc": LanguageSpec("xc", order="VSO", adjective_after_noun=True, determiner="post",
                       negation="initial"),
}


def language_spec(name: str) -> LanguageSpec:
    """The built-in spec for en/xa/xb/xc; any other name gets a spec drawn from its own hash."""
    if name in DEFAULT_LANGUAGE_SPECS:
        return DEFAULT_LANGUAGE_SPECS[name]
    rng = np.random.default_rng(_crc("spec:" + name))
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return LanguageSpec(name, order=pick(("SVO", "SOV", "VSO")),
                        adjective_after_noun=bool(rng.integers(2)),
                        determiner=pick(("pre", "post", None)),
                        count_after_noun=bool(rng.integers(2)),
                        negation=pick(("pre_verb", "post_verb", "initial")),
                        passive_marker=pick(("pre", "post")), adposition=pick(("pre", "post")),
                        place=pick(("end", "pre_verb")))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines the world; the data is a deterministic function of it.

    The vocabulary layout (which id is which word) depends on the inventory and the languages
    only, not on ``seed`` or the sentence distribution: worlds that differ only in those share
    one vocabulary.
    """

    seed: int = 0
    languages: tuple[str, ...] = ("en", "xa", "xb", "xc")
    source_language: str = "en"  # the language of the intermediate and target training data
    # Inventory. The defaults keep the vocabulary small (~200 ids) so that a tiny encoder learns
    # every word in a few thousand masked-LM steps; the word lists allow up to 8 per class.
    n_names: int = 8
    nouns_per_class: int = 4
    verbs_per_type: int = 4  # social verbs (animate patients) and handling verbs (things)
    n_adjective_pairs: int = 4
    n_places: int = 4
    n_synonyms: int = 1  # words per concept and language (2+: paraphrases may swap synonyms)
    # Cognates: a fraction of content concepts spelled alike in every language (like loanwords).
    # With none, a tiny encoder barely aligns the languages in a demo-sized pretraining run.
    shared_concept_fraction: float = 0.2
    # Sentence distribution (a probability of 0 also disables the edits that would add it).
    p_name: float = 0.25  # a slot that takes persons is filled by a name (else by a noun)
    p_hypernym: float = 0.0  # a noun is its class hypernym ("animal")
    p_adjective: float = 0.4
    p_count: float = 0.25  # patient nouns only
    p_negation: float = 0.2
    p_place: float = 0.0
    p_passive: float = 0.3
    p_place_front: float = 0.3
    p_reword: float = 0.3  # in a pair, chance that B changes each of A's form choices
    collocation_concentration: float = 1.0  # Dirichlet alpha of word preferences (inf: none)
    # Masked-LM pretraining corpus.
    mlm_sentences_per_language: int = 4000
    code_switch_fraction: float = 0.15  # of each language's sequences, code-switched ones
    code_switch_rate: float = 0.3  # in those, chance that a content word is switched
    parallel_fraction: float = 0.1  # of each language's sequences, sentence + its translation
    # Intermediate task (NLI): English train; dev/test exist in every language.
    intermediate_train_size: int = 12000
    intermediate_dev_size: int = 1000
    intermediate_test_size: int = 1000
    intermediate_extra_edits: int = 0  # up to this many entailment-preserving edits on top
    # Target task (paraphrase): small English train, English dev, test in every language.
    target_train_size: int = 500
    target_dev_size: int = 500
    target_test_size: int = 1000
    target_swap_fraction: float = 0.3  # of the negatives, word-order swaps (same bag of words)

    def __post_init__(self):
        if self.seed < 0 or self.intermediate_extra_edits < 0:
            raise ValueError("seed and intermediate_extra_edits must be non-negative")
        if len(set(self.languages)) != len(self.languages) or len(self.languages) < 1:
            raise ValueError(f"languages must be distinct and non-empty, got {self.languages}")
        if self.source_language not in self.languages:
            raise ValueError(f"source_language {self.source_language!r} is not in {self.languages}")
        for field in ("n_names", "nouns_per_class", "verbs_per_type", "n_adjective_pairs",
                      "n_places", "n_synonyms"):
            minimum = 2 if field != "n_synonyms" else 1
            if getattr(self, field) < minimum:
                raise ValueError(f"{field} must be at least {minimum}")
        for field in ("p_name", "p_hypernym", "p_adjective", "p_count", "p_negation", "p_place",
                      "p_passive", "p_place_front", "code_switch_fraction",
                      "code_switch_rate", "parallel_fraction",
                      "target_swap_fraction", "shared_concept_fraction"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{field} must be a probability, got {getattr(self, field)}")
        if not 0.0 < self.p_reword <= 1.0:
            raise ValueError(f"p_reword must be in (0, 1], got {self.p_reword}")
        if self.code_switch_fraction + self.parallel_fraction > 1:
            raise ValueError("code_switch_fraction + parallel_fraction must be at most 1")
        if not self.collocation_concentration > 0:
            raise ValueError("collocation_concentration must be positive (inf: uniform)")


class Entity(NamedTuple):
    """A participant: a name, or a noun (maybe a class hypernym) with an adjective and a count."""

    name: int | None = None
    noun: int | None = None
    adjective: int | None = None
    count: int | None = None  # 2..9, patients only


class Meaning(NamedTuple):
    """The latent content of a sentence; labels are functions of two Meanings."""

    agent: Entity
    verb: int
    patient: Entity
    negated: bool = False
    place: int | None = None


class Form(NamedTuple):
    """Language-neutral surface choices: voice, fronted place phrase, one synonym per slot."""

    passive: bool = False
    place_front: bool = False
    synonyms: tuple[int, ...] = (0,) * _N_SLOTS


@dataclasses.dataclass(frozen=True)
class PairData:
    """Sentence pairs in one language; ``a``/``b`` are token ids without special tokens."""

    task: str
    split: str
    language: str
    a: list[list[int]]
    b: list[list[int]]
    labels: np.ndarray  # int64 [n]
    label_names: tuple[str, ...]
    meanings: list[tuple[Meaning, Meaning]]  # the latent pair behind each example
    forms: list[tuple[Form, Form]]

    def __len__(self) -> int:
        return len(self.labels)


class SyntheticWorld:
    """The vocabulary, the grammar of every language and the task generators of one config."""

    def __init__(self, config: SyntheticConfig):
        self.config = c = config
        self.languages = tuple(c.languages)
        self.specs = {lang: language_spec(lang) for lang in self.languages}
        self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id = (
            BOS_ID, PAD_ID, EOS_ID, UNK_ID, MASK_ID)
        self.label_names = {"intermediate": NLI_LABELS, "target": PARAPHRASE_LABELS}
        self._cache: dict = {}

        # --- latent inventory -------------------------------------------------------------
        self.noun_names: list[str] = []
        self.noun_class: list[int] = []
        self.noun_is_hypernym: list[bool] = []
        self.class_nouns: list[list[int]] = []  # specific nouns of each class
        self.hypernym_of: list[int] = []  # the hypernym noun of each class
        for k, cls in enumerate(NOUN_CLASSES):
            members = []
            for i in range(c.nouns_per_class):
                members.append(len(self.noun_names))
                self.noun_names.append(_NOUNS[k][i] if i < len(_NOUNS[k]) else f"{cls}{i}")
                self.noun_class.append(k)
                self.noun_is_hypernym.append(False)
            self.class_nouns.append(members)
            self.hypernym_of.append(len(self.noun_names))
            self.noun_names.append(cls)
            self.noun_class.append(k)
            self.noun_is_hypernym.append(True)
        self.verb_names: list[str] = []
        self.verb_patient_classes: list[tuple[int, ...]] = []
        for i in range(c.verbs_per_type):
            self.verb_names.append(_SOCIAL_VERBS[i] if i < len(_SOCIAL_VERBS) else f"meets{i}")
            self.verb_patient_classes.append(ANIMATE_CLASSES)
        for i in range(c.verbs_per_type):
            name, classes = (_HANDLING_VERBS[i] if i < len(_HANDLING_VERBS)
                             else (f"takes{i}", (2, 3)))
            self.verb_names.append(name)
            self.verb_patient_classes.append(classes)
        pairs = [_ADJECTIVE_PAIRS[i] if i < len(_ADJECTIVE_PAIRS) else (f"adj{i}", f"non-adj{i}")
                 for i in range(c.n_adjective_pairs)]
        self.adjective_names = [word for pair in pairs for word in pair]  # antonyms: 2k, 2k+1
        self.place_names = [_PLACES[i] if i < len(_PLACES) else f"place{i}" for i in range(c.n_places)]
        self.name_names = [_NAMES[i] if i < len(_NAMES) else f"Name{i}" for i in range(c.n_names)]

        # --- concepts: language-independent ids for everything a token can mean ---------------
        self.concept_names: list[str] = []
        self.concept_kinds: list[str] = []

        def add_concepts(kind, names):
            start = len(self.concept_names)
            self.concept_names.extend(names)
            self.concept_kinds.extend([kind] * len(names))
            return list(range(start, len(self.concept_names)))

        self._c_name = add_concepts("name", self.name_names)
        self._c_digit = dict(zip(DIGITS, add_concepts("digit", [str(d) for d in DIGITS])))
        self._c_comma, self._c_period = add_concepts("punct", [",", "."])
        self._c_noun = add_concepts("noun", self.noun_names)
        self._c_verb = add_concepts("verb", self.verb_names)
        self._c_adj = add_concepts("adjective", self.adjective_names)
        self._c_place = add_concepts("place", self.place_names)
        (self._c_neg,) = add_concepts("negation", ["NOT"])
        self._c_function = dict(zip(["det", "pass", "by", "in"],
                                    add_concepts("grammar", ["DET", "PASS", "BY", "IN"])))
        self._c_function["neg"] = self._c_neg
        self.n_concepts = len(self.concept_names)
        content_concepts = self._c_noun + self._c_verb + self._c_adj + self._c_place

        # --- vocabulary -------------------------------------------------------------------
        strings = list(SPECIAL_TOKENS)
        token_concept = [-1] * len(SPECIAL_TOKENS)
        token_language = [-1] * len(SPECIAL_TOKENS)
        anchor_concepts = self._c_name + list(self._c_digit.values()) + [self._c_comma, self._c_period]
        # Cognates: content concepts with one word (per synonym) shared by every language. The
        # choice depends on the inventory only, like the rest of the layout.
        # Hypernyms and places, often absent from the sentences, are never cognates.
        candidates = [self._c_noun[n] for k in range(len(NOUN_CLASSES)) for n in self.class_nouns[k]]
        candidates += self._c_verb + self._c_adj
        n_shared = int(round(c.shared_concept_fraction * len(candidates)))
        shared_rng = np.random.default_rng(_crc("shared concepts"))
        self.shared_concepts = tuple(sorted(
            int(x) for x in shared_rng.permutation(candidates)[:n_shared]))
        self._anchor_token = {}
        shared_lexicon = {}
        start = len(strings)
        for concept in anchor_concepts:
            self._anchor_token[concept] = len(strings)
            strings.append(self.concept_names[concept])
            token_concept.append(concept)
            token_language.append(-1)
        for concept in self.shared_concepts:
            for synonym in range(c.n_synonyms):
                shared_lexicon[(concept, synonym)] = len(strings)
                word = self.concept_names[concept]  # English's word, borrowed by every language
                strings.append(word if synonym == 0 else f"{word}~{synonym + 1}")
                token_concept.append(concept)
                token_language.append(-1)
        self.anchor_ids = range(start, len(strings))
        self.language_blocks: dict[str, range] = {}
        self._lexicon: dict[str, dict[tuple[int, int], int]] = {}  # (concept, synonym) -> id
        self._function_token: dict[str, dict[str, int]] = {}
        taken = set(strings) | set(self.concept_names) | set(_ENGLISH_FUNCTION_WORDS.values())
        for li, lang in enumerate(self.languages):
            spec = self.specs[lang]
            functions = [f for f in FUNCTION_WORDS if f != "det" or spec.determiner is not None]
            entries = [("function", f, 0) for f in functions]
            entries += [("content", concept, s) for concept in content_concepts
                        for s in range(c.n_synonyms) if concept not in self.shared_concepts]
            words = self._surface_words(lang, entries, taken)
            # A language-specific shuffle: no id arithmetic relates translations.
            order = np.random.default_rng(_crc("block:" + lang)).permutation(len(entries))
            start = len(strings)
            lexicon, function_token = dict(shared_lexicon), {}
            for position, e in enumerate(order):
                kind, key, synonym = entries[e]
                token = start + position
                strings.append(words[e])
                token_language.append(li)
                if kind == "function":
                    function_token[key] = token
                    token_concept.append(self._c_function[key])
                else:
                    lexicon[(key, synonym)] = token
                    token_concept.append(key)
            self.language_blocks[lang] = range(start, len(strings))
            self._lexicon[lang] = lexicon
            self._function_token[lang] = function_token
        self.vocab_size = len(strings)

        # --- collocations: which words go together (the same in every language) ---------------
        # Without them, nouns of one class would be exchangeable and no amount of monolingual
        # text could tell "dog" from "cat" or align either with its translation.
        rng = self._rng("collocations")
        alpha = c.collocation_concentration

        def dirichlet(n: int) -> np.ndarray:  # as a CDF, for _draw
            return np.cumsum(np.full(n, 1.0 / n) if np.isinf(alpha) else rng.dirichlet([alpha] * n))

        self._name_pref = {v: dirichlet(c.n_names) for v in range(len(self.verb_names))}
        self._noun_pref = {}
        for v in range(len(self.verb_names)):
            roles = (("agent", ANIMATE_CLASSES), ("patient", self.verb_patient_classes[v]))
            for role, classes in roles:
                members = [n for k in classes for n in self.class_nouns[k]]
                self._noun_pref[(v, role)] = (members, dirichlet(len(members)))
        self._adjective_pref = [dirichlet(len(self.adjective_names))
                                for _ in self.noun_names]
        self._place_pref = {v: dirichlet(c.n_places) for v in range(len(self.verb_names))}
        self.token_strings = tuple(strings)
        self.token_concept = np.asarray(token_concept, np.int64)  # -1 for specials
        self.token_language = np.asarray(token_language, np.int64)  # -1 for specials, anchors

    # ----------------------------------------------------------------------------- vocabulary
    def _surface_words(self, lang, entries, taken) -> list[str]:
        if lang == "en":
            out = []
            for kind, key, synonym in entries:
                word = (_ENGLISH_FUNCTION_WORDS[key] if kind == "function"
                        else self.concept_names[key])
                out.append(word if synonym == 0 else f"{word}~{synonym + 1}")
            return out
        rng = np.random.default_rng(_crc("words:" + lang))
        consonants = "".join(rng.permutation(list("bdfgklmnprstvz"))[:9])
        vowels = "".join(rng.permutation(list("aeiouy"))[:4])
        out = []
        for kind, _, _ in entries:
            syllables = 1 if kind == "function" else 2
            for attempt in range(10_000):
                n = syllables + attempt // 50  # longer words once the short ones run out
                word = "".join(_pick(rng, consonants) + _pick(rng, vowels) for _ in range(n))
                if kind != "function" and rng.random() < 0.3:
                    word += _pick(rng, consonants)
                if word not in taken:
                    break
            taken.add(word)
            out.append(word)
        return out

    def language_of(self, token_id: int) -> str | None:
        """The language owning a token; None for specials and shared anchors."""
        li = int(self.token_language[token_id])
        return None if li < 0 else self.languages[li]

    def decode(self, ids: Sequence[int], show_language: bool = False) -> str:
        """Readable pseudo-words for token ids (``xa:word`` with show_language)."""
        words = []
        for t in ids:
            t = int(t)
            if not 0 <= t < self.vocab_size:
                words.append(f"<?{t}>")
                continue
            lang = self.language_of(t)
            word = self.token_strings[t]
            words.append(f"{lang}:{word}" if show_language and lang else word)
        return " ".join(words)

    def concepts(self, ids: Sequence[int], keep_grammar: bool = False) -> list[int]:
        """The latent concept of each token (the 'oracle' that undoes the vocabulary split).

        Specials are dropped, and so are purely grammatical tokens (articles, passive markers,
        by/in, punctuation) unless ``keep_grammar``: what remains is the same multiset in every
        language for the same meaning.
        """
        out = []
        for t in ids:
            concept = int(self.token_concept[int(t)])
            if concept < 0:
                continue
            if not keep_grammar and self.concept_kinds[concept] in ("grammar", "punct"):
                continue
            out.append(concept)
        return out

    def describe(self, m: Meaning) -> str:
        """The latent meaning in a compact English-like notation."""

        def ent(e: Entity) -> str:
            if e.name is not None:
                return self.name_names[e.name]
            bits = [str(e.count)] if e.count else []
            bits += [self.adjective_names[e.adjective]] if e.adjective is not None else []
            return " ".join(bits + [self.noun_names[e.noun]])

        verb = ("NOT " if m.negated else "") + self.verb_names[m.verb]
        text = f"{ent(m.agent)} {verb} {ent(m.patient)}"
        return text + (f" @{self.place_names[m.place]}" if m.place is not None else "")

    # ------------------------------------------------------------------------------ rendering
    def render(self, m: Meaning, form: Form, language: str, *,
               code_switch: tuple[float, np.random.Generator] | None = None) -> list[int]:
        """Token ids (no specials) of a meaning in a language.

        ``code_switch=(rate, rng)`` replaces each content word, with probability ``rate``, by the
        same concept's word (same synonym) in another random language of the world.
        """
        spec = self.specs[language]
        func = self._function_token[language]
        others = [lang for lang in self.languages if lang != language]

        def word(concept: int, slot: int) -> int:
            lex = self._lexicon[language]
            if code_switch is not None and others and code_switch[1].random() < code_switch[0]:
                lex = self._lexicon[others[int(code_switch[1].integers(len(others)))]]
            return lex[(concept, form.synonyms[slot] % self.config.n_synonyms)]

        def with_det(core: list[int]) -> list[int]:
            if spec.determiner == "pre":
                return [func["det"]] + core
            if spec.determiner == "post":
                return core + [func["det"]]
            return core

        def noun_phrase(e: Entity, noun_slot: int, adj_slot: int) -> list[int]:
            if e.name is not None:
                return [self._anchor_token[self._c_name[e.name]]]
            core = [word(self._c_noun[e.noun], noun_slot)]
            if e.adjective is not None:
                adj = word(self._c_adj[e.adjective], adj_slot)
                core = core + [adj] if spec.adjective_after_noun else [adj] + core
            if e.count:
                digit = self._anchor_token[self._c_digit[e.count]]
                core = core + [digit] if spec.count_after_noun else [digit] + core
            return with_det(core)

        def adposition(marker: str, phrase: list[int]) -> list[int]:
            return [func[marker]] + phrase if spec.adposition == "pre" else phrase + [func[marker]]

        agent = noun_phrase(m.agent, _AGENT_NOUN, _AGENT_ADJ)
        patient = noun_phrase(m.patient, _PATIENT_NOUN, _PATIENT_ADJ)
        verb_group = [word(self._c_verb[m.verb], _VERB)]
        if form.passive:
            subject, obj = patient, adposition("by", agent)
            verb_group = ([func["pass"]] + verb_group if spec.passive_marker == "pre"
                          else verb_group + [func["pass"]])
        else:
            subject, obj = agent, patient
        if m.negated and spec.negation == "pre_verb":
            verb_group = [func["neg"]] + verb_group
        elif m.negated and spec.negation == "post_verb":
            verb_group = verb_group + [func["neg"]]
        place = (adposition("in", with_det([word(self._c_place[m.place], _PLACE)]))
                 if m.place is not None else [])
        if place and not form.place_front and spec.place == "pre_verb":
            verb_group, place = place + verb_group, []
        clause = {"SVO": subject + verb_group + obj, "SOV": subject + obj + verb_group,
                  "VSO": verb_group + subject + obj}[spec.order]
        if m.negated and spec.negation == "initial":
            clause = [func["neg"]] + clause
        if place and form.place_front:
            clause = place + [self._anchor_token[self._c_comma]] + clause
        elif place:
            clause = clause + place
        return clause + [self._anchor_token[self._c_period]]

    # ------------------------------------------------------------------------------- sampling
    def _rng(self, *key: str | int, seed: int | None = None) -> np.random.Generator:
        words = [self.config.seed if seed is None else int(seed)]
        words += [_crc(k) if isinstance(k, str) else int(k) for k in key]
        return np.random.default_rng(np.random.SeedSequence(words))

    def _sample_entity(self, rng, verb: int, role: str) -> Entity:
        c = self.config
        classes = ANIMATE_CLASSES if role == "agent" else self.verb_patient_classes[verb]
        if PERSON in classes and rng.random() < c.p_name:
            return Entity(name=_draw(rng, self._name_pref[verb]))
        if rng.random() < c.p_hypernym:
            noun = self.hypernym_of[_pick(rng, classes)]
        else:
            members, pref = self._noun_pref[(verb, role)]
            noun = members[_draw(rng, pref)]
        adjective = (_draw(rng, self._adjective_pref[noun])
                     if rng.random() < c.p_adjective else None)
        count = int(_pick(rng, DIGITS)) if role == "patient" and rng.random() < c.p_count else None
        return Entity(noun=noun, adjective=adjective, count=count)

    def sample_meaning(self, rng: np.random.Generator) -> Meaning:
        """One latent sentence from the world's distribution (with its collocations)."""
        c = self.config
        while True:
            verb = int(rng.integers(len(self.verb_names)))
            agent = self._sample_entity(rng, verb, "agent")
            patient = self._sample_entity(rng, verb, "patient")
            if _referent(agent) != _referent(patient):
                break
        negated = bool(rng.random() < c.p_negation)
        place = (_draw(rng, self._place_pref[verb])
                 if rng.random() < c.p_place else None)
        return Meaning(agent, verb, patient, negated, place)

    def sample_form(self, rng: np.random.Generator, m: Meaning) -> Form:
        """Surface choices for a meaning, normalised so that different forms render differently."""
        c = self.config
        form = Form(passive=bool(rng.random() < c.p_passive),
                    place_front=bool(rng.random() < c.p_place_front),
                    synonyms=tuple(int(s) for s in rng.integers(c.n_synonyms, size=_N_SLOTS)))
        return normalize_form(m, form)

    def perturb_form(self, rng: np.random.Generator, form: Form, m: Meaning) -> Form:
        """A second sentence's form: the first one's with at least one change that shows in m.

        Each choice changes independently (voice, place fronting, each synonym), then again until
        the surface differs; the same for every label, so "how much the wording changed" says
        nothing about the label.
        """
        c = self.config
        base = normalize_form(m, form)
        while True:
            synonyms = tuple(int(rng.integers(c.n_synonyms)) if rng.random() < c.p_reword else s
                             for s in form.synonyms)
            new = normalize_form(m, Form(
                passive=form.passive ^ bool(rng.random() < c.p_reword),
                place_front=form.place_front ^ bool(rng.random() < c.p_reword),
                synonyms=synonyms))
            if new != base:
                return new

    # ------------------------------------------------------------------------------ semantics
    def _ref_entails(self, e: Entity, f: Entity) -> bool:
        """Whatever e refers to is also described by f's name/noun (attributes ignored)."""
        if e.name is not None:
            return f.name == e.name if f.name is not None else f.noun == self.hypernym_of[PERSON]
        if f.name is not None:
            return False
        return f.noun == e.noun or f.noun == self.hypernym_of[self.noun_class[e.noun]]

    def _entity_entails(self, e: Entity, f: Entity) -> bool:
        return (self._ref_entails(e, f) and (f.adjective is None or f.adjective == e.adjective)
                and (f.count is None or f.count == e.count))

    def _entity_clash(self, e: Entity, f: Entity) -> bool:
        """Same referent, incompatible attributes (antonyms, different counts)."""
        if not (self._ref_entails(e, f) or self._ref_entails(f, e)):
            return False
        antonyms = (e.adjective is not None and f.adjective is not None
                    and f.adjective == antonym(e.adjective))
        return antonyms or bool(e.count and f.count and e.count != f.count)

    def event_entails(self, x: Meaning, y: Meaning) -> bool:
        """The (unnegated) event x implies the event y."""
        return (x.verb == y.verb and self._entity_entails(x.agent, y.agent)
                and self._entity_entails(x.patient, y.patient)
                and (y.place is None or y.place == x.place))

    def _event_clash(self, x: Meaning, y: Meaning) -> bool:
        if x.verb != y.verb:
            return False
        corefer = all(self._ref_entails(e, f) or self._ref_entails(f, e)
                      for e, f in ((x.agent, y.agent), (x.patient, y.patient)))
        places = x.place is not None and y.place is not None and x.place != y.place
        return corefer and (self._entity_clash(x.agent, y.agent)
                            or self._entity_clash(x.patient, y.patient) or places)

    def nli_label(self, premise: Meaning, hypothesis: Meaning) -> int:
        """0 entailment, 1 neutral, 2 contradiction (SNLI-style: both describe one situation)."""
        p, h = premise, hypothesis
        if not p.negated and not h.negated:
            if self.event_entails(p, h):
                return 0
            return 2 if self._event_clash(p, h) else 1
        if not p.negated:  # p says X, h says not Y: contradiction iff X implies Y
            return 2 if self.event_entails(p, h) else 1
        if not h.negated:  # p says not X, h says Y: contradiction iff Y implies X
            return 2 if self.event_entails(h, p) else 1
        return 0 if self.event_entails(h, p) else 1  # not X entails not Y iff Y implies X

    @staticmethod
    def paraphrase_label(a: Meaning, b: Meaning) -> int:
        """1 iff the two sentences mean exactly the same."""
        return int(a == b)

    # ------------------------------------------------------------------------------ edit ops
    _ENTITY_OPS = ("drop_adjective", "hypernym", "add_adjective", "hyponym", "antonym",
                   "change_noun")

    def _op(self, name: str, rng, m: Meaning) -> Meaning | None:
        """One semantic edit of m, or None where it does not apply. Edits of an entity try the
        agent and the patient in random order. No edit brings in something the world's sentences
        never have (a place when p_place is 0...): that would make the edited side stand out."""
        c = self.config
        absent = {"add_place": c.p_place, "add_count": c.p_count, "add_adjective": c.p_adjective,
                  "hypernym": c.p_hypernym, "hyponym": c.p_hypernym}
        if absent.get(name, 1.0) == 0.0:
            return None
        if name in self._ENTITY_OPS:
            for role in (("agent", "patient") if rng.random() < 0.5 else ("patient", "agent")):
                new = self._entity_op(name, rng, getattr(m, role))
                if new is not None:
                    out = m._replace(**{role: new})
                    if _referent(out.agent) != _referent(out.patient):
                        return out
            return None
        ag, pa = m.agent, m.patient
        if name == "drop_count":
            return m._replace(patient=pa._replace(count=None)) if pa.count else None
        if name == "drop_place":
            return m._replace(place=None) if m.place is not None else None
        if name == "add_count":
            if pa.name is not None or pa.count:
                return None
            return m._replace(patient=pa._replace(count=int(_pick(rng, DIGITS))))
        if name == "add_place":
            return m._replace(place=int(rng.integers(c.n_places))) if m.place is None else None
        if name == "negate":
            return m._replace(negated=not m.negated)
        if name == "recount":
            if not pa.count:
                return None
            count = _pick(rng, [d for d in DIGITS if d != pa.count])
            return m._replace(patient=pa._replace(count=int(count)))
        if name == "move_place":
            if m.place is None:
                return None
            return m._replace(place=int(_pick(rng, [p for p in range(c.n_places) if p != m.place])))
        if name == "swap_roles":
            if pa.count or self.verb_patient_classes[m.verb] != ANIMATE_CLASSES:
                return None
            return m._replace(agent=pa, patient=ag)
        if name == "swap_adjectives":
            if ag.name is not None or pa.name is not None or ag.adjective == pa.adjective:
                return None
            return m._replace(agent=ag._replace(adjective=pa.adjective),
                              patient=pa._replace(adjective=ag.adjective))
        if name == "change_verb":
            classes = self._entity_classes(pa)
            options = [v for v in range(len(self.verb_names)) if v != m.verb
                       and all(k in self.verb_patient_classes[v] for k in classes)]
            return m._replace(verb=int(_pick(rng, options))) if options else None
        raise ValueError(f"unknown op {name}")

    def _entity_op(self, name: str, rng, e: Entity) -> Entity | None:
        if name == "drop_adjective":
            return e._replace(adjective=None) if e.adjective is not None else None
        if name == "antonym":
            return e._replace(adjective=antonym(e.adjective)) if e.adjective is not None else None
        if name == "add_adjective":
            if e.name is not None or e.adjective is not None:
                return None
            return e._replace(adjective=int(rng.integers(len(self.adjective_names))))
        if name == "hypernym":  # a name is a person
            if e.name is not None:
                return Entity(noun=self.hypernym_of[PERSON], count=e.count)
            if self.noun_is_hypernym[e.noun]:
                return None
            return e._replace(noun=self.hypernym_of[self.noun_class[e.noun]])
        if name == "hyponym":
            if e.name is not None or not self.noun_is_hypernym[e.noun]:
                return None
            return e._replace(noun=int(_pick(rng, self.class_nouns[self.noun_class[e.noun]])))
        if name == "change_noun":
            if e.name is not None:
                others = [n for n in range(self.config.n_names) if n != e.name]
                return e._replace(name=int(_pick(rng, others)))
            if self.noun_is_hypernym[e.noun]:
                return None
            members = [n for n in self.class_nouns[self.noun_class[e.noun]] if n != e.noun]
            return e._replace(noun=int(_pick(rng, members)))
        raise ValueError(f"unknown op {name}")

    def _entity_classes(self, e: Entity) -> tuple[int, ...]:
        return (PERSON,) if e.name is not None else (self.noun_class[e.noun],)

    # --------------------------------------------------------------------------------- tasks
    _GENERALISE = ("drop_adjective", "drop_count", "drop_place", "hypernym")
    _SPECIALISE = ("add_adjective", "add_count", "add_place", "hyponym")
    _CONTRADICT = ("negate", "antonym", "recount", "move_place")
    _CONTRADICT_WEIGHTS = (0.1, 0.3, 0.3, 0.3)  # negation always applies: keep it from dominating
    _OTHER = ("swap_roles", "swap_adjectives", "change_verb", "change_noun")
    _OTHER_WEIGHTS = (0.3, 0.1, 0.3, 0.3)
    _SWAPS = ("swap_roles", "swap_adjectives")
    _SWAP_WEIGHTS = (0.7, 0.3)
    _LEXICAL = ("antonym", "recount", "move_place", "negate", "change_verb", "change_noun",
                "drop_adjective", "drop_count", "drop_place", "hypernym", "add_adjective",
                "add_count", "add_place", "hyponym")

    def _apply_one(self, rng, m: Meaning, ops: Sequence[str],
                   weights: Sequence[float] | None = None) -> Meaning | None:
        """m edited by one op of ``ops`` that applies to m, drawn by ``weights`` (default uniform)."""
        if weights is None:
            order = rng.permutation(len(ops))
        else:  # weighted order without replacement (Efraimidis-Spirakis keys)
            order = np.argsort(-rng.random(len(ops)) ** (1.0 / np.asarray(weights, float)))
        for i in order:
            out = self._op(ops[i], rng, m)
            if out is not None and out != m:
                return out
        return None

    def _nli_proposal(self, rng, target: int) -> tuple[Meaning, Meaning] | None:
        """A premise and a hypothesis likely (not certain: the label is recomputed from the two
        meanings, and kept only if it is ``target``) to have the label ``target``."""
        p = self.sample_meaning(rng)
        monotone = self._SPECIALISE if p.negated else self._GENERALISE  # keeps entailment
        anti = self._GENERALISE if p.negated else self._SPECIALISE
        weights = None
        extra = [monotone] * int(rng.integers(self.config.intermediate_extra_edits + 1))
        if target == 0:
            steps = [monotone] * int(rng.integers(2)) + extra  # no edit: a pure rewording
        elif target == 2:
            steps = [self._CONTRADICT] + extra
            weights = self._CONTRADICT_WEIGHTS
        else:
            steps = [anti if rng.random() < 0.25 else self._OTHER] + extra
            weights = None if steps[0] is anti else self._OTHER_WEIGHTS
        h = p
        for i, ops in enumerate(steps):
            edited = self._apply_one(rng, h, ops, weights if i == 0 else None)
            if edited is None and i == 0 and target != 0:
                return None
            h = edited or h
        return p, h

    def _paraphrase_proposal(self, rng, target: int) -> tuple[Meaning, Meaning] | None:
        """A minimal pair: the same meaning twice, or one edit (a swap or a lexical change).

        The edit is drawn first, whatever the label, and the sentence is kept only if the edit
        applies to it: so sentence A has the same distribution under both labels (a sentence
        that admits a role swap is no more likely to be in a negative pair).
        """
        swap = rng.random() < self.config.target_swap_fraction
        for _ in range(100):  # redraw the sentence, not the kind of edit: keeps the swap share
            a = self.sample_meaning(rng)
            b = (self._apply_one(rng, a, self._SWAPS, self._SWAP_WEIGHTS) if swap
                 else self._apply_one(rng, a, self._LEXICAL))
            if b is not None:
                return (a, a) if target == 1 else (a, b)
        return None

    def _latent_pairs(self, task: str, split: str):
        """(meanings, forms, labels) of a split; cached; disjoint from earlier splits' sentences."""
        key = ("pairs", task, split)
        if key in self._cache:
            return self._cache[key]
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        c = self.config
        size = getattr(c, f"{task}_{split}_size")
        n_labels = len(self.label_names[task])
        excluded = set()
        for earlier in SPLITS[:SPLITS.index(split)]:
            for a, b in self._latent_pairs(task, earlier)[0]:
                excluded.update((a, b))
        rng = self._rng(task, split)
        targets = rng.permutation(np.arange(size) % n_labels)
        meanings, forms, seen = [], [], set()
        for target in targets:
            for _ in range(1000):
                propose = self._nli_proposal if task == "intermediate" else self._paraphrase_proposal
                pair = propose(rng, int(target))
                if pair is None:
                    continue
                a, b = pair
                label = self.nli_label(a, b) if task == "intermediate" else self.paraphrase_label(a, b)
                if label != target or a in excluded or b in excluded:
                    continue
                fa = self.sample_form(rng, a)
                fb = self.perturb_form(rng, fa, b)
                if (a, b, fa, fb) in seen:
                    continue
                seen.add((a, b, fa, fb))
                meanings.append((a, b))
                forms.append((fa, fb))
                break
            else:  # pragma: no cover - only with degenerate configs
                raise RuntimeError(f"cannot generate a {task} pair with label {target}")
        result = (meanings, forms, np.asarray(targets, np.int64))
        self._cache[key] = result
        return result

    def _pair_data(self, task: str, split: str, language: str) -> PairData:
        if language not in self.specs:
            raise ValueError(f"unknown language {language!r}; this world has {self.languages}")
        meanings, forms, labels = self._latent_pairs(task, split)
        a = [self.render(m, f, language) for (m, _), (f, _) in zip(meanings, forms)]
        b = [self.render(m, f, language) for (_, m), (_, f) in zip(meanings, forms)]
        return PairData(task, split, language, a, b, labels.copy(), self.label_names[task],
                        list(meanings), list(forms))

    def intermediate_task(self, split: str = "train", language: str | None = None) -> PairData:
        """NLI pairs (entailment/neutral/contradiction). Train in the source language; dev and
        test can be rendered in any language (the same latent pairs), XNLI-style."""
        return self._pair_data("intermediate", split, language or self.config.source_language)

    def target_task(self, split: str = "train", language: str | None = None) -> PairData:
        """Paraphrase pairs (not_paraphrase/paraphrase). The test split in every language holds
        the same latent pairs and labels, so per-language zero-shot accuracies are comparable."""
        return self._pair_data("target", split, language or self.config.source_language)

    # ------------------------------------------------------------------------------- corpora
    def mlm_corpus(self, n_per_language: int | None = None, seed: int | None = None, *,
                   return_languages: bool = False):
        """Unlabelled sequences (token ids, no specials) for masked-LM pretraining, shuffled.

        ``n_per_language`` sequences per language (default ``config.mlm_sentences_per_language``):
        mostly monolingual sentences; a ``code_switch_fraction`` of them code-switched (that
        language's word order and function words, each content word replaced with probability
        ``code_switch_rate`` by its translation in another language); and a
        ``parallel_fraction`` of them a sentence followed by its translation into another
        language (a bilingual snippet: masked-LM on it is XLM's translation-LM). ``seed``
        overrides ``config.seed`` for this corpus only. With ``return_languages``, also returns
        the (first) language of each sequence.
        """
        c = self.config
        n = c.mlm_sentences_per_language if n_per_language is None else int(n_per_language)
        rng = self._rng("mlm", seed=seed)
        multilingual = len(self.languages) > 1
        n_switched = int(round(c.code_switch_fraction * n)) if multilingual else 0
        n_parallel = int(round(c.parallel_fraction * n)) if multilingual else 0
        sequences, languages = [], []
        for lang in self.languages:
            others = [other for other in self.languages if other != lang]
            for i in range(n):
                m = self.sample_meaning(rng)
                form = self.sample_form(rng, m)
                if i < n_switched:
                    ids = self.render(m, form, lang, code_switch=(c.code_switch_rate, rng))
                elif i < n_switched + n_parallel:
                    ids = self.render(m, form, lang) + self.render(m, form, _pick(rng, others))
                else:
                    ids = self.render(m, form, lang)
                sequences.append(ids)
                languages.append(lang)
        order = rng.permutation(len(sequences))
        sequences = [sequences[i] for i in order]
        if return_languages:
            return sequences, [languages[i] for i in order]
        return sequences

    def parallel_sentences(self, language: str, n: int = 1000, split: str = "test",
                           source: str | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """n exact translations (source, language), aligned by index: for retrieval
        (Tatoeba/BUCC-like) or translation-LM data. Same split + n: same latent sentences for
        every language."""
        source = source or self.config.source_language
        rng = self._rng("parallel", split, n)
        pairs = []
        for _ in range(n):
            m = self.sample_meaning(rng)
            pairs.append((m, self.sample_form(rng, m)))
        return ([self.render(m, f, source) for m, f in pairs],
                [self.render(m, f, language) for m, f in pairs])

    def stats(self) -> dict:
        """Sizes worth printing in a demo."""
        return {"vocab_size": self.vocab_size, "languages": self.languages,
                "anchors": len(self.anchor_ids),
                "words_per_language": {k: len(v) for k, v in self.language_blocks.items()},
                "concepts": self.n_concepts}


def antonym(adjective: int) -> int:
    """Adjectives come in pairs (2k, 2k+1)."""
    return adjective ^ 1


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """An index drawn from a distribution given by its CDF."""
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _referent(e: Entity) -> tuple:
    return ("name", e.name) if e.name is not None else ("noun", e.noun)


def normalize_form(m: Meaning, form: Form) -> Form:
    """Zero the choices a meaning does not use, so equal surfaces have equal forms."""
    used = [m.agent.name is None, m.agent.adjective is not None, True,
            m.patient.name is None, m.patient.adjective is not None, m.place is not None]
    return Form(passive=form.passive, place_front=form.place_front and m.place is not None,
                synonyms=tuple(s if u else 0 for s, u in zip(form.synonyms, used)))


def make_world(config: SyntheticConfig | None = None, **overrides) -> SyntheticWorld:
    """The world of a config (default ``SyntheticConfig()``), with fields overridden by keyword."""
    config = config or SyntheticConfig()
    return SyntheticWorld(dataclasses.replace(config, **overrides) if overrides else config)
