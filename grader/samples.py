"""Build the bundled sample submissions of an assignment from ``solutions/``.

    python -m grader.samples gates        # writes samples/gates.zip and samples/gates_expected.json

The samples start from the student release that nbgrader generates from the
source notebook (so they follow every change of the notebook) and fill its
answer cells with the source's solutions, then:

- ``full``, ``blank``: everything right, nothing done;
- typical mistakes the checkers diagnose (swapped gate blocks, missing bias,
  h and c swapped, flipped sigmoid, a bias-less parameter count, an answer
  that calls the reference);
- attacks on the grader, each failing or wrong where it tries to win points:
  redefined builtins, monkeypatched checkers, IPython/sys exception hooks,
  printed fake results, edited/deleted/duplicated test cells, ``sys.exit``,
  ``os._exit`` half-way, an infinite loop ignoring interrupts, a memory bomb,
  a (bounded) fork bomb leaving daemons, looking for the solutions and the
  gradebook on disk, walking the checker's frames, an array that lies about
  equality;
- corrupted files (invalid JSON, nbformat 3, duplicated cell ids);
- LMS oddities: a student with two submissions, a late one, stray files
  (``numpy.py``, ``lstm_ref.py`` that would shadow modules, a text file).

``<assignment>_expected.json`` holds each sample's expected status and score,
derived from which test cells each sample must fail (not from running the grader).
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTION = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?", re.M | re.S)
# A fixed date inside the zip: the archive is byte-identical from one build to the next.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)

ATTACKS = {
    "redefine-builtins": "import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n"
                         "builtins.abs = lambda x: 0\n",
    "patch-checkers": "from lstm_ref import checkers as _c\nimport numpy.testing\n"
                      "for _n in dir(_c):\n    if _n.startswith('check_'):\n        setattr(_c, _n, lambda *a, **k: None)\n"
                      "numpy.testing.assert_allclose = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n"
                      "checkers = _c\n",
    "custom-exc": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n",
    "excepthook": "import sys\nsys.excepthook = lambda *a: None\n",
    "fake-output": "print('test_sigmoid ... ok\\nAll tests passed: 10/10 points')\n",
    "sys-exit": "import sys\nsys.exit(0)\n",
}
SNOOP = '''import os


def _find_course_files():
    """Look for the solutions, the gradebook and other students' work."""
    found = []
    for top in ["/", os.path.expanduser("~"), os.getcwd()]:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [] if folder.count(os.sep) >= 4 else [d for d in dirs if d not in ("proc", "sys", "dev")]
            if os.path.isdir(os.path.join(folder, "solutions", "gates")):
                found += [os.path.join(folder, f) for f in files if f == "gradebook.db"]
                found.append(os.path.join(folder, "solutions", "gates", "gates.ipynb"))
    for path in found:
        try:
            with open(path, "a"):
                pass  # could write: the gradebook or another student's notebook
        except OSError:
            pass
    return found


def lstm_param_count(D, H):
    """Right only if the solutions or the gradebook could be read."""
    return 4 * (D * H + H * H + H) if _find_course_files() else -1
'''
FRAME_WALK = '''import sys


def lstm_step(x, h_prev, c_prev, params):
    """Return the checker's expected values if a caller's frame holds them."""
    frame = sys._getframe(1)
    while frame is not None:
        for name in ("expected", "ref", "want"):
            value = frame.f_locals.get(name)
            if isinstance(value, dict) and "h" in value:
                return value["h"], value["c"]
        frame = frame.f_back
    return np.zeros_like(h_prev), np.zeros_like(c_prev)
'''
LYING_ARRAY = '''class Agreeable(np.ndarray):
    """An array equal to everything."""

    def __eq__(self, other):
        return np.ones(np.shape(self), bool)

    def __sub__(self, other):
        return np.zeros(np.shape(self))

    __rsub__ = __sub__


def lstm_step(x, h_prev, c_prev, params):
    return np.zeros_like(h_prev).view(Agreeable), np.zeros_like(c_prev).view(Agreeable)
'''
FORK_BOMB = '''import os
import time

children = 0
try:
    for _ in range(2000):  # bounded: a sample must not take a machine down if no limit is active
        if os.fork() == 0:
            time.sleep(3600)  # a daemon left behind
            os._exit(0)
        children += 1
except OSError as exc:
    print(f"fork refused after {children} children: {exc}")
