"""Featurization throughput: the task featurizers vs the bare fast-tokenizer call on the same texts.

What it compares
    Examples per second, with the REAL XLM-R fast tokenizer (250,002 pieces; built as
    ``tests/conftest.py``'s ``xlmr_tokenizer`` fixture builds it: the ``tokenizer.json`` of
    ``xstilts_jax.models.offline.tokenizer_json_path()`` plus ``offline._TOKENIZER_CONFIG`` /
    ``_SPECIAL_TOKENS_MAP`` in a temp dir, loaded with ``xstilts_jax.tokenization.load_tokenizer``)
    and real data from ``--data-dir`` (``../shared/data`` beside the repository):

    1. pairs (XNLI-style): ``classification.featurize_pairs(tokenizer, examples, max_length=128)``
       vs the bare call ``tokenizer(text_a, text_b, truncation="longest_first", max_length=128)``.
       Data: Tatoeba sentence pairs (``tasks.read_split("tatoeba", ...)``), each non-English sentence as
       text_a with its English translation as text_b, taken round-robin over ``--tatoeba-langs``
       so that ``--pairs`` keeps every language.
    2. qa: ``qa.featurize_qa(tokenizer, examples)`` (384 / doc_stride 128 / query 64) vs the
       bare call ``tokenizer(questions, contexts)`` (no truncation), and vs HF run_qa's call
       ``tokenizer(questions, contexts, truncation="only_second", max_length=384, stride=128,
       return_overflowing_tokens=True, return_offsets_mapping=True)`` as a second reference.
       Data: every question of ``xquad.<lang>.json`` for ``--xquad-langs`` (default all 12,
       ``formats.squad.read_squad``). Examples = questions (the window counts are printed).
    3. tagging: ``tagging.featurize_tagging(tokenizer, sentences, UPOS_TAGS, 128)`` vs
       ``tokenizer([list(s.words) for s in sentences], is_split_into_words=True)``. Data: every
       sentence of the UD CoNLL-U files in ``udpos/`` (``formats.conllu.read_conllu``).

    Each section also times, for information, the tokenizer call(s) the featurizer makes
    internally, with the same arguments and chunking (``inner`` rows): featurize / inner is
    the featurizer's own overhead (Python/NumPy work around the tokenizer), while featurize /
    bare also includes what the featurizer asks of the tokenizer differently (no attention
    mask; QA: each distinct context tokenized once instead of once per question; tagging:
    no specials).

    Equal work is checked before timing: the pair rows must equal the bare call's input_ids;
    QA windows of questions with one window and an uncut question must equal the bare call's
    ids; tagging windows of one-window sentences must equal the bare ids unless the
    featurizer changed the tokens on purpose (``<unk>`` for a word with no sub-token, a cut
    word), which is counted. A mismatch stops the script.

Goal
    Featurization at >= 0.8x the throughput of the bare tokenizer call (ratio of medians,
    featurize / bare, per section; a verdict line is printed per section).

Method
    Threads. The fast tokenizer's batch call runs on the Rust ``rayon`` pool (``encode_batch``
    is parallel unless ``TOKENIZERS_PARALLELISM`` is false); its size is read from
    ``RAYON_NUM_THREADS`` when the pool is first used. This script sets, before anything
    touches the tokenizer, ``RAYON_NUM_THREADS=--threads`` (default: the CPUs this process
    may run on) and ``TOKENIZERS_PARALLELISM=true`` (``false`` for ``--threads 1``, which runs
    the batch serially in the calling thread), overriding values from the environment (a
    different pre-set value is reported). Both sides of every comparison run in the same
    process, so on the same pool; the number of OS threads of the process after warm-up is
    printed as a check. The featurizers' own Python/NumPy work is single-threaded.

    Timing. One untimed warm-up call of every runner (the equality checks use its output);
    then ``--repeats`` rounds (9; quick 3) of ``--calls`` calls per runner (default per
    section: pairs 3, qa 1, tagging 5, i.e. about a second or more per runner and round),
    alternating runners call by call with the order flipped every round
    (``alternating_rounds`` of ``benchmarks/encoder_forward.py``), so load from elsewhere on
    the machine lands on all runners alike. Reported per runner: median, min and max examples/s over the rounds, the
    ratio of medians featurize / runner, and the median of the per-round (paired) ratios,
    which cancels load common to a round. Python's garbage collector stays on (it is part of
    the cost of building many small lists) and the featurizers' log messages are silenced
    during the timed calls.

Run
    HF_HUB_OFFLINE=1 python benchmarks/featurize.py                  # full: ~10k pairs, 12 XQuAD files, all UD
    HF_HUB_OFFLINE=1 python benchmarks/featurize.py --quick          # smoke: small sizes, 3 rounds
    HF_HUB_OFFLINE=1 python benchmarks/featurize.py --sections pairs --pair-max-length 16  # truncation-heavy
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_forward import _cpu_count, alternating_rounds, print_table  # noqa: E402  (shared timer)

DEFAULT_DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
TATOEBA_LANGS = ("ar", "de", "el", "es", "fi", "fr", "hi", "ja", "ko", "ru", "tr", "zh")
SECTIONS = ("pairs", "qa", "tagging")
QUICK = dict(pairs=2000, xquad_langs="en,de,zh", max_sentences=1000, repeats=3)
FULL = dict(pairs=10000, xquad_langs="all", max_sentences=0, repeats=9)
# Calls per runner per round (--calls overrides): a round of the short sections holds several
# calls so that one burst of load from elsewhere weighs less (full mode: ~0.5 s a pairs call,
# ~0.3 s a tagging call, 2-8 s a QA call on 2 busy cores).
CALLS = {"pairs": 3, "qa": 1, "tagging": 5}
GOAL = 0.8


def pin_threads(threads: int) -> list[str]:
    """Set the tokenizers' thread settings before the rayon pool exists; lines to print."""
    wanted = {"RAYON_NUM_THREADS": str(threads),
              "TOKENIZERS_PARALLELISM": "true" if threads > 1 else "false"}
    notes = []
    for name, value in wanted.items():
        before = os.environ.get(name)
        if before is not None and before != value:
            notes.append(f"{name} was {before!r} in the environment; overridden")
        os.environ[name] = value
    notes.insert(0, " ".join(f"{k}={v}" for k, v in wanted.items()))
    return notes


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def build_tokenizer(directory: pathlib.Path):
    """The real XLM-R fast tokenizer, as tests/conftest.py's xlmr_tokenizer fixture builds it."""
    from xstilts_jax.models import offline
    from xstilts_jax.tokenization import load_tokenizer

    try:
        path = offline.tokenizer_json_path()
    except (ImportError, FileNotFoundError) as e:
        raise SystemExit(f"the real XLM-R tokenizer is not installed: {e}") from None
    (directory / "tokenizer.json").write_bytes(path.read_bytes())
    (directory / "tokenizer_config.json").write_text(json.dumps(offline._TOKENIZER_CONFIG))
    (directory / "special_tokens_map.json").write_text(json.dumps(offline._SPECIAL_TOKENS_MAP))
    return load_tokenizer(directory), path


