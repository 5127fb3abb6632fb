"""End to end: the bundled gates samples through release, import, parallel autograde, feedback.

One autograde run of every sample (real nbgrader, real sandboxed kernels) is
shared by the tests of this module; each test checks one promise of the grader
against ``samples/gates_expected.json``.
"""
import csv
import hashlib
import os
import shutil
import tempfile

import pytest

from conftest import private_tmpdir
from grader.course import Course, format_grades
from grader.sandbox import Limits, sandboxes_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")
ZIP = os.path.join(SAMPLES, "gates.zip")
LIMITS = Limits(cell_timeout=15, notebook_timeout=120)


def _tree_digest(folder: str) -> dict:
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    import json

    root = str(tmp_path_factory.mktemp("gates_course"))
    shutil.copytree(os.path.join(REPO, "solutions", "gates"), os.path.join(root, "solutions", "gates"))
    course = Course(root, limits=LIMITS, workers=2)
    course.release("gates")
    with open(ZIP, "rb") as fh:
        zip_digest = hashlib.sha256(fh.read()).hexdigest()
    report = course.import_submissions("gates", ZIP)
    submitted = _tree_digest(os.path.join(root, "submitted"))
    # The workers keep their sandboxes under a temporary folder of this run (TMPDIR), apart from those
    # of every other test, earlier ones included; kernels that run as another user pass through it.
    tmp = private_tmpdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", tmp)
        mp.setattr(tempfile, "tempdir", tmp)
        sandboxes = sandboxes_path()
        states = course.autograde("gates", progress=False)
    with open(os.path.join(SAMPLES, "gates_expected.json"), encoding="utf-8") as fh:
        expected = json.load(fh)
    return {"course": course, "root": root, "report": report, "states": states, "expected": expected,
            "zip_digest": zip_digest, "submitted": submitted, "sandboxes": sandboxes}


def test_every_sample_gets_its_expected_grade(graded):
    expected, states = graded["expected"]["samples"], graded["states"]
    assert sorted(states) == sorted(expected)
    wrong = {}
    for name, want in expected.items():
        got = states[name]
        if got["status"] != want["status"]:
            wrong[name] = (got["status"], got.get("reason"))
        elif want["status"] == "graded":
            failing = sorted(t["grade_id"] for t in got["tests"] if t["score"] < t["max_score"])
            if got["score"] != want["score"] or failing != want["failing"]:
                wrong[name] = (got["score"], failing)
        elif want["reason"] not in got["reason"]:
            wrong[name] = got["reason"]
    assert wrong == {}


def test_diagnosed_mistakes_reach_the_report_and_the_summary(graded):
    states = graded["states"]
    messages = {t["grade_id"]: t["message"] for t in states["swapped-gates"]["tests"]}
    assert "i and f gate blocks look swapped" in messages["test_lstm_step"]
    assert "bias b is missing" in {t["grade_id"]: t["message"] for t in states["missing-bias"]["tests"]}["test_lstm_step"]
    refused = {t["grade_id"]: t["message"] for t in states["calls-reference"]["tests"]}["test_lstm_step"]
    assert "calls the reference implementation" in refused
    summary = graded["course"].summary("gates")
    assert summary["tests"]["test_lstm_step"]["max_score"] == 4
    assert summary["tests"]["test_lstm_step"]["passed"] == sum(
        1 for s in states.values() if s["status"] == "graded"
        and "test_lstm_step" not in graded["expected"]["samples"][s["student"]]["failing"])
    assert any("gate blocks look swapped" in m["message"] for m in summary["mistakes"])  # diagnoses rank first
    assert set(summary["ungradable"]) == {"corrupt-json", "corrupt-nbformat3", "corrupt-duplicate-ids"}


def test_kernel_deaths_and_timeouts_cost_only_the_rest(graded):
    states = graded["states"]
    assert "time limit" in states["attack-infinite-loop"]["reason"]
    assert "kernel died" in states["attack-os-exit"]["reason"]
    assert states["attack-fork-bomb"]["score"] == graded["expected"]["max_autograded"]


def test_import_reports_duplicates_late_and_stray_files(graded):
    report = graded["report"]
    assert [d["file"] for d in report.duplicates] == ["twice_1100_5100_gates.ipynb"]
    assert [entry["student"] for entry in report.late] == ["late"]
    course = graded["course"]
    assert course.late("gates") == {"late"}
    with open(course.export_csv("gates", os.path.join(graded["root"], "grades.csv")), newline="",
              encoding="utf-8") as fh:
        assert {row["student"] for row in csv.DictReader(fh) if row["late"] == "yes"} == {"late"}
    assert "late" in next(line for line in format_grades(graded["states"], course.late("gates")).splitlines()
                          if line.startswith("late "))
    assert sorted(s["file"] for s in report.stray) == ["readme.txt", "shadow_1102_5103_numpy.py",
                                                       "shadow_1102_5104_lstm_ref.py"]
    assert os.listdir(os.path.join(graded["root"], "submitted", "shadow", "gates")) == ["gates.ipynb"]


def test_submissions_are_never_modified(graded):
    with open(ZIP, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == graded["zip_digest"]
    assert _tree_digest(os.path.join(graded["root"], "submitted")) == graded["submitted"]


def test_feedback_keeps_public_tests_and_drops_hidden_ones(graded):
    course = graded["course"]
    html = course.feedback("gates")
    graded_students = [s for s, st in graded["states"].items() if st["status"] == "graded"]
    assert len(html) == len(graded_students)
    for path in html:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        assert "check_sigmoid" in text  # the public test's source
        for hidden in ("seed=31", "seed=101", "HIDDEN TESTS", "D=40, H=300"):
            assert hidden not in text, (path, hidden)


def test_second_run_skips_graded_work_and_forced_regrade_agrees(graded):
    course, states = graded["course"], graded["states"]
    again = course.autograde("gates", progress=False)
    assert again == states
    some = ["full", "swapped-gates", "attack-patch-checkers", "corrupt-json"]
    forced = course.autograde("gates", some, force=True, progress=False)
    for name in some:
        assert forced[name]["status"] == states[name]["status"]
        assert forced[name].get("score") == states[name].get("score")


def test_sandboxes_leave_no_process_or_cgroup_behind(graded):
    # The fork bomb's daemons lived in a pids cgroup and a sandbox folder of this run. A sandbox's
    # cgroup is removed before its folder, and the folder before its lock (grader.sandbox._remove):
    # an empty root means no cgroup, folder or lock of the run is left.
    sandboxes = graded["sandboxes"]
    assert os.path.isdir(sandboxes) and os.listdir(sandboxes) == []


def test_committed_samples_follow_the_solutions(tmp_path):
    """samples/ is what ``python -m grader.samples gates`` builds from solutions/ today."""
    from grader.samples import build

    zip_path, expected_path = build("gates", str(tmp_path))
    for built, committed in ((zip_path, ZIP), (expected_path, os.path.join(SAMPLES, "gates_expected.json"))):
        with open(built, "rb") as new, open(committed, "rb") as old:
            assert new.read() == old.read(), f"{committed} is stale: run python -m grader.samples gates"
