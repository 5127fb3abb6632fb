"""The instructor's commands on the toy course: import rules, interrupted runs, reports, CLI."""
import contextlib
import csv
import dataclasses
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile

import nbformat
import pytest

from grader.course import Course, notebook_problem
from grader.sandbox import Limits
from grader.toy import ASSIGNMENT, SOLUTION_SIGMOID, SOLUTION_SQUARED, write_course

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = Limits(cell_timeout=20, notebook_timeout=120)
# student -> (sigmoid body, squared body, expected autograded score out of 6)
TOY = {
    "ada": (SOLUTION_SIGMOID, SOLUTION_SQUARED, 6.0),
    "ben": ("1.0 / (1.0 + np.exp(x))", SOLUTION_SQUARED, 3.0),  # flipped sign: test_sigmoid fails
    "cy": (SOLUTION_SIGMOID, "np.abs(x) * x", 5.0),  # wrong only for negatives: the hidden test fails
    # squared wrong: public (2) and hidden (1) fail; slow (1.5 s a call), so dee, graded last with one
    # worker, is still running when the interrupted run below is stopped, however fast the others go
    "dee": (SOLUTION_SIGMOID, "__import__('time').sleep(1.5) or x", 3.0),
}


def toy_submission(release: nbformat.NotebookNode, sigmoid: str, squared: str) -> bytes:
    nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ("sigmoid", "squared"):
            body = sigmoid if grade_id == "sigmoid" else squared
            cell.source = f"def {grade_id}(x):\n    return {body}\n"
    return nbformat.writes(nb).encode()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_course")
    write_course(str(root))
    course = Course(str(root), limits=LIMITS, workers=2)
    (path,) = course.release(ASSIGNMENT)
    release = nbformat.read(path, as_version=4)
    lms = root / "download"
    lms.mkdir()
    for n, (student, (sig, sq, _)) in enumerate(TOY.items()):
        (lms / f"{student}_{100 + n}_{200 + n}_toy.ipynb").write_bytes(toy_submission(release, sig, sq))
    return {"root": str(root), "course": course, "release": release, "lms": str(lms)}