def check_data(data_dir: pathlib.Path, sections) -> None:
    needed = {"pairs": "tatoeba", "qa": "xquad", "tagging": "udpos"}
    if not data_dir.is_dir():
        raise SystemExit(f"{data_dir}: no such directory. This benchmark needs the shared real "
                         f"data (tatoeba/, xquad/, udpos/); pass --data-dir or provide "
                         f"../shared/data beside the repository.")
    missing = [str(data_dir / needed[s]) for s in sections if not (data_dir / needed[s]).is_dir()]
    if missing:
        raise SystemExit(f"missing data folder(s): {', '.join(missing)}")


def default_chunk(fn) -> int:
    return inspect.signature(fn).parameters["chunk_size"].default


# --------------------------------------------------------------------------- sections
# Each returns (title, n_examples, runners {name: fn}, labels {name: text}, check(outputs)).


def pairs_section(tokenizer, data_dir, args):
    from xstilts_jax.tasks import read_split
    from xstilts_jax.tasks.examples import PairExample
    from xstilts_jax.tasks.families import classification

    langs = args.tatoeba_langs.split(",")
    per_lang = []
    for lang in langs:
        pairs = read_split("tatoeba", "test", lang, data_dir=data_dir)
        per_lang.append([(lang, i, p.source, p.english) for i, p in enumerate(pairs, 1)])
    # Round-robin over the languages so a smaller --pairs keeps all of them.
    merged = [row for group in zip_longest_all(per_lang) for row in group]
    if len(merged) < args.pairs:
        print(f"  note: only {len(merged)} pairs available in {','.join(langs)} "
              f"(asked {args.pairs})")
    merged = merged[:args.pairs]
    examples = [PairExample(f"tatoeba.{lang}:{i}", s, e, 0, lang)
                for lang, i, s, e in merged]
    text_a = [e.text_a for e in examples]
    text_b = [e.text_b for e in examples]
    max_length = args.pair_max_length
    chunk = default_chunk(classification.featurize_pairs)
    with_types = "token_type_ids" in tokenizer.model_input_names

    def featurize():
        return classification.featurize_pairs(tokenizer, examples, max_length=max_length)

    def bare():
        return tokenizer(text_a, text_b, truncation="longest_first", max_length=max_length)

    def inner():  # the call featurize_pairs makes, same arguments and chunking
        return [tokenizer(text_a[s:s + chunk], text_b[s:s + chunk], truncation="longest_first",
                          max_length=max_length, add_special_tokens=True,
                          return_attention_mask=False, return_token_type_ids=with_types)
                for s in range(0, len(examples), chunk)]

    def check(out):
        f, b = out["featurize"], out["bare"]
        if f.input_ids != b["input_ids"]:
            bad = sum(x != y for x, y in zip(f.input_ids, b["input_ids"]))
            raise SystemExit(f"pairs: {bad} rows of featurize_pairs differ from the bare call")
        tokens = sum(map(len, f.input_ids))
        return (f"pairs: {len(examples)} from {len(langs)} languages "
                f"({', '.join(langs)}); mean {tokens / len(examples):.1f} tokens/row with "
                f"specials; {f.num_truncated} truncated to {max_length} (featurize re-tokenizes "
                f"rows that fill max_length to count them); rows identical to the bare call: "
                f"{len(examples)}/{len(examples)}")

    labels = {"featurize": f"featurize_pairs (max_length {max_length})",
              "bare": "bare tokenizer(a, b, longest_first)",
              "inner": "inner: featurize's own call (no mask)"}
    return ("pairs (Tatoeba, XNLI-style)", len(examples),
            {"featurize": featurize, "bare": bare, "inner": inner}, labels, check)


