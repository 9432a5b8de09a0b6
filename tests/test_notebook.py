"""The quickstart notebook runs from top to bottom and shows what it promises, without machine paths."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
CELL_TIMEOUT_S = 600


def execute(path: Path) -> nbformat.NotebookNode:
    """Run every cell of a notebook in its own folder and return it with its outputs.

    The "python3" kernel is ipykernel's spec installed in this environment, whose `python` command
    jupyter_client runs as the current interpreter: the notebook sees the same leadscore as the tests."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def text_of(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook's outputs show as text (streams, plain text and Markdown)."""
    parts = []
    for output in outputs(notebook):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.extend(data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html"))
    return "\n".join(parts)


def assert_shows_the_walkthrough(notebook: nbformat.NotebookNode) -> None:
    shown = text_of(notebook)
    assert not [o for o in outputs(notebook) if o.output_type == "error"], "no cell failed"
    assert "is now champion" in shown, "the model was promoted"
    assert "# Model card" in shown and "## Intended use and limits" in shown, "the model card is shown"
    assert "plain logistic" in shown and "baseline_points" in shown, "metrics beside the baselines"
    assert "MQL: p_convert >=" in shown and "SQL: p_convert >=" in shown, "the cutoffs"
    assert "fit_score" in shown and "reason_1" in shown, "dimension scores and reasons of the top leads"
    assert "breakdown in score points" in shown, "one lead explained in full"
    assert "marketing-qualified (MQA)" in shown and "roles_missing" in shown, "the account view"
    assert "buying_role" in shown and "roles engaged" in shown, "the buying group of the best account"
    images = [o for o in outputs(notebook) if "image/png" in o.get("data", {})]
    assert len(images) >= 4, "the run's plots are shown"


def assert_no_machine_paths(notebook: nbformat.NotebookNode) -> None:
    stored = json.dumps([outputs(notebook), notebook.metadata])
    for path in (str(ROOT), str(Path.home()), "/tmp/"):
        assert len(path) < 2 or path not in stored, f"an output shows a machine path ({path})"


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_the_walkthrough():
    notebook = execute(QUICKSTART)
    assert_shows_the_walkthrough(notebook)
    assert_no_machine_paths(notebook)


def test_quickstart_notebook_is_stored_with_its_outputs():
    """The file in the repository reads well on a code host: outputs stored, no machine paths."""
    notebook = nbformat.read(QUICKSTART, as_version=4)
    assert all(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code" and "display(" in cell.source)
    assert_shows_the_walkthrough(notebook)
    assert_no_machine_paths(notebook)