def test_import_from_zip_and_folder_agree_and_report_everything(toy, tmp_path):
    release = toy["release"]
    good = toy_submission(release, SOLUTION_SIGMOID, SOLUTION_SQUARED)
    folder = tmp_path / "moodle"
    for moodle in ("Eve_301", "John Smith_304", "John Doe_305", "José García_306"):  # one first name, two students
        (folder / f"{moodle}_assignsubmission_file_").mkdir(parents=True)
        (folder / f"{moodle}_assignsubmission_file_" / "toy.ipynb").write_bytes(good)
    (folder / "Ann Lee_311_assignsubmission_file_toy.ipynb").write_bytes(good)  # Moodle without folders
    wrapped = folder / "toy-12345" / "Bo Chen_312_assignsubmission_file_"  # a download extracted into a folder
    (wrapped / "old").mkdir(parents=True)
    (wrapped / "toy.ipynb").write_bytes(good)
    (wrapped / "old" / "toy.ipynb").write_bytes(good)  # an older copy in a subfolder
    (wrapped / ".ipynb_checkpoints").mkdir()
    (wrapped / ".ipynb_checkpoints" / "toy-checkpoint.ipynb").write_bytes(good)
    (folder / "fay_LATE_302_400_toy.ipynb").write_bytes(good)
    (folder / "ida_LATE_321_498_toy.ipynb").write_bytes(good)  # late, then resubmitted: the later file counts
    (folder / "ida_321_499_toy.ipynb").write_bytes(good)
    (folder / "gus_303_401_toy.ipynb").write_bytes(good)
    (folder / "gus_303_402_toy.ipynb").write_bytes(good)
    (folder / "gus_303_402_helpers.py").write_bytes(b"x = 1\n")
    (folder / "kim_307_410_toy.ipynb").write_bytes(good)
    (folder / "kim_307_411_scratch.ipynb").write_bytes(good)  # a later number, but not the notebook's name
    (folder / "erin_308_412_toy_latest.ipynb").write_bytes(good)  # "_late" in a name is no late mark
    (folder / "toy.ipynb").write_bytes(good)
    (folder / "ivan_309_413_other.ipynb").write_bytes(good)
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._gus_303_402_toy.ipynb").write_bytes(b"\0")
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    reports = []
    for source in (str(archive), str(folder)):
        course = Course(str(tmp_path / f"course_{len(reports)}"))
        for name in (ASSIGNMENT, "other"):
            os.makedirs(os.path.join(course.root, "course", name))
            nbformat.write(release, os.path.join(course.root, "course", name, f"{name}.ipynb"))
        reports.append(course.import_submissions(ASSIGNMENT, source))
        assert course.students(ASSIGNMENT) == ["Ann-Lee-311", "Bo-Chen-312", "Eve-301", "John-Doe-305", "John-Smith-304", "Jose-Garcia-306",
                                               "erin", "fay", "gus", "ida", "kim"]
    zipped, walked = reports
    assert zipped == walked
    assert zipped.late == [{"student": "fay", "file": "fay_LATE_302_400_toy.ipynb"}]
    assert zipped.duplicates == [
        {"student": "gus", "file": "gus_303_401_toy.ipynb", "reason": "another file for toy.ipynb: kept gus_303_402_toy.ipynb"},
        {"student": "ida", "file": "ida_LATE_321_498_toy.ipynb", "reason": "another file for toy.ipynb: kept ida_321_499_toy.ipynb"},
        {"student": "kim", "file": "kim_307_411_scratch.ipynb",
         "reason": "another file for toy.ipynb: kept kim_307_410_toy.ipynb"},
        {"student": "Bo-Chen-312", "file": "toy-12345/Bo Chen_312_assignsubmission_file_/old/toy.ipynb",
         "reason": "another file for toy.ipynb: kept toy-12345/Bo Chen_312_assignsubmission_file_/toy.ipynb"}]  # fmt: skip
    assert {s["file"]: s["reason"] for s in zipped.stray} == {
        "__MACOSX/._gus_303_402_toy.ipynb": "system file",
        "toy-12345/Bo Chen_312_assignsubmission_file_/.ipynb_checkpoints/toy-checkpoint.ipynb": "system file",
        "gus_303_402_helpers.py": "not a notebook (not copied)",
        "toy.ipynb": "no student id in its name",
        "ivan_309_413_other.ipynb": "is other.ipynb, a notebook of assignment 'other'"}
    # Linux zip stores UTF-8 names without zip's UTF-8 flag: read as written, the name gives the same id.
    legacy = tmp_path / "legacy.zip"
    name = "José García".encode()
    with zipfile.ZipFile(legacy, "w") as zf:  # an ASCII name of that length, its bytes replaced below
        zf.writestr(f"{'x' * len(name)}_306_assignsubmission_file_/toy.ipynb", good)
    legacy.write_bytes(legacy.read_bytes().replace(b"x" * len(name), name))
    assert list(course.import_submissions(ASSIGNMENT, str(legacy)).imported) == ["Jose-Garcia-306"]
    # A class's folders zipped from the folder above them: the folders around them all name no student.
    wrapped = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(wrapped, "w") as zf:
        for name in ("2026/class/lin/toy.ipynb", "2026/class/mo/toy.ipynb", "2026/class/mo/old/toy.ipynb",
                     "2026/class/nia_500_600_toy.ipynb", "__MACOSX/2026/class/._nia_500_600_toy.ipynb"):
            zf.writestr(name, good)
    assert sorted(course.import_submissions(ASSIGNMENT, str(wrapped)).imported) == ["lin", "mo", "nia"]
    alone = tmp_path / "alone.zip"  # one student's folder with a copy inside: the folder is the student
    with zipfile.ZipFile(alone, "w") as zf:
        for name in ("pia/toy.ipynb", "pia/old/toy.ipynb"):
            zf.writestr(name, good)
    assert list(course.import_submissions(ASSIGNMENT, str(alone)).imported) == ["pia"]
    # A later import keeps the earlier late marks of the students it does not import again.
    later = tmp_path / "later"
    later.mkdir()
    (later / "hal_310_414_toy.ipynb").write_bytes(good)
    assert course.import_submissions(ASSIGNMENT, str(later)).late == []  # this import's own late files
    assert course.late(ASSIGNMENT) == {"fay"}
    (later / "fay_310_415_toy.ipynb").write_bytes(good)  # fay again, on time
    course.import_submissions(ASSIGNMENT, str(later))
    assert course.late(ASSIGNMENT) == set()
    with pytest.raises(ValueError, match="source must be a .zip file or a folder; .* does not exist"):
        course.import_submissions(ASSIGNMENT, str(tmp_path / "missing.zip"))
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(archive.read_bytes().replace(b"nbformat", b"nbf0rmat"))
    with pytest.raises(ValueError, match="its member .* cannot be read"):
        course.import_submissions(ASSIGNMENT, str(damaged))


