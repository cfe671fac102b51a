"""XTREME's tasks: the seven trainable zero-shot targets, the two retrieval tasks, and SQuAD v1.1
(the English training data of XQuAD and MLQA). Order: XTREME's summary order.

Where the files are: XTREME's ``download/`` folder (what ``scripts/download_data.sh`` fills),
into which the original releases can also be unpacked; ``docs/DATA.md`` explains each layout.
For ``test`` the releases come first: XTREME's download removes the test labels
(``utils_preprocess.py``: tagging test files keep the words only, ``remove_qa_test_annotations``
blanks the QA answers, ``tatoeba_preprocess`` sorts the English side, ``download_bucc18``
deletes ``*.test.gold``); such label-less files, when they are what is found, are refused by
their readers with a message saying so.
"""

from __future__ import annotations

from xstilts_jax.tasks.catalog.common import (NLI_LABELS, XTREME, mnli_files, squad_files,
                                              translated_mnli)
from xstilts_jax.tasks.formats.conllu import UPOS_TAGS
from xstilts_jax.tasks.formats.word_tags import PANX_LABELS
from xstilts_jax.tasks.spec import Split, TaskSpec, TfdsDataset, at, split

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                  "vi", "zh")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
PAWSX_LABELS = ("0", "1")
# XTREME's languages per task (ISO 639-1, sorted), from google-research/xtreme's
# scripts/download_data.sh, utils_preprocess.py, scripts/predict_qa.sh and mock_test_data/.
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
TYDIQA_LANGUAGES = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")
# TyDiQA-GoldP names languages in its dev file names (tydiqa-goldp-dev-<name>.json) and in
# the first part of its question ids ("arabic-2387335860751143628-1").
TYDIQA_LANGUAGE_NAMES: dict[str, str] = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}
BUCC_LANGUAGES = ("de", "fr", "ru", "zh")
# UDPOS in XTREME (UD v2.5): 33 languages. (Later XTREME revisions use UD v2.7 and add
# lt pl uk wo ro for XTREME-R; those are not part of XTREME's UDPOS.)
UDPOS_LANGUAGES = ("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he",
                   "hi", "hu", "id", "it", "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te",
                   "th", "tl", "tr", "ur", "vi", "yo", "zh")
# UD's language names, by which TFDS's xtreme_pos picks a language's treebanks.
UD_LANGUAGE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}
# PAN-X in XTREME: 40 languages. (utils_preprocess.PANX_LANGUAGES also lists qu pl uk az lt
# pa gu ro, added for XTREME-R.)
PANX_LANGUAGES = ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr",
                  "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms",
                  "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo",
                  "zh")
# XTREME's 36 Tatoeba languages (ISO 639-1) -> the LASER file names' ISO 639-3 codes.
TATOEBA_LANGUAGES: dict[str, str] = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn",
}

_EN = ("en",)
_MULTI_NLI = (TfdsDataset("multi_nli", None, "train", "pairs"),
              TfdsDataset("glue", "mnli", "train", "pairs"))


def _xtreme_or_release(name: str, xtreme, *release, test: bool = False, **kwargs) -> Split:
    """XTREME's file first, except for test: the releases keep the labels XTREME strips."""
    candidates = (*release, xtreme) if test else (xtreme, *release)
    return split(name, *candidates, **kwargs)


XNLI = TaskSpec(
    name="xnli", family="classification", roles=("target",), labels=NLI_LABELS,
    languages=XNLI_LANGUAGES, xtreme_group="classification", metric="accuracy",
    test_split="test",
    # XNLI's English training data is MultiNLI train: its 392,702 pairs (XTREME's Table 1).
    train_examples=392_702,
    splits=(
        # XTREME trains XNLI on MultiNLI train: its own train-en.tsv, else the MNLI files.
        split("train", at("xtreme_tsv", "xnli/train-en.tsv", origin=XTREME), *mnli_files("train"),
              tfds=_MULTI_NLI),
        split("dev", at("xtreme_tsv", "xnli/dev-{lang}.tsv", origin=XTREME),
              tfds=(TfdsDataset("xnli", None, "validation", "xnli"),)),
        split("test", at("xtreme_tsv", "xnli/test-{lang}.tsv", origin=XTREME),
              tfds=(TfdsDataset("xnli", None, "test", "xnli"),)),
        # XNLI's training data is MultiNLI train: the same translations as MNLI's.
        translated_mnli(),
    ),
)

