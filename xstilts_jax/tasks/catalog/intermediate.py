"""The paper's nine English intermediate tasks (its Table 1; ``all9``), and the other English
tasks that can train a phase (SNLI, ANLI): their releases' files, and TFDS where a builder
exists. Their test sets are unlabelled or unused: none is a zero-shot target.

- ANLI v1.0: each split combines the three rounds, in the order R1, R2, R3 (train 16,946 +
  45,460 + 100,459 = 162,865; dev and test 1,000 + 1,000 + 1,200 = 3,200).
- ANLI+ (X-STILTs' "ANLI+", 1,104,934 training examples in the paper): train = ANLI R1-R3
  train + MNLI train (392,702) + SNLI train (549,367: 550,152 pairs less the 785 whose gold
  label is ``-``), in that order; dev = ANLI R1-R3 dev.
- CCG: CCGbank's standard split, sections 02-21 train, 00 dev, 23 test (formats/ccg.py); its
  supertag set is made from the training data (families/supertagging.py).
"""

from __future__ import annotations

from xstilts_jax.tasks.catalog.common import NLI_LABELS, mnli_files, translated_mnli
from xstilts_jax.tasks.formats.choices import COMMONSENSEQA_LABELS
from xstilts_jax.tasks.spec import Split, TaskSpec, TfdsDataset, at, split

_EN = ("en",)
_INTERMEDIATE = ("intermediate",)
_TRAIN_DEV = {"train": "train", "dev": "validation"}
_MULTI_NLI = (TfdsDataset("multi_nli", None, "train", "pairs"),
              TfdsDataset("glue", "mnli", "train", "pairs"))


def _glue(name: str, folders: tuple[str, ...], format: str) -> tuple[Split, ...]:
    return tuple(split(s, *(at(format, f"{folder}/{s}.tsv", origin="GLUE") for folder in folders),
                       tfds=(TfdsDataset("glue", name, tfds_split, "pairs"),))
                 for s, tfds_split in _TRAIN_DEV.items())


def _snli_files(s: str):
    return tuple(at(format, f"{folder}/snli_1.0_{s}.{ext}", origin="SNLI 1.0 release")
                 for folder in ("snli", "snli_1.0")
                 for ext, format in (("jsonl", "multinli_jsonl"), ("txt", "snli_txt")))


def _anli_parts(s: str):
    return tuple((at("anli_jsonl", f"anli_v1.0/{r}/{s}.jsonl", origin="ANLI v1.0 release"),)
                 for r in ("R1", "R2", "R3"))


def _anli_tfds(s: str):
    return tuple((TfdsDataset("anli", r, s, "pairs"),) for r in ("r1", "r2", "r3"))


_TFDS_SNLI = {"train": "train", "dev": "validation", "test": "test"}

MNLI = TaskSpec(
    name="mnli", family="classification", roles=_INTERMEDIATE, labels=NLI_LABELS, languages=_EN,
    dev_split="dev_matched",
    # Sentence pairs of MultiNLI 1.0 train (GLUE's MNLI train.tsv, TFDS multi_nli / glue/mnli
    # train; the X-STILTs paper's Table 1): every one has a gold label.
    train_examples=392_702,
    splits=(
        split("train", *mnli_files("train"), tfds=_MULTI_NLI),
        *(split(s, *mnli_files(s), tfds=tuple(TfdsDataset(b, c, f"validation_{s[4:]}", "pairs")
                                              for b, c in (("multi_nli", None), ("glue", "mnli"))))
          for s in ("dev_matched", "dev_mismatched")),
        translated_mnli(),
    ),
)

QQP = TaskSpec(name="qqp", family="classification", roles=_INTERMEDIATE, labels=("0", "1"),
               languages=_EN, splits=_glue("qqp", ("qqp", "QQP"), "qqp_tsv"),
               # Question pairs of GLUE's QQP train (the current QQP.zip; TFDS glue/qqp train;
               # the paper's Table 1). Old copies hold a few broken rows, skipped (pairs.py).
               train_examples=363_846,
               description="GLUE's is_duplicate: 0 not duplicate, 1 duplicate.")

SST2 = TaskSpec(name="sst2", family="classification", roles=_INTERMEDIATE, labels=("0", "1"),
                languages=_EN, splits=_glue("sst2", ("sst2", "SST-2"), "sst2_tsv"),
                # Sentences of GLUE's SST-2 train (TFDS glue/sst2 train; the paper's Table 1).
                train_examples=67_349,
                description="Single sentences; GLUE's label: 0 negative, 1 positive.")

SNLI = TaskSpec(
    name="snli", family="classification", roles=("extra",), labels=NLI_LABELS, languages=_EN,
    # Pairs of SNLI 1.0 train with a gold label: 550,152 less the 785 labelled "-", which the
    # readers skip (formats/pairs.py).
    train_examples=549_367,
    splits=tuple(split(s, *_snli_files(s), tfds=(TfdsDataset("snli", None, t, "pairs"),))
                 for s, t in _TFDS_SNLI.items()),
)

ANLI = TaskSpec(
    name="anli", family="classification", roles=("extra",), labels=NLI_LABELS, languages=_EN,
    # ANLI v1.0 train, R1 + R2 + R3: 16,946 + 45,460 + 100,459 (the ANLI release / TFDS anli).
    train_examples=162_865,
    splits=tuple(Split(s, _anli_parts(s), tfds=_anli_tfds(t)) for s, t in _TFDS_SNLI.items()),
)