def test_import_never_follows_symbolic_links(toy, tmp_path):
    """A link in an imported folder, to a file or a folder outside it, is reported and not followed
    (a link to the solution is no submission); links stored in a zip are refused alike, and a
    special file is not opened."""
    good = toy_submission(toy["release"], SOLUTION_SIGMOID, SOLUTION_SQUARED)
    solution = write_course(str(tmp_path / "instructor"))
    elsewhere = tmp_path / "elsewhere" / "ivy_305_assignsubmission_file_"
    elsewhere.mkdir(parents=True)
    (elsewhere / "toy.ipynb").write_bytes(good)
    folder = tmp_path / "canvas"
    folder.mkdir()
    (folder / "ada_300_400_toy.ipynb").write_bytes(good)
    (folder / "hal_304_404_toy.ipynb").symlink_to(solution)
    (folder / "ivy_305_assignsubmission_file_").symlink_to(elsewhere, target_is_directory=True)
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # as `zip --symlinks` stores them: the target as the content
        zf.write(folder / "ada_300_400_toy.ipynb", "ada_300_400_toy.ipynb")
        for name in ("hal_304_404_toy.ipynb", "ivy_305_assignsubmission_file_"):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, os.readlink(folder / name))
    os.mkfifo(folder / "zed_306_406_toy.ipynb")  # reading it would wait for a writer for ever
    reports = []
    for source in (str(folder), str(archive)):
        course = Course(str(tmp_path / f"course_{len(reports)}"))
        os.makedirs(os.path.join(course.root, "course", ASSIGNMENT))
        nbformat.write(toy["release"], os.path.join(course.root, "course", ASSIGNMENT, "toy.ipynb"))
        reports.append(course.import_submissions(ASSIGNMENT, source))
        assert sorted(os.listdir(os.path.join(course.root, "submitted"))) == ["ada"]  # nothing a link points to
        with open(os.path.join(course.root, "submitted", "ada", ASSIGNMENT, "toy.ipynb"), "rb") as fh:
            assert fh.read() == good
    walked, zipped = reports
    assert walked.imported == zipped.imported == {"ada": ["ada_300_400_toy.ipynb"]}
    assert zipped.stray == [{"file": "hal_304_404_toy.ipynb", "reason": "symbolic link"},
                            {"file": "ivy_305_assignsubmission_file_", "reason": "symbolic link"}]
    assert walked.stray == [*zipped.stray, {"file": "zed_306_406_toy.ipynb", "reason": "not a regular file"}]


def test_notebook_problems_are_named():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("2")])
    data = nbformat.writes(nb)
    assert notebook_problem(data.encode()) == ""
    assert "invalid JSON" in notebook_problem(data[:-5].encode())
    raw = json.loads(data)
    raw["nbformat"] = 3
    assert "format 3" in notebook_problem(json.dumps(raw).encode())
    raw = json.loads(data)
    raw["cells"][1]["id"] = raw["cells"][0]["id"]
    assert "duplicated cell ids" in notebook_problem(json.dumps(raw).encode())
    assert "no list of cells" in notebook_problem(b"[1, 2]")


