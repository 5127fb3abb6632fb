"""nbgrader configuration for the course.

Run nbgrader's plain commands from this folder (``cd grader``): the course root
is the repository, ``solutions/`` is the nbgrader source and ``course/`` the
student release.
"""
import os

c = get_config()  # noqa: F821 (injected by traitlets)

c.CourseDirectory.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
