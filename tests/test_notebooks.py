"""Every notebook in notebooks/ runs top to bottom without an error (on the default model)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run from scratch, not on the committed outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    # CellExecutionError (with the failing cell and traceback) fails the test.
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count is not None for c in ran)


def test_notebooks_are_committed_with_outputs():
    nbformat = pytest.importorskip("nbformat")
    assert {p.name for p in NOTEBOOKS} >= {
        "01_interpret.ipynb",
        "02_supervised_control.ipynb",
        "03_reinforcement_control.ipynb",
        "04_with_other_analyses.ipynb",
    }
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.execution_count is not None for c in code), f"{path.name} is not executed"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path.name} has errors"