def zip_longest_all(groups):
    longest = max(map(len, groups))
    for i in range(longest):
        yield [g[i] for g in groups if i < len(g)]


def qa_section(tokenizer, data_dir, args):
    import numpy as np

    from xstilts_jax.tasks.families import qa
    from xstilts_jax.tasks.formats.squad import read_squad

    if args.xquad_langs == "all":
        paths = sorted((data_dir / "xquad").glob("xquad.*.json"))
    else:
        paths = [data_dir / "xquad" / f"xquad.{lang}.json" for lang in args.xquad_langs.split(",")]
    if not paths:
        raise SystemExit(f"{data_dir / 'xquad'}: no xquad.<lang>.json files")
    examples = []
    for path in paths:
        examples += list(read_squad(path, path.name.split(".")[1]))
    questions = [e.question for e in examples]
    contexts = [e.context for e in examples]
    chunk = default_chunk(qa.featurize_qa)
    call = dict(add_special_tokens=False, return_attention_mask=False,
                return_token_type_ids=False, verbose=False)

    def featurize():
        return qa.featurize_qa(tokenizer, examples)

    def bare():
        return tokenizer(questions, contexts)

    def hf_run_qa():
        return tokenizer(questions, contexts, truncation="only_second", max_length=384,
                         stride=128, return_overflowing_tokens=True, return_offsets_mapping=True)

    def inner():  # featurize_qa's two calls per chunk: questions, then the distinct contexts
        out = []
        for s in range(0, len(examples), chunk):
            out.append(tokenizer(questions[s:s + chunk], **call))
            distinct = list(dict.fromkeys(contexts[s:s + chunk]))
            out.append(tokenizer(distinct, return_offsets_mapping=True, **call))
        return out

    def check(out):
        f, b, h = out["featurize"], out["bare"], out["hf_run_qa"]
        windows = np.bincount(f.example_index, minlength=len(examples))
        q_len = [len(q) for q in tokenizer(questions, **call)["input_ids"]]
        single = [i for i in range(len(examples)) if windows[i] == 1 and q_len[i] <= 64]
        row_of = {int(e): w for w, e in reversed(list(enumerate(f.example_index.tolist())))}
        bad = [i for i in single if f.input_ids[row_of[i]] != b["input_ids"][i]]
        if bad:
            raise SystemExit(f"qa: {len(bad)} one-window questions differ from the bare call "
                             f"(first: {examples[bad[0]].id})")
        n_long = sum(len(r) > 384 for r in b["input_ids"])
        return (f"qa: {len(examples)} questions, {len(set(contexts))} distinct contexts in "
                f"{len(paths)} files ({', '.join(p.name.split('.')[1] for p in paths)}); "
                f"featurize_qa -> {len(f)} windows, HF run_qa call -> {len(h['input_ids'])} "
                f"windows (its stride is the overlap, XTREME's is the step); bare: "
                f"{n_long} pairs longer than 384; one-window questions identical to the bare "
                f"call: {len(single) - len(bad)}/{len(single)}")

    labels = {"featurize": "featurize_qa (384/128/64)",
              "bare": "bare tokenizer(q, c), no truncation",
              "hf_run_qa": "HF run_qa call (overflow, offsets)",
              "inner": "inner: featurize's own calls"}
    return ("qa (XQuAD)", len(examples),
            {"featurize": featurize, "bare": bare, "hf_run_qa": hf_run_qa, "inner": inner},
            labels, check)