def test_another_assignments_notebook_is_ungradable_with_its_reason(toy, tmp_path):
    course = Course(str(tmp_path / "course"))
    os.makedirs(os.path.join(course.root, "course", ASSIGNMENT))
    nbformat.write(toy["release"], os.path.join(course.root, "course", ASSIGNMENT, "toy.ipynb"))
    for student, nb in (("ada", toy["release"]), ("zed", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))):
        os.makedirs(os.path.join(course.root, "submitted", student, ASSIGNMENT))
        nbformat.write(nb, os.path.join(course.root, "submitted", student, ASSIGNMENT, "toy.ipynb"))
    assert course._submission_problem(ASSIGNMENT, "ada") == ""
    assert course._submission_problem(ASSIGNMENT, "zed") == (
        "toy.ipynb: none of the cells of toy's toy.ipynb (another assignment's notebook?)")
    # The course's assignments share their instruction cells' ids ("intro", "setup"), not their answers'.
    os.makedirs(os.path.join(course.root, "course", "gates"))
    shutil.copy(os.path.join(REPO, "course", "gates", "gates.ipynb"), os.path.join(course.root, "course", "gates"))
    for student, notebook in (("ada", "gates"), ("zed", "bptt")):
        os.makedirs(os.path.join(course.root, "submitted", student, "gates"))
        shutil.copy(os.path.join(REPO, "course", notebook, f"{notebook}.ipynb"),
                    os.path.join(course.root, "submitted", student, "gates", "gates.ipynb"))
    assert course._submission_problem("gates", "ada") == ""
    assert "none of the cells of gates's gates.ipynb" in course._submission_problem("gates", "zed")


