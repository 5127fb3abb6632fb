"""The usual mistakes, planted in the gates and bptt notebooks, cost exactly their test cells' points
(a function that calls a failing one of the student's is judged with the course's in its place, so
each mistake breaks one cell); every solution notebook earns full marks and every untouched release
notebook zero.

Each submission is a solution notebook with one mistake written into an answer
cell (the text between ``### BEGIN SOLUTION`` and ``### END SOLUTION``). All
submissions of an assignment go through one real ``nbgrader autograde`` run in
a temporary course configured as ``grader/nbgrader_config.py`` configures the
course (source = ``solutions/``, student cells in a sandboxed kernel, every
test cell in the grader's process, as each notebook's report shows), then:

(a) in the autograded notebook, each test cell the mistake breaks ends with an
    AssertionError whose message names the mistake;
(b) the gradebook gives every other autograded cell its full points and the
    broken ones zero, so the score drops by exactly their points.

The submissions keep the graded, answer and setup cells and drop the demo cells
(plots, training), which carry no points, so that the runs stay short; the
correct submission of "gates" keeps every cell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "course"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class Planted(NamedTuple):
    """A mistake written into answer cell ``cell``: ``old`` replaced by ``new``,
    and the test cells it breaks, each with a fragment of its failure message.
    Mistakes of one student break disjoint sets of cells."""

    student: str
    cell: str
    old: str
    new: str
    breaks: dict[str, str]


GATES = [
    Planted("sigmoid_and_count", "sigmoid", "e = np.exp(-np.abs(x))  # in (0, 1]: never overflows\n"
            "    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)", "return 1 / (1 + np.exp(-x))",
            {"test_sigmoid": "sigmoid overflows for large |x|"}),  # tanh, lstm_step: run with the course's sigmoid
    Planted("swapped_gates", "lstm_step", "i = sigmoid(z[:, 0 * H : 1 * H])  # (N, H)\n    f = sigmoid(z[:, 1 * H : 2 * H])",
            "i = sigmoid(z[:, 1 * H : 2 * H])\n    f = sigmoid(z[:, 0 * H : 1 * H])",
            {"test_lstm_step": "lstm_step: the i and f gate blocks look swapped"}),  # lstm_forward: the course's step
    Planted("missing_bias", "tanh", "return 2 * sigmoid(2 * x) - 1", "return np.tanh(x)",
            {"test_tanh": "tanh gives the right values but does not call sigmoid"}),  # lstm_step: the course's tanh
    Planted("missing_bias", "lstm_step", 'z = xh @ WU + params["b"]', "z = xh @ WU",
            {"test_lstm_step": "the bias b is missing"}),
    Planted("doubled_bias", "lstm_step", 'z = xh @ WU + params["b"]', 'z = xh @ WU + 2 * params["b"]',
            {"test_lstm_step": "the bias b is added twice"}),
    Planted("concatenation_order", "lstm_step", "xh = np.concatenate([x, h_prev], axis=1)",
            "xh = np.concatenate([h_prev, x], axis=1)", {"test_lstm_step": "the concatenation order is wrong"}),
    Planted("wrong_activation", "lstm_step", "g = tanh(z[:, 2 * H : 3 * H])", "g = sigmoid(z[:, 2 * H : 3 * H])",
            {"test_lstm_step": "gate g uses sigmoid; it must use tanh"}),
    Planted("step_and_forward", "lstm_step", "return h, c", "return c, h",
            {"test_lstm_step": "h and c are swapped in the return value"}),
    Planted("forget_ignored", "lstm_step", "c = f * c_prev + i * g", "c = c_prev + i * g",
            {"test_lstm_step": "the forget gate is ignored"}),
    Planted("calls_reference", "lstm_step", "H = h_prev.shape[1]",
            "h, c, _ = lstm_ref.lstm_step_forward(x, h_prev, c_prev, params)\n    return h, c",
            {"test_lstm_step": "calls the reference implementation lstm_ref.lstm_step_forward"}),
    # A wrong forward loop around a wrong step: judged with the course's step, and told so.
    Planted("step_and_forward", "lstm_forward",
            "h, c = lstm_step(x[:, t], h, c, params)  # (N, H) each\n        hs.append(h)\n        cs.append(c)",
            "hs.append(h)\n        cs.append(c)\n        h, c = lstm_step(x[:, t], h, c, params)",
            {"test_lstm_forward": "lstm_forward (run with the course's lstm_step in place of yours, which fails its "
                                  "own test): off by one in time"}),
    Planted("sigmoid_and_count", "lstm_param_count", "return 4 * (D * H + H * H + H)", "return D * H + H * H + H",
            {"test_lstm_param_count": "vanilla RNN's count"}),
]  # fmt: skip

BPTT = [
    Planted("rnn_and_accumulation", "rnn_step_backward", "da = dh * (1 - cache.h**2)", "da = dh",
            {"test_rnn_step_backward": "the tanh derivative (1 - h^2) is missing"}),
    Planted("dc_ignored_and_loss", "lstm_step_backward", "dc_t = dc + dh * o", "dc_t = dh * o",
            {"test_lstm_step_backward": "the upstream gradient dc is ignored"}),  # lstm_bptt: the course's step
    Planted("dc_ignored_and_loss", "bptt_loss", "return float(np.sum(hs * dhs))", "return float(np.sum(hs))",
            {"test_bptt_loss": "the loss ignores dhs"}),  # the gradient check: the course's loss and lstm_bptt
    Planted("step_backward_calls_reference", "lstm_step_backward", "H = dh.shape[1]",
            "return lstm_ref.lstm_step_backward(dh, dc, cache)",
            {"test_lstm_step_backward": "calls the reference implementation lstm_ref.lstm_step_backward"}),
    Planted("rnn_and_accumulation", "lstm_bptt", "grads[k] += step_grads[k]", "grads[k] = step_grads[k]",
            {"test_lstm_bptt": "not accumulated over time"}),
    Planted("off_by_one", "lstm_bptt", "lstm_step_backward(dhs[:, t] + dh_next", "lstm_step_backward(dhs[:, t - 1] + dh_next",
            {"test_lstm_bptt": "step t must use dhs[:, t], not dhs[:, t-1]"}),
    Planted("off_by_one", "bptt_loss", '"h0": dh0, "c0": dc0', '"h0": dc0, "c0": dh0',
            {"test_bptt_gradcheck": "bptt_gradients (run with the course's lstm_bptt in place of yours, which fails "
                                    "its own test) disagrees with finite differences of bptt_loss"}),
]  # fmt: skip


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _plant(nb: nbformat.NotebookNode, planted: Planted) -> None:
    """Write the mistake into the solution region of answer cell ``planted.cell`` that holds ``planted.old``."""
    (cell,) = [c for c in nb.cells if _meta(c).get("grade_id") == planted.cell]
    stop = 0
    while BEGIN in cell.source[stop:]:
        start = cell.source.index(BEGIN, stop)
        stop = cell.source.index(END, start)
        region = cell.source[start:stop]
        if planted.old in region:
            cell.source = cell.source[:start] + region.replace(planted.old, planted.new) + cell.source[stop:]
            return
    raise AssertionError(f"{planted.student}: {planted.old!r} is not in a solution of {planted.cell}")


def _submission(source: Path, planted: list[Planted], keep_demo: bool) -> nbformat.NotebookNode:
    nb = nbformat.read(source, as_version=4)
    if not keep_demo:
        nb.cells = [c for c in nb.cells if c.cell_type != "code" or _meta(c)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    for mistake in planted:
        _plant(nb, mistake)
    return nb


class Graded(NamedTuple):
    scores: dict[str, dict[str, float]]  # student -> autograded test cell -> score
    points: dict[str, float]  # autograded test cell -> points
    errors: dict[str, dict[str, str]]  # student -> test cell -> "ename: evalue" of its error


def _autograde(tmp: Path, assignment: str, submissions: dict[str, nbformat.NotebookNode]) -> Graded:
    """Generate the assignment from solutions/ and autograde every submission in one nbgrader run."""
    course = tmp / assignment
    shutil.copytree(SOLUTIONS / assignment, course / "solutions" / assignment)
    db = course / "gradebook.db"
    (course / "nbgrader_config.py").write_text(
        "from grader.config import course_config\n"
        "c = get_config()  # noqa: F821\n"
        f"c.merge(course_config({str(course)!r}, db_url={f'sqlite:///{db}'!r}))\n"
    )
    for student, nb in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
    # nbgrader runs the `alembic` command of its own environment.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for step in (["generate_assignment", assignment], ["autograde", assignment]):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *step, "--force"], cwd=course, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, f"nbgrader {step[0]} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"

    source = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    points = {_meta(c)["grade_id"]: _meta(c)["points"] for c in source.cells
              if _meta(c).get("grade") and c.cell_type == "code"}  # fmt: skip
    scores, errors = {}, {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for student in submissions:
            scores[student] = {gid: gb.find_grade(gid, assignment, assignment, student).score for gid in points}
            graded = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
            errors[student] = {
                _meta(c)["grade_id"]: f"{o.ename}: {o.evalue}"
                for c in graded.cells if _meta(c).get("grade_id") in points
                for o in c.outputs if o.output_type == "error"
            }  # fmt: skip
            report = json.loads((course / "grader_work" / "reports" / student / assignment
                                 / f"{assignment}.json").read_text())
            # every test ran in the grader's process, none in the student's kernel
            assert [t["grade_id"] for t in report["tests"]] == list(points), report
            assert not [t for t in report["tests"] if "in_kernel" in t], report
    return Graded(scores, points, errors)


@pytest.mark.parametrize("assignment, mistakes", [("gates", GATES), ("bptt", BPTT)], ids=["gates", "bptt"])
def test_each_mistake_costs_exactly_its_test_cells(tmp_path: Path, assignment: str, mistakes: list[Planted]) -> None:
    source = SOLUTIONS / assignment / f"{assignment}.ipynb"
    students: dict[str, list[Planted]] = {}
    for m in mistakes:
        students.setdefault(m.student, []).append(m)
    breaks = {student: {c: msg for m in planted for c, msg in m.breaks.items()} for student, planted in students.items()}
    assert all(len(b) == sum(len(m.breaks) for m in students[s]) for s, b in breaks.items()), "overlapping mistakes"
    submissions = {"correct": _submission(source, [], keep_demo=assignment == "gates")}
    submissions.update({student: _submission(source, planted, keep_demo=False) for student, planted in students.items()})
    submissions["blank"] = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    graded = _autograde(tmp_path, assignment, submissions)
    assert graded.scores["blank"] == dict.fromkeys(graded.points, 0.0), "the untouched release earns points"

    assert sum(graded.points.values()) >= 10, f"{assignment} has only {sum(graded.points.values())} autograded points"
    assert graded.scores["correct"] == graded.points, f"the solution loses points: {graded.scores['correct']}"
    assert graded.errors["correct"] == {}
    for student, broken in breaks.items():
        # (a) exactly the broken cells fail, each with a message that names the mistake
        assert set(graded.errors[student]) == set(broken), f"{student}: failing cells {graded.errors[student]}"
        for cell, message in broken.items():
            error = graded.errors[student][cell]
            assert error.startswith("AssertionError: ") and message in error, f"{student}, {cell}: {error}"
        # (b) the score drops by exactly the points of those cells
        expected = {gid: 0.0 if gid in broken else pts for gid, pts in graded.points.items()}
        assert graded.scores[student] == expected, f"{student}: {graded.scores[student]}"
        lost = sum(graded.points.values()) - sum(graded.scores[student].values())
        assert lost == sum(graded.points[c] for c in broken)


# An answer that hands its work to the library earns nothing, in the two other graded assignments too.
CALLS_REFERENCE = {
    "gru": Planted("calls_reference", "load_gru_cell", "    with torch.no_grad():",
                   "    from lstm_ref.interop import to_torch\n    to_torch(params, \"gru\")\n    with torch.no_grad():",
                   {"test_load_gru_cell": "load_gru_cell calls the reference implementation lstm_ref.interop.to_torch"}),
    "sequence_tasks": Planted("calls_reference", "make_windows", "    s = np.asarray(series, dtype=np.float64)",
                              "    return data.windows(series, window, horizon)",
                              dict.fromkeys(("test_windows_1d", "test_windows_multistep", "test_windows_short"),
                                            "make_windows calls the reference implementation lstm_ref.data.windows")),
}  # fmt: skip


@pytest.mark.parametrize("assignment", ["gru", "sequence_tasks"])
def test_solution_earns_every_point_and_the_release_none(tmp_path: Path, assignment: str) -> None:
    """The other graded assignments: the whole solution notebook (demo cells included), the untouched release,
    and the solution with one answer calling the library, which loses exactly that answer's test cells."""
    source = SOLUTIONS / assignment / f"{assignment}.ipynb"
    planted = CALLS_REFERENCE[assignment]
    submissions = {"solution": _submission(source, [], keep_demo=True),
                   "blank": nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4),
                   planted.student: _submission(source, [planted], keep_demo=True)}
    graded = _autograde(tmp_path, assignment, submissions)
    assert sum(graded.points.values()) >= 10, f"{assignment} has only {sum(graded.points.values())} autograded points"
    assert graded.scores["solution"] == graded.points and graded.errors["solution"] == {}, graded.errors["solution"]
    assert graded.scores["blank"] == dict.fromkeys(graded.points, 0.0), "the untouched release earns points"
    assert set(graded.errors["blank"]) == set(graded.points), "every test cell of the release must fail"
    errors = graded.errors[planted.student]
    assert set(errors) == set(planted.breaks), f"failing cells {errors}"
    for cell, message in planted.breaks.items():
        assert errors[cell].startswith("AssertionError: ") and message in errors[cell], f"{cell}: {errors[cell]}"
    assert graded.scores[planted.student] == {gid: 0.0 if gid in planted.breaks else pts
                                              for gid, pts in graded.points.items()}