def tagging_section(tokenizer, data_dir, args):
    import numpy as np

    from xstilts_jax.tasks.families import tagging
    from xstilts_jax.tasks.formats.conllu import UPOS_TAGS, read_conllu

    paths = sorted((data_dir / "udpos").glob("*.conllu"))
    if not paths:
        raise SystemExit(f"{data_dir / 'udpos'}: no .conllu files")
    sentences = []
    for path in paths:
        sentences += list(read_conllu(path, path.name.split("_")[0]))
    if args.max_sentences:
        sentences = sentences[:args.max_sentences]
    words = [list(s.words) for s in sentences]
    chunk = default_chunk(tagging.featurize_tagging)

    def featurize():
        return tagging.featurize_tagging(tokenizer, sentences, UPOS_TAGS, 128)

    def bare():
        return tokenizer(words, is_split_into_words=True)

    def inner():  # the call featurize_tagging makes per chunk (it reads .encodings after it)
        return [tokenizer(words[s:s + chunk], is_split_into_words=True, add_special_tokens=False,
                          return_attention_mask=False, return_token_type_ids=False).encodings
                for s in range(0, len(words), chunk)]

    def check(out):
        f, b = out["featurize"], out["bare"]
        windows = np.bincount(f.window_sentence, minlength=len(sentences))
        row_of = {int(s): w for w, s in reversed(list(enumerate(f.window_sentence.tolist())))}
        single = [i for i in range(len(sentences)) if windows[i] == 1]
        differ = [i for i in single if f.input_ids[row_of[i]] != b["input_ids"][i]]
        # Expected differences: words with no sub-token (featurize gives them <unk>) and cut words.
        unexplained = [i for i in differ if len(f.input_ids[row_of[i]]) == len(b["input_ids"][i])]
        if unexplained:
            raise SystemExit(f"tagging: {len(unexplained)} one-window sentences differ from the "
                             f"bare call at equal length (first: {sentences[unexplained[0]].guid})")
        n_words = sum(map(len, words))
        return (f"tagging: {len(sentences)} sentences, {n_words} words from "
                f"{', '.join(p.name for p in paths)}; {len(f)} windows "
                f"({f.num_sentences_split} sentences split, {f.num_empty_words} empty words "
                f"given <unk>, {f.num_words_cut} words cut); one-window sentences identical "
                f"to the bare call: {len(single) - len(differ)}/{len(single)}"
                + (" (the rest differ only by <unk>/cut tokens)" if differ else ""))

    labels = {"featurize": "featurize_tagging (128)",
              "bare": "bare tokenizer(words, split_into_words)",
              "inner": "inner: featurize's own call (no specials)"}
    return ("tagging (UD CoNLL-U)", len(sentences),
            {"featurize": featurize, "bare": bare, "inner": inner}, labels, check)