def _cli(root: str, *args: str, **kwargs) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "grader", "--root", root, "--cell-timeout", "20", *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_interrupted_autograde_resumes_without_grading_twice(toy, kernel_processes):
    root, course = toy["root"], toy["course"]
    course.import_submissions(ASSIGNMENT, toy["lms"])
    state_dir = os.path.join(root, "grader_work", ASSIGNMENT, "state")
    run = _cli(root, "--workers", "1", "autograde", ASSIGNMENT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (os.path.isdir(state_dir) and os.listdir(state_dir)):
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the instructor's terminal
    try:
        output, _ = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # name what is still running, then stop it
        left = subprocess.run(["ps", "-o", "pid,ppid,stat,etime,args", "-s", str(run.pid)], capture_output=True,
                              text=True).stdout
        os.killpg(run.pid, signal.SIGKILL)
        output, _ = run.communicate()
        pytest.fail(f"the interrupted run did not end within 120 s; its session's processes:\n{left}\n"
                    f"its output:\n{output[-3000:]}")
    assert run.returncode == 130 and "interrupted; what was saved stays" in output, output[-3000:]
    assert "Traceback" not in output, output[-6000:]  # one line, no worker tracebacks
    deadline = time.monotonic() + 10  # the kernels are killed as their launchers go
    while kernel_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kernel_processes() == []
    before = {f: os.stat(os.path.join(state_dir, f)).st_mtime_ns for f in os.listdir(state_dir)
              if f.endswith(".json")}
    assert 1 <= len(before) < len(TOY)
    states = course.autograde(ASSIGNMENT, progress=False)
    after = {f: os.stat(os.path.join(state_dir, f)).st_mtime_ns for f in before}
    assert after == before  # graded before the interruption: not graded again
    assert {s: st["score"] for s, st in states.items()} == {s: v[2] for s, v in TOY.items()}
    assert all(st["max_score"] == 7.0 for st in states.values())  # 6 autograded + 1 written
    again, _ = _cli(root, "autograde", ASSIGNMENT).communicate(timeout=120)
    assert f"{len(TOY)} submissions unchanged since the last run, kept (--force grades again)" in again, again
    # Interrupted while grading everything again, a run leaves the others without a state: the next run
    # grades them, and every student gets feedback.
    graded = max(os.stat(os.path.join(state_dir, f)).st_mtime_ns for f in os.listdir(state_dir))
    forced = _cli(root, "--workers", "1", "autograde", ASSIGNMENT, "--force", start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
            os.stat(os.path.join(state_dir, f)).st_mtime_ns > graded for f in os.listdir(state_dir)):
        time.sleep(0.2)
    os.killpg(forced.pid, signal.SIGINT)
    output, _ = forced.communicate(timeout=120)
    assert forced.returncode == 130, output[-3000:]
    assert 1 <= len(os.listdir(state_dir)) < len(TOY)
    states = course.autograde(ASSIGNMENT, progress=False)
    assert {s: st["score"] for s, st in states.items()} == {s: v[2] for s, v in TOY.items()}
    assert len(course.feedback(ASSIGNMENT)) == len(TOY)


# The victim's kernel leaves this file in its folder, then sleeps: the sign for the test to kill its grader.
KILL_ME = "kill-my-grader"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _grader_of(pid: int) -> int | None:
    """The process, among this one's children, that ``pid`` descends from (None if none)."""
    while pid > 1:
        parent = _parent(pid)
        if parent == os.getpid():
            return pid
        pid = parent
    return None


def test_a_dead_worker_costs_only_the_submission_it_was_grading(toy, tmp_path, kernel_processes):
    """A grader worker killed (SIGKILL) while it grades one submission breaks its pool: the others,
    started or not, are graded as in a clean run; that one, graded again alone and killed again,
    ends ungradable saying how its worker died; a plain rerun grades nothing again."""
    root = str(tmp_path / "course")
    write_course(root)
    course = Course(root, limits=LIMITS, workers=2)
    course.release(ASSIGNMENT)
    lms = tmp_path / "download"
    lms.mkdir()
    victim = f"open({KILL_ME!r}, 'w').close() or __import__('time').sleep(60) or x"
    # abe, first by name, is graded first, beside ada; ben and cy wait in the queue
    for n, (student, (sig, sq)) in enumerate({"abe": (victim, SOLUTION_SQUARED),
                                              **{s: TOY[s][:2] for s in ("ada", "ben", "cy")}}.items()):
        (lms / f"{student}_{100 + n}_{200 + n}_toy.ipynb").write_bytes(toy_submission(toy["release"], sig, sq))
    course.import_submissions(ASSIGNMENT, str(lms))
    killed, done = [], threading.Event()

    def kill_the_victims_grader() -> None:
        while not done.wait(0.05):
            for pid in kernel_processes():
                with contextlib.suppress(OSError):  # a process that ended meanwhile
                    grader = _grader_of(pid) if os.path.exists(f"/proc/{pid}/cwd/{KILL_ME}") else None
                    if grader is not None and grader not in killed:
                        os.kill(grader, signal.SIGKILL)
                        killed.append(grader)

    killer = threading.Thread(target=kill_the_victims_grader)
    killer.start()
    try:
        states = course.autograde(ASSIGNMENT, progress=False)
    finally:
        done.set()
        killer.join()
    assert len(killed) == 2  # in the pool, then alone
    assert states["abe"]["status"] == "ungradable"
    assert states["abe"]["reason"] == "the grader worker grading it died (killed by signal 9, SIGKILL)"
    assert {s: (st["status"], st.get("score")) for s, st in states.items() if s != "abe"} == {
        s: ("graded", TOY[s][2]) for s in ("ada", "ben", "cy")}
    deadline = time.monotonic() + 10  # the killed workers' kernels go with them
    while kernel_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kernel_processes() == []
    state_dir = os.path.join(root, "grader_work", ASSIGNMENT, "state")
    before = {f: os.stat(os.path.join(state_dir, f)).st_mtime_ns for f in os.listdir(state_dir)}
    assert course.autograde(ASSIGNMENT, progress=False) == states
    assert {f: os.stat(os.path.join(state_dir, f)).st_mtime_ns for f in before} == before


def test_reports_export_and_summary(toy, tmp_path):
    course = toy["course"]
    course.import_submissions(ASSIGNMENT, toy["lms"])  # the same files again: graded states stay valid
    states = course.autograde(ASSIGNMENT, progress=False)
    path = course.export_csv(ASSIGNMENT, str(tmp_path / "grades.csv"))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["student"] for r in rows] == sorted(TOY)
    assert {r["student"]: float(r["score"]) for r in rows} == {s: v[2] for s, v in TOY.items()}
    assert {r["student"]: r["test_squared_hidden"] for r in rows}["cy"] == "0.0"
    summary = course.summary(ASSIGNMENT)
    assert summary["tests"]["test_sigmoid"]["failed"] == 1
    assert summary["tests"]["test_squared_public"]["passed"] == 3
    diagnosed = {m["test"]: (m["message"], m["students"]) for m in summary["mistakes"]}
    assert "sign inside exp is flipped" in diagnosed["test_sigmoid"][0] and diagnosed["test_sigmoid"][1] == 1
    cy = {t["grade_id"]: t for t in states["cy"]["tests"]}["test_squared_hidden"]
    assert cy["hidden"] and cy["message"] == "squared fails on negative x"
    html = course.feedback(ASSIGNMENT)
    with open(next(p for p in html if f"{os.sep}cy{os.sep}" in p), encoding="utf-8") as fh:
        text = fh.read()
    assert "A hidden test failed" in text and "squared fails on negative x" not in text and "-np.arange(4.0)" not in text
    assert "squared returns x**2 elementwise" in text  # the public test stays