PAWSX = TaskSpec(
    name="pawsx", family="classification", roles=("target",), labels=PAWSX_LABELS,
    languages=PAWSX_LANGUAGES, xtreme_group="classification", metric="accuracy",
    test_split="test",
    # Pairs of PAWS-X's x-final/en/train.tsv = PAWS-Wiki labeled final train (TFDS
    # paws_x_wiki/en train; XTREME's Table 1). (HF's google/xtreme PAWS-X.en lists 49,175: a
    # different parse of the same file, not what XTREME or these readers see.)
    train_examples=49_401,
    splits=(
        split("train", at("pawsx_xtreme_tsv", "pawsx/train-en.tsv", origin=XTREME),
              at("pawsx_tsv", "x-final/en/train.tsv", origin="PAWS-X release"),
              tfds=(TfdsDataset("paws_x_wiki", "{lang}", "train", "pairs"),)),
        split("dev", at("pawsx_xtreme_tsv", "pawsx/dev-{lang}.tsv", origin=XTREME),
              at("pawsx_tsv", "x-final/{lang}/dev_2k.tsv", origin="PAWS-X release"),
              tfds=(TfdsDataset("paws_x_wiki", "{lang}", "validation", "pairs"),)),
        # The release first: XTREME's download strips the test labels.
        split("test", at("pawsx_tsv", "x-final/{lang}/test_2k.tsv", origin="PAWS-X release"),
              at("pawsx_xtreme_tsv", "pawsx/test-{lang}.tsv", origin=XTREME),
              tfds=(TfdsDataset("paws_x_wiki", "{lang}", "test", "pairs"),)),
        # Machine translations of the English training set (the release has none for en: in
        # en the split is "train" itself); not part of XTREME's zero-shot setting.
        split("translate_train", at("pawsx_tsv", "x-final/{lang}/translated_train.tsv",
                                    origin="PAWS-X release"),
              languages=tuple(lang for lang in PAWSX_LANGUAGES if lang != "en"),
              translates="train"),
    ),
)

UDPOS = TaskSpec(
    name="udpos", family="tagging", roles=("target",), labels=UPOS_TAGS,
    languages=UDPOS_LANGUAGES, xtreme_group="tagging", metric="tagging_f1", test_split="test",
    placeholders={"ud_name": UD_LANGUAGE_NAMES},
    # Sentences of XTREME's udpos/train-en.tsv: the train files of all UD v2.5 English
    # treebanks together (EWT, GUM, LinES, ParTUT; what the release glob below reads too).
    # XTREME's Table 1; HF google/xtreme udpos.English train.
    train_examples=21_253,
    splits=tuple(
        _xtreme_or_release(
            s, at("udpos_tsv", f"udpos/{s}-{{lang}}.tsv", origin=XTREME),
            at("conllu", f"ud-treebanks-v2.5/UD_*/{{lang}}_*-ud-{s}.conllu",
               origin="UD v2.5 release"),
            test=s == "test", tfds=(TfdsDataset("xtreme_pos", "{ud_name}", s, "xtreme_pos"),))
        for s in ("train", "dev", "test")),
)

PANX = TaskSpec(
    name="panx", family="tagging", roles=("target",), labels=PANX_LABELS,
    languages=PANX_LANGUAGES, xtreme_group="tagging", metric="tagging_f1", test_split="test",
    # Sentences of PAN-X (WikiANN, Rahimi et al.'s balanced split) English train: 20,000
    # (XTREME's Table 1; TFDS / HF wikiann/en train).
    train_examples=20_000,
    splits=tuple(
        _xtreme_or_release(
            s, at("panx_tsv", f"panx/{s}-{{lang}}.tsv", origin=XTREME),
            at("panx_raw", f"panx_dataset/{{lang}}/{s}",
               origin="PAN-X release ({lang}.tar.gz unpacked)"),
            at("panx_raw", f"panx_dataset/{{lang}}-{s}",
               origin="PAN-X release as download_data.sh renames it"),
            test=s == "test",
            tfds=(TfdsDataset("wikiann", "{lang}", "validation" if s == "dev" else s,
                              "wikiann"),))
        for s in ("train", "dev", "test")),
)