ANLI_PLUS = TaskSpec(
    name="anli_plus", family="classification", roles=_INTERMEDIATE, labels=NLI_LABELS,
    languages=_EN,
    # ANLI R1-R3 train + MNLI train + SNLI train with gold labels: 162,865 + 392,702 + 549,367,
    # the paper's 1,104,934 (Table 1).
    train_examples=162_865 + 392_702 + 549_367,
    splits=(
        Split("train", _anli_parts("train") + (mnli_files("train"), _snli_files("train")),
              tfds=_anli_tfds("train") + (_MULTI_NLI,
                                          (TfdsDataset("snli", None, "train", "pairs"),))),
        Split("dev", _anli_parts("dev"), tfds=_anli_tfds("validation")),
    ),
)

SQUAD_V2 = TaskSpec(
    name="squad_v2", family="qa", roles=_INTERMEDIATE, labels=(), languages=_EN,
    qa_version="2.0", max_length=384,
    # Questions (answerable and not) of SQuAD 2.0's train-v2.0.json (TFDS squad/v2.0 train; the
    # paper's Table 1): 86,821 answerable + 43,498 unanswerable.
    train_examples=130_319,
    splits=tuple(split(s, at("squad_v2", f"squad/{s}-v2.0.json", origin="SQuAD 2.0 release"),
                       tfds=(TfdsDataset("squad", "v2.0", t, "qa"),))
                 for s, t in _TRAIN_DEV.items()),
)

_CCGBANK_ROOTS = ("ccgbank_1_1/data/AUTO", "ccgbank/data/AUTO", "ccgbank/AUTO")
_CCG_FIRST_SECTION = {"train": 2, "dev": 0, "test": 23}
CCG = TaskSpec(
    name="ccg", family="supertagging", roles=_INTERMEDIATE, labels=(), languages=_EN,
    # Sentences of CCGbank sections 02-21, the standard training split read here (Clark &
    # Curran 2007; Hockenmaier & Steedman 2007). jiant's preprocessed CCG files, which the
    # paper used, are reported a little smaller (about 38K).
    train_examples=39_604,
    splits=tuple(
        split(s, *(at(f"ccgbank_{s}", f"{root}/{_CCG_FIRST_SECTION[s]:02d}/wsj_*.auto",
                      origin="CCGbank release (LDC2005T13) as unpacked")
                   for root in _CCGBANK_ROOTS),
              at("ccg_tsv", f"ccg/{s}.tsv", origin="word<TAB>supertag export"),
              tfds_note="CCGbank is licensed: not in TFDS")
        for s in ("train", "dev", "test")),
)

HELLASWAG = TaskSpec(
    name="hellaswag", family="multiple_choice", roles=_INTERMEDIATE, labels=("0", "1", "2", "3"),
    languages=_EN, num_choices=4,
    # Contexts (four endings each) of hellaswag_train.jsonl (rowanz/hellaswag; TFDS / HF
    # hellaswag train; the paper's Table 1).
    train_examples=39_905,
    splits=tuple(split(s, at("hellaswag", f"hellaswag/hellaswag_{name}.jsonl",
                             origin="HellaSwag release (rowanz/hellaswag)"),
                       tfds=(TfdsDataset("hellaswag", None, _TRAIN_DEV[s], "hellaswag"),))
                 for s, name in (("train", "train"), ("dev", "val"))),
)

COSMOSQA = TaskSpec(
    name="cosmosqa", family="multiple_choice", roles=_INTERMEDIATE, labels=("0", "1", "2", "3"),
    languages=_EN, num_choices=4,
    # Questions of the Cosmos QA release's train file (TFDS / HF cosmos_qa train: 25,262;
    # the paper's Table 1).
    train_examples=25_262,
    splits=tuple(split(s, *(at("cosmosqa", f"cosmosqa/{name}.{ext}", origin="CosmosQA release")
                            for ext in ("csv", "jsonl")),
                       tfds=(TfdsDataset("cosmos_qa", None, _TRAIN_DEV[s], "cosmosqa"),))
                 for s, name in (("train", "train"), ("dev", "valid"))),
)

COMMONSENSEQA = TaskSpec(
    name="commonsenseqa", family="multiple_choice", roles=_INTERMEDIATE,
    labels=COMMONSENSEQA_LABELS, languages=_EN, num_choices=len(COMMONSENSEQA_LABELS),
    # Questions of train_rand_split.jsonl (CommonsenseQA 1.11; HF commonsense_qa train; the
    # paper's Table 1).
    train_examples=9_741,
    description="Its test file is unlabelled: not read.",
    splits=tuple(split(s, at("commonsenseqa", f"commonsenseqa/{s}_rand_split.jsonl",
                             origin="CommonsenseQA release"),
                       tfds_note="TFDS has no CommonsenseQA builder")
                 for s in ("train", "dev")),
)

TASKS = (MNLI, QQP, SST2, SNLI, ANLI, ANLI_PLUS, SQUAD_V2, CCG, HELLASWAG, COSMOSQA,
         COMMONSENSEQA)