def test_cli_help_names_every_command():
    out = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    for command in ("release", "import", "autograde", "feedback", "export", "summary", "demo", "protections"):
        assert command in out
    bad = subprocess.run([sys.executable, "-m", "grader", "--workers", "0", "summary", "toy"], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "workers must be a positive int" in bad.stderr


def test_plain_nbgrader_autograde_uses_the_protections(toy):
    """An instructor's own ``nbgrader autograde`` runs the tests outside the student's kernel too."""
    from nbgrader.api import Gradebook

    root = toy["root"]
    with open(os.path.join(root, "nbgrader_config.py"), "w", encoding="utf-8") as fh:
        fh.write(f"import sys\nsys.path.insert(0, {REPO!r})\nfrom grader.config import course_config\n"
                 f"c = get_config()\nc.merge(course_config({root!r}))\n")
    cheat = ("get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
             "import sys\nsys.excepthook = lambda *a: None\nprint('all tests passed')\n")
    nb = nbformat.reads(toy_submission(toy["release"], "x", "x").decode(), as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid")
    answer.source = cheat + answer.source
    os.makedirs(os.path.join(root, "submitted", "mallory", ASSIGNMENT))
    nbformat.write(nb, os.path.join(root, "submitted", "mallory", ASSIGNMENT, "toy.ipynb"))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", ASSIGNMENT,
                    "--student", "mallory"], cwd=root, env=env, check=True, capture_output=True, timeout=300)
    with Gradebook(toy["course"].config.CourseDirectory.db_url) as gb:
        assert gb.find_submission(ASSIGNMENT, "mallory").score == 0.0
    report = os.path.join(root, "grader_work", "reports", "mallory", ASSIGNMENT, "toy.json")
    with open(report, encoding="utf-8") as fh:
        assert [t["passed"] for t in json.load(fh)["tests"]] == [False, False, False]


def test_the_demo_keeps_to_a_folder_and_a_gradebook_of_its_own(tmp_path, monkeypatch, capsys):
    """Its sample students never reach the class's gradebook ($GRADER_DB_URL), and it replaces only
    a folder that a demo made."""
    from grader import cli

    live = tmp_path / "live.db"
    monkeypatch.setenv("GRADER_DB_URL", f"sqlite:///{live}")
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--output", str(precious)])
    assert exit_.value.code == 2 and "is not empty and no demo made it" in capsys.readouterr().err
    assert (precious / "chapter1.tex").read_text() == "years of work"

    args = cli.build_parser().parse_args(["demo", "--output", str(tmp_path / "demo")])
    course, _ = cli.demo_course(args)
    assert course.config.CourseDirectory.db_url.startswith(f"sqlite:///{tmp_path / 'demo' / 'gradebook.db'}")
    (tmp_path / "demo" / "gradebook.db").write_text("an earlier demo's")
    cli.demo_course(args)  # a folder a demo made is replaced
    assert not (tmp_path / "demo" / "gradebook.db").exists() and not live.exists()


