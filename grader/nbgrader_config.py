"""nbgrader configuration for the course.

Run nbgrader's plain commands from this folder (``cd grader``): the course root
is the repository, ``solutions/`` is the nbgrader source and ``course/`` the
student release. ``python -m grader`` uses the same settings (see
:func:`grader.config.course_config`).

Environment:
``GRADER_DB_URL``  the gradebook (any SQLAlchemy URL; default SQLite
                   ``gradebook.db`` in the course root).
"""
import os
import sys

c = get_config()  # noqa: F821 (injected by traitlets)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # makes the ``grader`` package importable for nbgrader's own commands

from grader.config import course_config  # noqa: E402

c.merge(course_config(ROOT))
