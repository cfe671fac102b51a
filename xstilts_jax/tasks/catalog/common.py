"""Pieces several specs share: label sets, MultiNLI's and SQuAD's files, MultiNLI's translations."""

from __future__ import annotations

from xstilts_jax.tasks.spec import Location, Split, at, split

XTREME = "XTREME's download"
NLI_LABELS = ("contradiction", "entailment", "neutral")  # XTREME's XnliProcessor.get_labels()
# The XNLI languages with machine translations of MultiNLI train (XNLI-MT 1.0, XTREME's).
XNLI_TRANSLATION_LANGUAGES = ("ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr",
                              "ur", "vi", "zh")


def mnli_files(split_name: str) -> tuple[Location, ...]:
    """MultiNLI's files: GLUE's TSV, else the MultiNLI release's jsonl."""
    return (at("glue_tsv", f"mnli/{split_name}.tsv", origin="GLUE"),
            at("multinli_jsonl", f"mnli/multinli_1.0_{split_name}.jsonl",
               origin="MultiNLI release"))


def squad_files(split_name: str) -> tuple[Location, ...]:
    return (at("squad", f"squad/{split_name}-v1.1.json", origin="SQuAD v1.1 (as XTREME keeps it)"),)


def translated_mnli() -> Split:
    """Machine translations of MultiNLI train: XNLI-MT 1.0 first, then XTREME's translate-train
    (a copy of its bucket, then the folder XTREME's ``XnliProcessor`` reads); in English the
    training data itself."""
    name = "en-{lang}-translated.tsv"
    return split("translate_train",
                 at("xnli_mt_tsv", "XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv",
                    origin="XNLI-MT 1.0"),
                 at("xtreme_translated_tsv", f"xtreme_translations/XNLI/translate-train/{name}",
                    origin="XTREME's translate-train"),
                 at("xtreme_translated_tsv", f"xnli/XNLI-Translated/{name}",
                    origin="XTREME's translate-train, where its XnliProcessor looks"),
                 languages=XNLI_TRANSLATION_LANGUAGES, translates="train")
