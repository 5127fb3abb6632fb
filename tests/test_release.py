"""The committed student release ``course/`` is exactly what nbgrader makes of ``solutions/``.

The release is regenerated in a temporary course root with the real
``nbgrader generate_assignment --force`` and the course's own settings (a copy
of ``grader/`` with its ``nbgrader_config.py``), then compared file by file with ``course/``.
Notebooks are compared as parsed JSON; nothing nbgrader writes varies between
runs, so nothing is normalised. The release itself must carry no outputs, no
solution code and no hidden tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
COURSE = ROOT / "course"
ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))
REGENERATE = "cd grader && nbgrader generate_assignment <name> --force"
LEAKS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def _files(folder: Path) -> dict[str, Path]:
    skip = {"__pycache__", ".ipynb_checkpoints"}
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(folder).parts)
    }


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh release made from a copy of solutions/ with the course's nbgrader config."""
    root = tmp_path_factory.mktemp("course_root")
    shutil.copytree(SOLUTIONS, root / "solutions", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    # The course's nbgrader settings: grader/nbgrader_config.py and the grader package it imports.
    shutil.copytree(ROOT / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    # nbgrader runs the `alembic` script of this environment to create its gradebook, which
    # must live in the temporary root, not wherever GRADER_DB_URL points.
    env = {k: v for k, v in os.environ.items() if k != "GRADER_DB_URL"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in ASSIGNMENTS:
        proc = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force"],
            cwd=root / "grader", env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"nbgrader generate_assignment {name} failed:\n{proc.stdout}\n{proc.stderr}"
    return root / "course"


def test_every_assignment_is_released() -> None:
    """course/ holds one folder per assignment in solutions/, and no others."""
    released = sorted(p.name for p in COURSE.iterdir() if p.is_dir())
    assert released == ASSIGNMENTS, f"course/ has {released}, solutions/ has {ASSIGNMENTS}; run `{REGENERATE}`"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_matches_solutions(name: str, regenerated: Path) -> None:
    """Every released file equals what nbgrader generates from solutions/ now."""
    fresh, committed = _files(regenerated / name), _files(COURSE / name)
    assert sorted(fresh) == sorted(committed), (
        f"course/{name} files {sorted(committed)} differ from a fresh release {sorted(fresh)}; run `{REGENERATE}`"
    )
    for rel, path in fresh.items():
        if path.suffix == ".ipynb":
            same = json.loads(path.read_text()) == json.loads(committed[rel].read_text())
        else:
            same = path.read_bytes() == committed[rel].read_bytes()
        assert same, f"course/{name}/{rel} is out of date with solutions/; run `{REGENERATE}`"


RELEASED = sorted(COURSE.glob("*/*.ipynb"))


@pytest.mark.parametrize("notebook", RELEASED, ids=[str(p.relative_to(COURSE)) for p in RELEASED])
def test_release_notebook_gives_nothing_away(notebook: Path) -> None:
    """A student notebook has no outputs, no solution code and no hidden tests."""
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{notebook.relative_to(COURSE)} cell {index}"
        if cell.cell_type == "code":
            assert not cell.outputs, f"{where} has outputs"
            assert cell.execution_count is None, f"{where} has an execution count"
        for marker in LEAKS:
            assert marker not in cell.source, f"{where} contains {marker!r}"
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            assert "raise NotImplementedError" in cell.source, f"{where} is an answer cell without the stub"