def test_commands_on_an_assignment_not_released_end_in_one_line(tmp_path):
    """A typo or a missing release is one error line and exit status 2, and no submission is marked."""
    root = tmp_path / "fresh"
    write_course(str(root))
    for args, message in ((["release", "nosuch"], "has no folder solutions/nosuch"),
                          (["autograde", ASSIGNMENT], f"run `python -m grader release {ASSIGNMENT}` first"),
                          (["export", "nosuch"], "'nosuch' is not in this course's gradebook"),
                          (["import", ASSIGNMENT, str(tmp_path / "missing.zip")], "release")):
        run = subprocess.run([sys.executable, "-m", "grader", "--root", str(root), *args], cwd=REPO,
                             capture_output=True, text=True)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    assert not (root / "grader_work").exists()


def test_requests_that_cannot_be_met_end_in_one_line_and_leave_nothing(tmp_path):
    """Nothing to import, grade or give feedback on, or a folder as the CSV: one error line, exit status 2."""
    root = tmp_path / "fresh"
    write_course(str(root))
    release = subprocess.run([sys.executable, "-m", "grader", "--root", str(root), "release", ASSIGNMENT], cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert release.returncode == 0, release.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "out").mkdir()
    for args, message in ((["import", ASSIGNMENT, str(tmp_path / "empty")], "no submission found in"),
                          (["autograde", ASSIGNMENT], "no submissions of toy in submitted/: run import first"),
                          (["autograde", ASSIGNMENT, "--student", "nobody"], "no submission of nobody for toy"),
                          (["feedback", ASSIGNMENT], "no graded submission of 'toy' yet: run autograde first"),
                          (["export", ASSIGNMENT, "-o", str(tmp_path / "out")], "is a folder; give the CSV file's name")):
        run = subprocess.run([sys.executable, "-m", "grader", "--root", str(root), *args], cwd=REPO,
                             capture_output=True, text=True)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    assert os.listdir(tmp_path / "out") == [] and not (tmp_path / "out.tmp").exists()


def test_a_submission_no_kernel_started_for_is_graded_again_on_the_next_run(toy, tmp_path, capsys):
    root = tmp_path / "course"
    write_course(str(root))
    # A memory cap no kernel starts under stands for a broken installation.
    course = Course(str(root), limits=dataclasses.replace(LIMITS, memory_mb=1), workers=1)
    course.release(ASSIGNMENT)
    os.makedirs(root / "submitted" / "kay" / ASSIGNMENT)
    (root / "submitted" / "kay" / ASSIGNMENT / "toy.ipynb").write_bytes(
        toy_submission(toy["release"], SOLUTION_SIGMOID, SOLUTION_SQUARED))
    for _ in range(2):
        state = course.autograde(ASSIGNMENT, progress=False)["kay"]
        assert state["status"] == "ungradable" and state["retry"], state
        assert "the next run grades them again" in capsys.readouterr().err


def test_the_grade_table_names_the_answers_left_to_grade_by_hand():
    from grader.course import format_grades

    table = format_grades({
        "ada": {"status": "graded", "score": 10.0, "max_score": 13.0, "reason": "", "needs_manual_grade": ["q1", "q2"]},
        "ben": {"status": "graded", "score": 1.0, "max_score": 13.0, "reason": "", "needs_manual_grade": ["q2"]},
        "cy": {"status": "graded", "score": 0.0, "max_score": 13.0, "reason": "", "needs_manual_grade": []},
        "dee": {"status": "ungradable", "reason": "x" * 300},
    }, late={"ben"}).splitlines()
    assert table[1].split() == ["ada", "graded", "10", "/", "13", "2", "written", "answers", "to", "grade", "by", "hand"]
    assert table[2].split()[5:] == ["late;", "1", "written", "answer", "to", "grade", "by", "hand"]
    assert table[3].split() == ["cy", "graded", "0", "/", "13"]  # answers left blank are scored 0 by nbgrader
    assert table[4].endswith("x…") and len(table[4].split()[-1]) == 160