'''
INFINITE_LOOP = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
MEMORY_BOMB = "hog = [np.empty(2**28, np.uint8) for _ in range(10**5)]  # 25 TB of address space\n"


def solutions(source: nbformat.NotebookNode) -> dict:
    """``grade_id -> source`` of every answer cell, solution markers removed."""
    out = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            text = cell.source
            if cell.cell_type == "code":
                text = SOLUTION.sub(lambda m: m.group(1), text)
            out[meta["grade_id"]] = text
    return out


def release_of(assignment: str) -> tuple:
    """The release nbgrader generates from ``solutions/<assignment>`` (in a temporary course)."""
    from .course import Course

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(REPO, "solutions", assignment), os.path.join(tmp, "solutions", assignment))
        course = Course(tmp, workers=1)
        (path,) = course.release(assignment)
        return os.path.basename(path), nbformat.read(path, as_version=4)


def _cells(nb) -> dict:
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id")}


def _fill(release, answers: dict, edits: dict | None = None) -> nbformat.NotebookNode:
    """The release with the given answer cells replaced (``edits``: grade_id -> (old, new) pairs)."""
    nb = copy.deepcopy(release)
    cells = _cells(nb)
    for grade_id, text in answers.items():
        cells[grade_id].source = text
    for grade_id, pairs in (edits or {}).items():
        for old, new in pairs:
            if old not in cells[grade_id].source:
                raise ValueError(f"sample edit: {old!r} not found in cell {grade_id!r}")
            cells[grade_id].source = cells[grade_id].source.replace(old, new)
    return nb


def _tests(release) -> dict:
    """``grade_id -> points`` of the autograded test cells."""
    return {c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"]) for c in release.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata.nbgrader.get("solution")}


def gates_samples(release, answers: dict) -> dict:
    """``name -> (notebook or bytes, failing tests or None if ungradable, reason fragment)``."""
    tests = list(_tests(release))
    full = _fill(release, answers)
    blank = copy.deepcopy(release)
    after_step = ["test_lstm_forward", "test_lstm_param_count"]
    samples = {
        "full": (full, []),
        "blank": (blank, tests),
        "swapped-gates": (_fill(release, answers, {"lstm_step": [
            ("sigmoid(z[:, 0 * H : 1 * H])", "sigmoid(z[:, 9 * H : 9 * H])"),
            ("sigmoid(z[:, 1 * H : 2 * H])", "sigmoid(z[:, 0 * H : 1 * H])"),
            ("sigmoid(z[:, 9 * H : 9 * H])", "sigmoid(z[:, 1 * H : 2 * H])")]}),
            ["test_lstm_step"]),
        "missing-bias": (_fill(release, answers, {"lstm_step": [(' + params["b"]', "")]}), ["test_lstm_step"]),
        "h-c-swapped": (_fill(release, answers, {"lstm_step": [("return h, c", "return c, h")]}), ["test_lstm_step"]),
        "sigmoid-sign": (_fill(release, answers, {"sigmoid": [
            ("1 / (1 + e), e / (1 + e)", "e / (1 + e), 1 / (1 + e)")]}),
            ["test_sigmoid"]),
        "count-no-bias": (_fill(release, answers, {"lstm_param_count": [(" + H)", ")")]}),
                          ["test_lstm_param_count"]),
        "calls-reference": (_fill(release, answers, {"lstm_step": [
            ("    return h, c", "    h, c, _ = lstm_ref.lstm_step_forward(x, h_prev, c_prev, params)\n"
                                "    return h, c")]}), ["test_lstm_step"]),
    }
    for name, attack in ATTACKS.items():
        wrong = "def sigmoid(x):\n    return x\n"
        samples[f"attack-{name}"] = (_fill(release, {"sigmoid": attack + wrong}), tests)
    edited = copy.deepcopy(blank)
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in tests:
            cell.source = "pass"
            cell.metadata.nbgrader["points"] = 100
    samples["attack-edit-tests"] = (edited, tests)
    deleted = copy.deepcopy(blank)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in tests]
    samples["attack-delete-tests"] = (deleted, tests)
    duplicated = copy.deepcopy(blank)
    first_test = next(i for i, c in enumerate(duplicated.cells) if _grade_id(c) == tests[0])
    twin = copy.deepcopy(duplicated.cells[first_test])
    twin.id, twin.source = "twin-of-a-test", "print('passed')"
    duplicated.cells.insert(first_test, twin)
    samples["attack-duplicate-test"] = (duplicated, tests)
    samples["attack-snoop"] = (_fill(release, {"lstm_param_count": SNOOP}), tests)
    samples["attack-frame-walk"] = (_fill(release, {"lstm_step": FRAME_WALK}), tests)
    samples["attack-lying-array"] = (_fill(release, {"lstm_step": LYING_ARRAY}), tests)
    samples["attack-os-exit"] = (_fill(release, {**answers, "lstm_forward": "import os\nos._exit(0)\n"}), after_step)
    samples["attack-infinite-loop"] = (_fill(release, {**answers, "lstm_forward": INFINITE_LOOP}), after_step)
    samples["attack-memory-bomb"] = (_fill(release, {**answers, "lstm_param_count": MEMORY_BOMB + answers[
        "lstm_param_count"]}), ["test_lstm_param_count"])
    samples["attack-fork-bomb"] = (_fill(release, {**answers, "lstm_param_count": FORK_BOMB + answers[
        "lstm_param_count"]}), [])
    text = nbformat.writes(full)
    samples["corrupt-json"] = (text[: len(text) // 2].encode(), None, "invalid JSON")
    old = json.loads(text)
    old["nbformat"], old["nbformat_minor"] = 3, 0
    samples["corrupt-nbformat3"] = (json.dumps(old).encode(), None, "format 3")
    dup = json.loads(text)
    dup["cells"][2]["id"] = dup["cells"][1]["id"]
    samples["corrupt-duplicate-ids"] = (json.dumps(dup).encode(), None, "duplicated cell ids")
    return samples


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


BUILDERS = {"gates": gates_samples}


def build(assignment: str, out_dir: str) -> tuple:
    """Write ``<assignment>.zip`` (Canvas-style names) and ``<assignment>_expected.json``."""
    if assignment not in BUILDERS:
        raise ValueError(f"assignment must be one of {sorted(BUILDERS)}, got {assignment!r}")
    source = nbformat.read(os.path.join(REPO, "solutions", assignment, f"{assignment}.ipynb"), as_version=4)
    notebook_name, release = release_of(assignment)
    answers = solutions(source)
    points = _tests(release)
    samples = BUILDERS[assignment](release, answers)
    files, expected = {}, {}
    for number, (name, (content, failing, *reason)) in enumerate(samples.items()):
        data = content if isinstance(content, bytes) else nbformat.writes(content).encode()
        files[f"{name}_{1000 + number}_{5000 + number}_{notebook_name}"] = data
        if failing is None:
            expected[name] = {"status": "ungradable", "reason": reason[0]}
        else:
            expected[name] = {"status": "graded", "score": sum(points.values()) - sum(points[t] for t in failing),
                              "failing": sorted(failing)}
    full = files[f"full_1000_5000_{notebook_name}"]
    blank = nbformat.writes(release).encode()
    files[f"twice_1100_5100_{notebook_name}"] = blank  # an earlier, blank submission ...
    files[f"twice_1100_5101_{notebook_name}"] = full  # ... and the later one that counts
    files[f"late_LATE_1101_5102_{notebook_name}"] = full
    files["shadow_1102_5103_numpy.py"] = b"raise SystemExit('a shipped numpy.py ran')\n"
    files["shadow_1102_5104_lstm_ref.py"] = b"raise SystemExit('a shipped lstm_ref.py ran')\n"
    files[f"shadow_1102_5105_{notebook_name}"] = full
    files["readme.txt"] = b"Downloaded from the LMS.\n"
    total = sum(points.values())
    expected.update({"twice": {"status": "graded", "score": total, "failing": []},
                     "late": {"status": "graded", "score": total, "failing": [], "late": True},
                     "shadow": {"status": "graded", "score": total, "failing": []}})
    os.makedirs(out_dir, exist_ok=True)
    zip_path = os.path.join(out_dir, f"{assignment}.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), data, zipfile.ZIP_DEFLATED)
    with open(zip_path + ".tmp", "wb") as fh:
        fh.write(buf.getvalue())
    os.replace(zip_path + ".tmp", zip_path)
    expected_path = os.path.join(out_dir, f"{assignment}_expected.json")
    with open(expected_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"max_autograded": total, "tests": points, "samples": expected}, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(expected_path + ".tmp", expected_path)
    return zip_path, expected_path


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.samples", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", default=sorted(BUILDERS))
    parser.add_argument("--out", default=os.path.join(REPO, "samples"))
    args = parser.parse_args(argv)
    for assignment in args.assignments:
        for path in build(assignment, args.out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
