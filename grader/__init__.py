"""The course's autograder: nbgrader with sandboxed kernels and trusted tests.

- :mod:`grader.sandbox`: the kernel a submission runs in (limits, namespaces).
- :mod:`grader.trusted`: ``TrustedExecute``, nbgrader's autograde step with the
  tests run where student code cannot reach them.
- :mod:`grader.course`: release, import, parallel autograde, feedback, reports.
- :mod:`grader.cli`: ``python -m grader ...``; :mod:`grader.samples`: the
  bundled sample submissions.
"""
