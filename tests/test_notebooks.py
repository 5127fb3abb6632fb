"""Every solutions notebook reproduces its committed outputs (nbval).

Each notebook runs in its own ``pytest --nbval`` subprocess with a fresh kernel of
this interpreter, so a failure names the notebook and shows nbval's cell-by-cell
diff. Only truly volatile text (wall-clock timings) is sanitised, by the patterns
in ``nbval_sanitize.cfg`` beside this file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.ipynb"))
CELL_TIMEOUT_S = 300


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(SOLUTIONS)) for p in paths]


def test_solutions_have_notebooks() -> None:
    """The source folder holds notebooks (an empty glob would make nbval vacuous)."""
    assert NOTEBOOKS, f"no notebooks found under {SOLUTIONS}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_with_outputs(notebook: Path) -> None:
    """Every code cell was executed in order: nbval can only compare what was committed."""
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{notebook.name}: execution counts {counts}; run the notebook top to bottom "
        "in a fresh kernel before committing"
    )
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{notebook.name}: committed outputs contain an error: {errors[0].ename}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_matches_committed_outputs(notebook: Path) -> None:
    """nbval re-runs the notebook and compares every cell's outputs with the committed ones."""
    cmd = [
        sys.executable, "-m", "pytest", str(notebook),
        "--nbval", "--nbval-current-env",
        f"--nbval-sanitize-with={SANITIZE}",
        f"--nbval-cell-timeout={CELL_TIMEOUT_S}",
        "-p", "no:cacheprovider", "-q", "--no-header", "--color=no",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"nbval failed for {notebook.relative_to(ROOT)} (exit {proc.returncode}):\n"
        f"{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}"
    )