BUILDERS = {"pairs": pairs_section, "qa": qa_section, "tagging": tagging_section}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: defaults become {QUICK} (explicit flags still win)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--threads", type=int, default=0,
                   help="tokenizer (rayon) threads for every runner; 0: the CPUs this process "
                        "may run on")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed rounds (default {FULL['repeats']}, quick {QUICK['repeats']})")
    p.add_argument("--calls", type=int, default=None,
                   help=f"calls per runner per round, every section (default {CALLS})")
    p.add_argument("--pairs", type=int, default=None,
                   help=f"Tatoeba pairs (default {FULL['pairs']}, quick {QUICK['pairs']})")
    p.add_argument("--tatoeba-langs", default=",".join(TATOEBA_LANGS),
                   help="XTREME codes of the Tatoeba languages, taken round-robin")
    p.add_argument("--pair-max-length", type=int, default=128)
    p.add_argument("--xquad-langs", default=None,
                   help="comma-separated XQuAD languages or 'all' (default all 12; quick en,de,zh)")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="first N UD sentences, 0 = all (default all; quick 1000)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    sections = [s for s in args.sections.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    if args.repeats < 1 or (args.calls is not None and args.calls < 1):
        p.error("--repeats and --calls must be positive")

    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    check_data(args.data_dir, sections)
    threads = args.threads or _cpu_count()
    for line in pin_threads(threads):  # before transformers/tokenizers are imported or used
        print(line)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.WARNING, format="  log %(levelname)s %(name)s: %(message)s")

    import tokenizers
    import transformers

    with tempfile.TemporaryDirectory(prefix="xlmr-tokenizer-") as tmp:
        t0 = time.perf_counter()
        tokenizer, source = build_tokenizer(pathlib.Path(tmp))
        print(f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} pieces, from {source} "
              f"({time.perf_counter() - t0:.1f}s); transformers {transformers.__version__}, "
              f"tokenizers {tokenizers.__version__}; {_cpu_count()} CPUs available")

    results = []
    for name in sections:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        title, n, runners, labels, check = BUILDERS[name](tokenizer, args.data_dir, args)
        print(f"  read in {time.perf_counter() - t0:.1f}s; warm-up + equality check ...", flush=True)
        outputs = {}
        for key, fn in runners.items():
            t0 = time.perf_counter()
            outputs[key] = fn()
            print(f"  warm-up {key}: {time.perf_counter() - t0:.2f}s", flush=True)
        print("  " + check(outputs))
        del outputs
        print(f"  OS threads in the process after warm-up: {os_threads()}")
        quiet = logging.getLogger("xstilts_jax")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            calls = args.calls or CALLS[name]
            rates = alternating_rounds(runners, repeats=args.repeats, calls=calls,
                                       work_per_call=n, unit="ex/s")
        finally:
            quiet.setLevel(level)
        results.append((name, title, n, labels, rates))

    calls = ", ".join(f"{name} {args.calls or CALLS[name]}" for name in sections)
    print(f"\n{args.repeats} rounds, calls per runner per round: {calls}; alternating; tokenizer "
          f"threads {threads} (RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}, "
          f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}) for every runner")
    rows = []
    for name, title, n, labels, rates in results:
        feat = rates["featurize"]
        feat_med = statistics.median(feat)
        for key, r in rates.items():
            med = statistics.median(r)
            paired = statistics.median(f / x for f, x in zip(feat, r))
            rows.append((f"{name}: {labels[key]}" if key == "featurize" else f"  {labels[key]}",
                         f"{n}", f"{med:.0f}", f"{min(r):.0f}", f"{max(r):.0f}",
                         "-" if key == "featurize" else f"{feat_med / med:.2f}x",
                         "-" if key == "featurize" else f"{paired:.2f}x"))
    print_table(("section / runner", "examples", "median ex/s", "min", "max",
            "featurize/this", "paired median"), rows)
    print()
    for name, title, n, labels, rates in results:
        ratio = statistics.median(rates["featurize"]) / statistics.median(rates["bare"])
        paired = statistics.median(f / b for f, b in zip(rates["featurize"], rates["bare"]))
        print(f"goal {name}: featurize >= {GOAL}x the bare call's throughput (ratio of "
              f"medians): {ratio:.3f}x -> {'MET' if ratio >= GOAL else 'NOT MET'} "
              f"(paired median {paired:.3f}x)")


if __name__ == "__main__":
    main()
