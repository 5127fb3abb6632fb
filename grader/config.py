"""The nbgrader settings of the course, shared by nbgrader's plain commands
(``grader/nbgrader_config.py``) and by ``python -m grader``.

Autograding replaces nbgrader's ``Execute`` with :class:`grader.trusted.TrustedExecute`
(sandboxed kernel, tests run in the grader), restores deleted grade cells,
and caps outputs; feedback drops the hidden tests' source.
"""
from __future__ import annotations

import os

from traitlets.config import Config

from .sandbox import Limits

SOURCE, RELEASE = "solutions", "course"
DB_URL_ENV = "GRADER_DB_URL"
# The source checkout this package lives in (solutions, samples): hidden from kernels too.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_db_url(root: str) -> str:
    """SQLite in the course root; ``timeout`` lets parallel workers wait for the write lock."""
    return f"sqlite:///{os.path.join(os.path.abspath(root), 'gradebook.db')}?timeout=120"


def course_config(root: str, *, db_url: str | None = None, limits: Limits | None = None,
                  report_dir: str = "", hidden_paths: tuple = ()) -> Config:
    """nbgrader settings for the course rooted at ``root``.

    ``db_url`` defaults to ``$GRADER_DB_URL`` or SQLite in the root; ``limits``
    to :class:`Limits`'s defaults; ``hidden_paths`` adds paths (beyond the root)
    that student kernels must not see.
    """
    root = os.path.abspath(root)
    limits = limits or Limits()
    c = Config()
    c.CourseDirectory.root = root
    c.CourseDirectory.source_directory = SOURCE
    c.CourseDirectory.release_directory = RELEASE
    c.CourseDirectory.db_url = db_url or os.environ.get(DB_URL_ENV) or default_db_url(root)
    c.Autograde.sanitize_preprocessors = [
        "nbgrader.preprocessors.ClearOutput",
        "nbgrader.preprocessors.DeduplicateIds",
        "grader.trusted.DropEmptyMetadata",
        "nbgrader.preprocessors.OverwriteKernelspec",
        "nbgrader.preprocessors.OverwriteCells",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    c.Autograde.autograde_preprocessors = [
        "grader.trusted.TrustedExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    c.OverwriteCells.add_missing_cells = True
    c.TrustedExecute.cell_timeout = float(limits.cell_timeout)
    c.TrustedExecute.notebook_timeout = float(limits.notebook_timeout)
    c.TrustedExecute.memory_mb = int(limits.memory_mb)
    c.TrustedExecute.cpu_seconds = int(limits.cpu_seconds)
    c.TrustedExecute.max_processes = int(limits.max_processes)
    c.TrustedExecute.output_bytes = int(limits.output_bytes)
    c.TrustedExecute.hidden_paths = list(dict.fromkeys([root, REPO, *map(os.path.abspath, hidden_paths)]))
    c.TrustedExecute.report_dir = report_dir or os.path.join(root, "grader_work", "reports")
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "nbgrader.preprocessors.ClearHiddenTests",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    c.ClearHiddenTests.enforce_metadata = False
    return c
