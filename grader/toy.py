"""A two-minute nbgrader course (``toy``) for testing and benchmarking the grader.

One notebook with every kind of nbgrader cell: a read-only setup cell, two
autograded answers (``sigmoid``, checked by :func:`lstm_ref.checkers.check_sigmoid`,
and ``squared``), a public test cell, a test cell with hidden tests, and a
manually graded written answer. Autograded points: 2 + 3 + 1 = 6.
"""
from __future__ import annotations

import os

import nbformat

ASSIGNMENT = "toy"
SOLUTION_SIGMOID = "np.exp(-np.logaddexp(0.0, -x))"  # no overflow for any x
SOLUTION_SQUARED = "np.asarray(x) ** 2"


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
          points: float = 0) -> dict:
    nbg = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if grade:
        nbg["points"] = points
    return {"nbgrader": nbg}


def answer_source(name: str, body: str) -> str:
    """The source of an answer cell defining ``name(x)`` that returns ``body``."""
    return (f"def {name}(x):\n    \"\"\"{name} of x, elementwise.\"\"\"\n"
            f"    ### BEGIN SOLUTION\n    return {body}\n    ### END SOLUTION\n")


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's source notebook of the toy assignment."""
    cells = [
        nbformat.v4.new_markdown_cell("# Toy assignment\nImplement `sigmoid` and `squared`."),
        nbformat.v4.new_code_cell("import numpy as np\nfrom lstm_ref.checkers import check_sigmoid",
                                  metadata=_meta("setup", locked=True)),
        nbformat.v4.new_code_cell(answer_source("sigmoid", SOLUTION_SIGMOID), metadata=_meta("sigmoid", solution=True)),
        nbformat.v4.new_code_cell(
            '"""sigmoid matches the reference; hidden tests check float32 and another seed."""\n'
            "check_sigmoid(sigmoid)\n"
            "### BEGIN HIDDEN TESTS\n"
            "check_sigmoid(sigmoid, seed=7, dtype=np.float32)\n"
            "### END HIDDEN TESTS\n",
            metadata=_meta("test_sigmoid", grade=True, locked=True, points=3)),
        nbformat.v4.new_code_cell(answer_source("squared", SOLUTION_SQUARED), metadata=_meta("squared", solution=True)),
        nbformat.v4.new_code_cell(
            '"""squared returns x**2 elementwise."""\n'
            'assert np.allclose(squared(np.arange(3.0)), [0.0, 1.0, 4.0]), "squared(x) must return x**2"\n',
            metadata=_meta("test_squared_public", grade=True, locked=True, points=2)),
        nbformat.v4.new_code_cell(
            '"""squared keeps negative inputs positive."""\n'
            "### BEGIN HIDDEN TESTS\n"
            'assert np.allclose(squared(-np.arange(4.0)), np.arange(4.0) ** 2), "squared fails on negative x"\n'
            "### END HIDDEN TESTS\n",
            metadata=_meta("test_squared_hidden", grade=True, locked=True, points=1)),
        nbformat.v4.new_markdown_cell("Why does the sigmoid saturate?\n\n=== BEGIN MARK SCHEME ===\nlarge |x|\n"
                                      "=== END MARK SCHEME ===", metadata=_meta("written", grade=True, solution=True,
                                                                                points=1)),
    ]
    cells[-1].source = "YOUR ANSWER HERE"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def write_course(root: str) -> str:
    """Write ``solutions/toy/toy.ipynb`` under ``root``; return its path."""
    path = os.path.join(root, "solutions", ASSIGNMENT, f"{ASSIGNMENT}.ipynb")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(source_notebook(), path)
    return path