SQUAD = TaskSpec(
    name="squad", family="qa", roles=("extra",), labels=(), languages=_EN, max_length=384,
    # Questions of SQuAD v1.1's train-v1.1.json (TFDS squad/v1.1 train; XTREME's Table 1).
    train_examples=87_599,
    splits=(
        split("train", *squad_files("train"), tfds=(TfdsDataset("squad", "v1.1", "train", "qa"),)),
        split("dev", *squad_files("dev"),
              tfds=(TfdsDataset("squad", "v1.1", "validation", "qa"),)),
        # XTREME's machine translations of SQuAD v1.1 train (en: train itself); docs/DATA.md.
        split("translate_train",
              at("squad_translated", "squad/translate-train/squad.translate.train.en-{lang}.json",
                 origin="XTREME's translate-train SQuAD, beside SQuAD"),
              at("squad_translated",
                 "xtreme_translations/SQuAD/translate-train/squad.translate.train.en-{lang}.json",
                 origin="a copy of gs://xtreme_translations"),
              languages=tuple(lang for lang in XQUAD_LANGUAGES if lang != "en"),
              translates="train"),
    ),
)

# XQuAD and MLQA train on SQuAD: their translations are SQuAD's.
_SQUAD_TRANSLATIONS = Split("translate_train", same_as=("squad", "translate_train"),
                            languages=XQUAD_LANGUAGES)

XQUAD = TaskSpec(
    name="xquad", family="qa", roles=("target",), labels=(), languages=XQUAD_LANGUAGES,
    xtreme_group="qa", metric="squad", test_split="test", max_length=384,
    train_examples=SQUAD.train_examples,  # it trains on SQuAD v1.1 train (87,599 questions)
    description="XQuAD's English test questions are SQuAD v1.1 dev questions: selecting on "
                "SQuAD dev sees them (XTREME trains a fixed number of epochs instead; set "
                "patience/eval_every).",
    splits=(
        Split("train", same_as=("squad", "train")),
        Split("dev", same_as=("squad", "dev"), languages=_EN),
        _SQUAD_TRANSLATIONS,
        split("test", at("squad", "xquad/xquad.{lang}.json", origin="XQuAD release / " + XTREME),
              tfds=(TfdsDataset("xquad", "{lang}", "test", "qa"),)),
    ),
)

MLQA = TaskSpec(
    name="mlqa", family="qa", roles=("target",), labels=(), languages=MLQA_LANGUAGES,
    xtreme_group="qa", metric="mlqa", answer_normalization="mlqa", test_split="test",
    max_length=384,
    train_examples=SQUAD.train_examples,  # it trains on SQuAD v1.1 train (87,599 questions)
    splits=(
        Split("train", same_as=("squad", "train")),
        _SQUAD_TRANSLATIONS,
        *(_xtreme_or_release(
            s, at("squad", f"mlqa/MLQA_V1/{s}/{s}-context-{{lang}}-question-{{lang}}.json",
                  origin=XTREME),
            at("squad", f"MLQA_V1/{s}/{s}-context-{{lang}}-question-{{lang}}.json",
               origin="MLQA release"),
            test=s == "test",
            tfds=(TfdsDataset("mlqa", "{lang}", "validation" if s == "dev" else s, "qa"),))
          for s in ("dev", "test")),
    ),
)

_TYDIQA_DEV = "tydiqa/tydiqa-goldp-v1.1-dev"
_TYDIQA_TRAIN = "tydiqa/tydiqa-goldp-v1.1-train"
_TYDIQA_TEST = (at("squad", _TYDIQA_DEV + "/tydiqa-goldp-dev-{name}.json",
                   origin="TyDiQA-GoldP release"),
                at("squad", _TYDIQA_DEV + "/tydiqa.goldp.{lang}.dev.json", origin=XTREME))
TYDIQA = TaskSpec(
    name="tydiqa", family="qa", roles=("target",), labels=(), languages=TYDIQA_LANGUAGES,
    xtreme_group="qa", metric="squad", test_split="test", max_length=384,
    placeholders={"name": TYDIQA_LANGUAGE_NAMES},
    # English questions of TyDiQA-GoldP v1.1 train (those whose id starts "english-"; XTREME's
    # tydiqa.goldp.en.train.json; XTREME's Table 1). All nine languages: 49,881.
    train_examples=3_696,
    description="TyDiQA-GoldP has no test split: XTREME tests on its dev files, so the English "
                "dev set that selects checkpoints is also the English test set.",
    splits=(
        # The release file holds all nine languages (a language's questions: the ids that
        # start with its name); XTREME's preprocessing writes per-language files whose ids
        # keep only their last part, so they repeat (renamed <id>#2, ...). Readable in every
        # language (TFDS's tydi_qa/goldp train too); a phase trains on English (tasks.read).
        split("train",
              at("tydiqa_multilingual", _TYDIQA_TRAIN + "/tydiqa-goldp-v1.1-train.json",
                 origin=XTREME + " (the release file, moved)"),
              at("squad_short_ids", _TYDIQA_TRAIN + "/tydiqa.goldp.{lang}.train.json",
                 origin=XTREME),
              at("squad_short_ids", _TYDIQA_TRAIN + "/tydiqa.{lang}.train.json",
                 origin=XTREME + " (the name scripts/train_qa.sh reads)"),
              at("tydiqa_multilingual", "tydiqa/tydiqa-goldp-v1.1-train.json",
                 origin="TyDiQA-GoldP release"),
              languages=TYDIQA_LANGUAGES,
              tfds=(TfdsDataset("tydi_qa", "goldp", "train", "tydiqa_train"),)),
        # The English test file, what XTREME's train_qa.sh evaluates on.
        split("dev", *_TYDIQA_TEST, languages=_EN,
              tfds=(TfdsDataset("tydi_qa", "goldp", "validation-{lang}", "qa"),)),
        split("test", *_TYDIQA_TEST,
              tfds=(TfdsDataset("tydi_qa", "goldp", "validation-{lang}", "qa"),)),
    ),
)

_BUCC_RELEASE = {"dev": "sample", "test": "training"}  # XTREME renames the release's splits


def _bucc(s: str) -> Split:
    pair = "bucc2018/{lang}-en"
    xtreme = at("bucc", *(f"{pair}.{s}.{ext}" for ext in ("{lang}", "en", "gold")), origin=XTREME,
                note="download_data.sh deletes XTREME's test gold" if s == "test" else "")
    release = at("bucc", *(f"{pair}/{{lang}}-en.{_BUCC_RELEASE[s]}.{ext}"
                           for ext in ("{lang}", "en", "gold")), origin="BUCC 2018 release")
    tfds = (TfdsDataset("bucc", "bucc_{lang}", "validation" if s == "dev" else s, "bucc"),)
    return _xtreme_or_release(s, xtreme, release, test=s == "test", tfds=tfds)


BUCC2018 = TaskSpec(
    name="bucc2018", family="retrieval", roles=("retrieval",), labels=(),
    languages=BUCC_LANGUAGES, xtreme_group="retrieval", metric="bucc_f1",
    train_split=None, dev_split=None, test_split="test",
    description="Both splits are evaluation data: the margin threshold is chosen on dev.",
    splits=(_bucc("dev"), _bucc("test")),
)

_LASER = ("tatoeba.{code3}-eng.{code3}", "tatoeba.{code3}-eng.eng")
TATOEBA = TaskSpec(
    name="tatoeba", family="retrieval", roles=("retrieval",), labels=(),
    languages=tuple(TATOEBA_LANGUAGES), xtreme_group="retrieval", metric="accuracy",
    train_split=None, dev_split=None, test_split="test",
    placeholders={"code3": TATOEBA_LANGUAGES},
    splits=(
        split("test", at("tatoeba", *(f"tatoeba/{n}" for n in _LASER), origin="LASER's files"),
              at("tatoeba", *(f"LASER/data/tatoeba/v1/{n}" for n in _LASER),
                 origin="LASER checkout"),
              at("tatoeba_xtreme", "tatoeba/{lang}-en.{lang}", "tatoeba/{lang}-en.en",
                 origin=XTREME),
              tfds=(TfdsDataset("tatoeba", "tatoeba_{lang}", "train", "tatoeba"),)),
    ),
)

TASKS = (PAWSX, XNLI, UDPOS, PANX, XQUAD, MLQA, TYDIQA, BUCC2018, TATOEBA, SQUAD)
