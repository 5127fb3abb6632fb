"""The instructor's loop over nbgrader: release, import, autograde, feedback, export, summary.

A :class:`Course` wraps one nbgrader course root (``solutions/`` source,
``course/`` release, ``submitted/``, ``autograded/``, ``feedback/``, the
gradebook) plus the grader's own folder ``grader_work/``:

- ``grader_work/<assignment>/state/<student>.json``: the outcome of each
  submission (graded with its score, or ungradable with the reason), written
  atomically when the submission is done; a later run skips the submissions
  whose state matches their files (resume without grading twice);
- ``grader_work/reports/<student>/<assignment>/<notebook>.json``: every test
  cell's result, hidden failures and their messages included (instructor only);
- ``grader_work/<assignment>/import.json``: what an import took, and what it
  did not (duplicates, stray files, unknown names), with the reasons.

Autograding runs nbgrader's ``Autograde`` (with :class:`grader.trusted.TrustedExecute`)
for many students at once, one worker process per core. A worker that dies
(segfault, out-of-memory kill) breaks its pool, and with it every submission
not yet graded: those no worker had started go to a fresh pool, those being
graded are graded again each in a process of its own, so that only a
submission that kills that process too ends ungradable, with how it died.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import stat
import sys
import tempfile
import time
import unicodedata
import warnings
import zipfile
import zlib

from .config import RELEASE, SOURCE, course_config
from .sandbox import Limits, sandboxes_root

WORK = "grader_work"
# Canvas files: <student>_[LATE_]<user id>_<submission id>_<file name>, the student a login-like name.
_CANVAS = re.compile(r"^([^_/]+)_(late_)?(\d+)_(\d+)_", re.IGNORECASE)
# Moodle: <Full Name>_<participant id>_assignsubmission_<plugin>_ as a folder (/<file name>) or a file's prefix.
_MOODLE = re.compile(r"^(.+?)_(\d+)_assignsubmission_[a-z]+_")
_NUMBERS = re.compile(r"_(\d+)")
# A kernel that never started: the machine's fault, not the submission's (graded again on the next run).
_NO_KERNEL = re.compile(r"Kernel died before replying to kernel_info|NoSuchKernel|No such kernel")
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b(:|$)")
_IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints/")


def _ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` by name: the environment's bin folder must be on PATH."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def _read_json(path: str, default=None):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def notebook_problem(data: bytes) -> str:
    """Why a submitted notebook cannot be graded ("" when it can)."""
    import nbformat

    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not a notebook: invalid JSON ({exc})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return "not a notebook: no list of cells"
    if raw.get("nbformat") != 4:
        return f"notebook format {raw.get('nbformat')!r}; nbgrader needs format 4"
    ids = [c.get("id") for c in raw["cells"] if isinstance(c, dict) and c.get("id") is not None]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        return f"duplicated cell ids {', '.join(map(repr, duplicated))}"
    try:
        nbformat.validate(nbformat.reads(data.decode("utf-8"), as_version=4))
    except nbformat.ValidationError as exc:
        return f"invalid notebook: {exc.message}"
    return ""


@dataclasses.dataclass
class ImportReport:
    """What an import took (``imported``: student -> file) and what it left, with reasons."""

    imported: dict = dataclasses.field(default_factory=dict)
    late: list = dataclasses.field(default_factory=list)
    duplicates: list = dataclasses.field(default_factory=list)
    stray: list = dataclasses.field(default_factory=list)


def _grade_worker(root: str, config_kwargs: dict, assignment: str, student: str) -> dict:
    """Autograde one submission with nbgrader (in a worker process)."""
    _ensure_tools_on_path()
    # nbgrader's gradebook triggers these SQLAlchemy warnings on every submission; they are harmless. A
    # notebook without cell ids gets them from nbformat as nbgrader reads it (notebook_problem checked it).
    warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")
    from nbformat.warnings import MissingIDFieldWarning

    warnings.filterwarnings("ignore", category=MissingIDFieldWarning)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    started = time.monotonic()
    config = course_config(root, **config_kwargs)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.autograde(assignment, student, force=True, create=True)
    return {"success": bool(result.get("success")), "log": result.get("log", ""), "error": result.get("error", ""),
            "seconds": round(time.monotonic() - started, 3)}


def _grade_pooled(running: str, root: str, config_kwargs: dict, assignment: str, student: str) -> dict:
    """:func:`_grade_worker` in a pool's worker, leaving the file ``running/<student>`` while it grades."""
    mark = os.path.join(running, student)
    open(mark, "w").close()
    result = _grade_worker(root, config_kwargs, assignment, student)
    os.remove(mark)
    return result


def _grade_and_send(conn, root: str, config_kwargs: dict, assignment: str, student: str) -> None:
    """:func:`_grade_worker` in a process of its own, which sends the result over ``conn``."""
    try:
        result = _grade_worker(root, config_kwargs, assignment, student)
    except Exception as exc:
        result = _worker_failed(f"failed: {exc!r}")
    conn.send(result)


def _worker_failed(how: str) -> dict:
    """The result of a submission whose grader worker failed or died (``how``)."""
    return {"success": False, "log": "", "error": f"the grader worker grading it {how}"}


def _exit_status(exitcode: int) -> str:
    """A process's exit code in words (negative: the signal that killed it)."""
    if exitcode < 0:
        return f"killed by signal {-exitcode}, {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _failure_reason(result: dict) -> str:
    """The exception that stopped nbgrader, from its traceback in the log, or what befell its worker."""
    lines = [line.strip() for line in (result["log"] + "\n" + result["error"]).splitlines()]
    raised = [line for line in lines if _RAISED.match(line) and not line.startswith("nbgrader.converters.base.")]
    errors = [line for line in lines if line.startswith(("[ERROR]", "the grader worker")) and "Please see" not in line]
    return ((raised or errors or ["nbgrader autograde failed"])[-1])[:500]


class Course:
    """One nbgrader course root. ``workers`` defaults to the number of cores."""

    def __init__(self, root: str, *, db_url: str | None = None, limits: Limits | None = None,
                 workers: int | None = None, hidden_paths: tuple = ()) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.root = os.path.abspath(root)
        self.workers = workers or os.cpu_count() or 1
        self.config_kwargs = {"db_url": db_url, "limits": limits or Limits(),
                              "report_dir": os.path.join(self.root, WORK, "reports"),
                              "hidden_paths": tuple(hidden_paths)}
        self.config = course_config(self.root, **self.config_kwargs)
        _ensure_tools_on_path()

    # -- nbgrader -------------------------------------------------------------
    def api(self):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        return NbGraderAPI(coursedir=CourseDirectory(config=self.config), config=self.config)

    def _check(self, result: dict, what: str) -> None:
        if not result.get("success"):
            raise RuntimeError(f"nbgrader {what} failed:\n{result.get('error') or result.get('log')}")

    def release(self, assignment: str) -> list:
        """``nbgrader generate_assignment``: ``solutions/<a>`` to ``course/<a>``; the notebooks' paths."""
        if not os.path.isdir(os.path.join(self.root, SOURCE, assignment)):
            raise ValueError(f"assignment {assignment!r} has no folder {SOURCE}/{assignment} in {self.root}")
        self._check(self.api().generate_assignment(assignment, force=True, create=True), "generate_assignment")
        return self.notebooks(assignment)

    def notebooks(self, assignment: str) -> list:
        folder = os.path.join(self.root, RELEASE, assignment)
        return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".ipynb"))

    def feedback(self, assignment: str) -> list:
        """``nbgrader generate_feedback`` for every graded student; the HTML files.

        A graded student without an HTML file afterwards (their autograded
        notebook is gone) is an error naming them: grade them again.
        """
        graded = sorted(s for s, state in self.states(assignment).items() if state["status"] == "graded")
        if not graded:
            raise ValueError(f"no graded submission of {assignment!r} yet: run autograde first")
        self._check(self.api().generate_feedback(assignment), "generate_feedback")
        folder = os.path.join(self.root, "feedback")
        html = sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
                      if f.endswith(".html") and os.path.basename(d) == assignment)
        missing = [s for s in graded if not os.path.isdir(os.path.join(folder, s, assignment))]
        if missing:
            raise ValueError(f"no feedback for {', '.join(missing)}: their autograded notebooks are missing; run "
                             f"autograde {assignment} --force --student <id> for each")
        return html

    # -- import ---------------------------------------------------------------
    def import_submissions(self, assignment: str, source: str) -> ImportReport:
        """Copy the notebooks of an LMS zip or folder into ``submitted/<student>/<assignment>/``.

        The student id (:func:`student_of`) comes from the top folder's name or
        the file's: Moodle's "Full Name_<participant id>_assignsubmission_file_"
        folders give "Full-Name-<id>" (two students of one name stay apart),
        Canvas's "<student>_[LATE_]<ids>_<file>" files the student field and the
        late mark, any other "<student>_..." name or "<student>/" folder its
        first field; folders around every notebook ("class/" of "class/ada/...",
        "class/ben/...") are passed over. Several files for one notebook: one named as the notebook
        wins, then the highest submission numbers in the name, then the last by
        name; the others are reported as duplicates. A notebook named as another
        assignment's, and every other file, is reported as stray and not
        copied: nothing a student ships next to the notebook reaches the
        grader's kernels. Symbolic links (to files or folders, in a folder or a
        zip) are reported as stray and never followed: a link to a solution or
        the gradebook is no submission. The late marks of earlier imports stay
        for the students this one does not import again.
        """
        names = {os.path.basename(p) for p in self.notebooks(assignment)}
        if not names:
            raise ValueError(f"assignment {assignment!r} has no released notebook; run release first")
        release = os.path.join(self.root, RELEASE)
        others = {name: other for other in sorted(os.listdir(release)) if other != assignment
                  and os.path.isdir(os.path.join(release, other))
                  for name in os.listdir(os.path.join(release, other)) if name.endswith(".ipynb")}  # fmt: skip
        report = ImportReport()
        chosen, late = {}, set()  # late: the files marked late
        files = list(_entries(source))
        wrapper = _wrapper([entry for entry, data in files if _unread(entry, data) is None])
        for entry, data in files:
            base = os.path.basename(entry)
            reason = _unread(entry, data)
            if reason:
                report.stray.append({"file": entry, "reason": reason})
                continue
            student, is_late = student_of(entry[len(wrapper):])
            notebook = _notebook_for(base, names)
            elsewhere = None if any(base.endswith(n) for n in names) else next(
                (n for n in others if base.endswith(n)), None)  # fmt: skip
            if student is None:
                report.stray.append({"file": entry, "reason": "no student id in its name"})
                continue
            if notebook is None or elsewhere:
                why = f"is {elsewhere}, a notebook of assignment {others[elsewhere]!r}" if elsewhere else (
                    f"matches none of {sorted(names)}")
                report.stray.append({"file": entry, "reason": why})
                continue
            key = (student, notebook)
            if is_late:
                late.add(entry)
            # the notebook's own name, then the shallowest (not a copy in a subfolder), then the latest numbers
            order = (base.endswith(notebook), -entry.count("/"), [int(n) for n in _NUMBERS.findall(entry)], entry)
            if key in chosen:
                keep, drop = sorted([chosen[key], (order, entry, data)], key=lambda c: c[0], reverse=True)
                report.duplicates.append({"student": student, "file": drop[1],
                                          "reason": f"another file for {notebook}: kept {keep[1]}"})
                chosen[key] = keep
            else:
                chosen[key] = (order, entry, data)
        for (student, notebook), (_, entry, data) in sorted(chosen.items()):
            dest = os.path.join(self.root, "submitted", student, assignment, notebook)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest + ".tmp", "wb") as fh:
                fh.write(data)
            os.replace(dest + ".tmp", dest)
            report.imported.setdefault(student, []).append(entry)
            if entry in late:
                report.late.append({"student": student, "file": entry})
        late_path = os.path.join(self.root, WORK, assignment, "late.json")
        kept = [e for e in _read_json(late_path, []) if e["student"] not in report.imported]
        _write_json(late_path, sorted(kept + report.late, key=lambda e: e["student"]))
        _write_json(os.path.join(self.root, WORK, assignment, "import.json"), dataclasses.asdict(report))
        return report

    # -- autograde ------------------------------------------------------------
    def students(self, assignment: str) -> list:
        folder = os.path.join(self.root, "submitted")
        if not os.path.isdir(folder):
            return []
        return sorted(s for s in os.listdir(folder) if os.path.isdir(os.path.join(folder, s, assignment)))

    def _state_path(self, assignment: str, student: str) -> str:
        return os.path.join(self.root, WORK, assignment, "state", f"{student}.json")

    def _fingerprint(self, assignment: str, student: str) -> str:
        folder = os.path.join(self.root, "submitted", student, assignment)
        digest = hashlib.sha256()
        for name in sorted(os.listdir(folder)):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(folder, name), "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
        return digest.hexdigest()

    def autograde(self, assignment: str, students: list | None = None, *, force: bool = False,
                  progress: bool = True) -> dict:
        """Autograde the submissions in parallel; return ``{student: state}``.

        A submission whose state file matches its files is not graded again
        unless ``force``. Every submission ends as ``graded`` (with its score)
        or ``ungradable`` (with the reason); one failing never stops the others,
        not even by killing its worker process (see the module's docstring).
        """
        from tqdm import tqdm

        known = self.students(assignment)
        unknown = sorted(set(students or ()) - set(known))
        if unknown:
            raise ValueError(f"no submission of {', '.join(unknown)} for {assignment} in submitted/ "
                             f"(run import first; submissions there: {len(known)})")
        students = students if students is not None else known
        if not students:
            raise ValueError(f"no submissions of {assignment} in submitted/: run import first")
        states, todo, kept = {}, [], 0
        for student in students:
            fingerprint = self._fingerprint(assignment, student)
            state = _read_json(self._state_path(assignment, student))
            if not force and state and state.get("fingerprint") == fingerprint and not state.get("retry"):
                states[student] = state
                kept += 1
                continue
            problem = self._submission_problem(assignment, student)
            if problem:
                states[student] = self._save_state(assignment, student, fingerprint, "ungradable", problem)
            else:
                todo.append((student, fingerprint))
        for student, _ in todo:  # graded anew: until then no state, so an interrupted run grades them again
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._state_path(assignment, student))
        if kept and progress:
            print(f"autograde {assignment}: {kept} submission{'s' if kept > 1 else ''} unchanged since the "
                  "last run, kept (--force grades again)", file=sys.stderr)
        if todo:
            sandboxes_root()  # a folder the workers cannot use stops the run here, not each submission
            bar = tqdm(total=len(todo), desc=f"autograde {assignment}", unit="nb", disable=not progress)
            try:
                alone = []
                while todo:  # a broken pool: those no worker had started go to a fresh pool
                    todo, started = self._grade_in_pool(assignment, todo, states, bar)
                    if not started:  # it broke before grading anything: none to blame, each goes alone
                        todo, started = [], todo
                    alone += started
                for student, fingerprint in alone:
                    states[student] = self._save_result(assignment, student, fingerprint,
                                                        self._grade_alone(assignment, student))
                    bar.update()
            finally:
                bar.close()
        no_kernel = [s for s, st in states.items() if st.get("retry")]
        if no_kernel:
            print(f"autograde {assignment}: no kernel started for {len(no_kernel)} submission"
                  f"{'s' if len(no_kernel) > 1 else ''} ({states[no_kernel[0]]['reason']}): check the installation "
                  "and `python -m grader protections`; the next run grades them again", file=sys.stderr)
        return dict(sorted(states.items()))

    def _grade_in_pool(self, assignment: str, todo: list, states: dict, bar) -> tuple:
        """Grade ``todo`` (``(student, fingerprint)`` pairs) in a pool of workers, saving each outcome in ``states``.

        A worker that dies breaks the pool, and every submission not graded
        yet fails with it: returns those, split into ``(not started, started)``
        by a worker (the dead one's among the started); both empty if none died.
        """
        context = multiprocessing.get_context("spawn")
        broken = []
        with (tempfile.TemporaryDirectory(prefix="grading-") as running,
              concurrent.futures.ProcessPoolExecutor(min(self.workers, len(todo)), mp_context=context) as pool):
            futures = {pool.submit(_grade_pooled, running, self.root, self.config_kwargs, assignment, s): (s, f)
                       for s, f in todo}
            try:
                for future in concurrent.futures.as_completed(futures):
                    student, fingerprint = futures[future]
                    try:
                        result = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        broken.append((student, fingerprint))
                        continue
                    except Exception as exc:
                        result = _worker_failed(f"failed: {exc!r}")
                    states[student] = self._save_result(assignment, student, fingerprint, result)
                    bar.update()
            except KeyboardInterrupt:
                # Ctrl-C reached the workers too; drop the queued submissions (a later run grades them)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()  # every worker gone: no file in running/ changes any more
            started = [b for b in broken if os.path.exists(os.path.join(running, b[0]))]
        return [b for b in broken if b not in started], started

    def _grade_alone(self, assignment: str, student: str) -> dict:
        """Grade one submission in a process of its own; if that process dies, a failed result saying how."""
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_grade_and_send, args=(sender, self.root, self.config_kwargs,
                                                                assignment, student))
        process.start()
        sender.close()  # the process's copy is the only one left: its end is the end of the pipe
        try:
            with receiver:
                result = receiver.recv()
        except EOFError:  # it died before sending a result
            result = None
        finally:
            process.join()  # after the receiver closed: one interrupted while sending ends too
        return result or _worker_failed(f"died ({_exit_status(process.exitcode)})")

    def _save_result(self, assignment: str, student: str, fingerprint: str, result: dict) -> dict:
        """Save a submission as graded, or as ungradable with the reason nbgrader failed."""
        if result["success"]:
            return self._save_graded(assignment, student, fingerprint, result["seconds"])
        reason = _failure_reason(result)
        extra = {"retry": True} if _NO_KERNEL.search(reason) else {}
        return self._save_state(assignment, student, fingerprint, "ungradable", reason, **extra)

    def _submission_problem(self, assignment: str, student: str) -> str:
        """Why the submission cannot be graded ("" when it can): a notebook that is none (see
        :func:`notebook_problem`), or that holds none of its release's graded cells (another one)."""
        folder = os.path.join(self.root, "submitted", student, assignment)
        problems = []
        for name in sorted(os.listdir(folder)):
            if name.endswith(".ipynb"):
                data = _read_bytes(os.path.join(folder, name))
                problem = notebook_problem(data)
                release = os.path.join(self.root, RELEASE, assignment, name)
                if not problem and os.path.isfile(release) and _grade_ids(_read_bytes(release)) and not (
                        _grade_ids(data) & _grade_ids(_read_bytes(release))):
                    problem = f"none of the cells of {assignment}'s {name} (another assignment's notebook?)"
                if problem:
                    problems.append(f"{name}: {problem}")
        return "; ".join(problems)

    def _save_state(self, assignment, student, fingerprint, status, reason="", **extra) -> dict:
        state = {"student": student, "assignment": assignment, "status": status, "reason": reason,
                 "fingerprint": fingerprint, **extra}
        _write_json(self._state_path(assignment, student), state)
        return state

    def _save_graded(self, assignment: str, student: str, fingerprint: str, seconds: float) -> dict:
        from nbgrader.api import Gradebook

        tests, needs_manual, stopped, executing = [], [], "", 0.0
        with Gradebook(self.config.CourseDirectory.db_url) as gb:
            submission = gb.find_submission(assignment, student)
            score, max_score = submission.score, submission.max_score
            for notebook in submission.notebooks:
                report = _read_json(os.path.join(self.root, WORK, "reports", student, assignment,
                                                 f"{notebook.name}.json"), {"tests": [], "kernel_stopped": ""})
                outcome = {t["grade_id"]: t for t in report["tests"]}
                for grade in notebook.grades:
                    if grade.cell_type == "code" and not grade.needs_manual_grade:
                        t = outcome.get(grade.name, {})
                        tests.append({"notebook": notebook.name, "grade_id": grade.name, "score": grade.score,
                                      "max_score": grade.max_score, "ename": t.get("ename", ""),
                                      "message": t.get("message", ""), "hidden": t.get("hidden", False)})
                needs_manual += [g.name for g in notebook.grades if g.needs_manual_grade]
                stopped = stopped or report.get("kernel_stopped", "")
                executing += report.get("seconds", 0.0)
        return self._save_state(assignment, student, fingerprint, "graded", stopped, score=score,
                                max_score=max_score, tests=tests, needs_manual_grade=needs_manual,
                                seconds={"nbgrader": seconds, "execution": executing})

    # -- reports --------------------------------------------------------------
    def states(self, assignment: str) -> dict:
        folder = os.path.join(self.root, WORK, assignment, "state")
        if not os.path.isdir(folder):
            return {}
        return {f[:-5]: _read_json(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.endswith(".json")}

    def late(self, assignment: str) -> set:
        """The students whose imported file is late (its name says so, as Canvas downloads do), over every import."""
        return {entry["student"] for entry in _read_json(os.path.join(self.root, WORK, assignment, "late.json"), [])}

    def export_csv(self, assignment: str, path: str) -> str:
        """One row per submission: status, score, max score, late ("yes" or ""), points per test, reason."""
        if os.path.isdir(path) or path.endswith(os.sep):
            raise ValueError(f"{path} is a folder; give the CSV file's name")
        states, late = self.states(assignment), self.late(assignment)
        test_ids = sorted({t["grade_id"] for s in states.values() for t in s.get("tests", [])})
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["student", "status", "score", "max_score", "late", *test_ids, "reason"])
        for student, s in states.items():
            points = {t["grade_id"]: t["score"] for t in s.get("tests", [])}
            writer.writerow([student, s["status"], s.get("score", ""), s.get("max_score", ""),
                             "yes" if student in late else "", *[points.get(t, "") for t in test_ids],
                             s.get("reason", "")])
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        os.replace(path + ".tmp", path)
        return path

    def summary(self, assignment: str, top: int = 10) -> dict:
        """Points per test across the class and the most common diagnosed mistakes.

        A mistake is the first line of a failing test's message (the checkers'
        diagnosis, e.g. "forget and input gate blocks look swapped"). The most
        common come first; among equally common ones, the checkers' diagnoses
        (failed assertions) before other errors (a timeout, a NameError).
        """
        states = self.states(assignment)
        per_test = collections.defaultdict(lambda: {"max_score": 0.0, "points": 0.0, "passed": 0, "failed": 0})
        mistakes = collections.Counter()
        for s in states.values():
            for t in s.get("tests", []):
                row = per_test[t["grade_id"]]
                row["max_score"] = t["max_score"]
                row["points"] += t["score"] or 0.0
                ok = (t["score"] or 0.0) >= t["max_score"]
                row["passed" if ok else "failed"] += 1
                if not ok and t["message"]:
                    first_line = t["message"].strip().splitlines()[0][:200]
                    mistakes[(t.get("ename") != "AssertionError", t["grade_id"], first_line)] += 1
        graded = [s for s in states.values() if s["status"] == "graded"]
        return {
            "submissions": len(states),
            "graded": len(graded),
            "ungradable": {k: s["reason"] for k, s in states.items() if s["status"] != "graded"},
            "tests": {k: {**v, "mean": v["points"] / max(1, v["passed"] + v["failed"])} for k, v in sorted(per_test.items())},
            "mistakes": [{"test": test, "message": message, "students": n}
                         for (_, test, message), n in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        }


def format_summary(summary: dict) -> str:
    """The class summary as Markdown."""
    lines = [f"# Class summary: {summary['graded']} graded of {summary['submissions']} submissions", "",
             "| test | max | mean | passed | failed |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, t in summary["tests"].items():
        lines.append(f"| {name} | {t['max_score']:g} | {t['mean']:.2f} | {t['passed']} | {t['failed']} |")
    lines += ["", "## Most common diagnosed mistakes", ""]
    lines += [f"- {m['students']} x {m['test']}: {m['message']}" for m in summary["mistakes"]] or ["- none"]
    if summary["ungradable"]:
        lines += ["", "## Ungradable submissions", ""]
        lines += [f"- {student}: {reason}" for student, reason in summary["ungradable"].items()]
    return "\n".join(lines) + "\n"


def format_grades(states: dict, late: set = frozenset()) -> str:
    """The grade table as fixed-width text; the detail says "late" for the students in ``late`` and
    names the answers still to grade by hand (nbgrader scores an answer left as released 0 without asking)."""
    rows = [("student", "status", "score", "detail")]
    for student, s in states.items():
        score = f"{s['score']:g} / {s['max_score']:g}" if s["status"] == "graded" else "-"
        detail = ["late" if student in late else "", s.get("reason", "")]
        manual = len(s.get("needs_manual_grade", []))
        if manual:
            detail.append(f"{manual} written answer{'s' if manual > 1 else ''} to grade by hand")
        text = "; ".join(d for d in detail if d)
        rows.append((student, s["status"], score, text if len(text) <= 160 else text[:159] + "…"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows)


def _slug(name: str) -> str:
    """``name`` as a student id: accents dropped, runs of other characters than letters, digits, "." and "-" as "-"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", ascii_name).strip("-.")


def student_of(entry: str) -> tuple[str | None, bool]:
    """``(student id or None, late)`` for a file at ``entry`` ("folder/.../file") of an LMS download.

    Moodle's "Full Name_<participant id>_assignsubmission_file_" folders (at
    any depth) or file name prefixes give "Full-Name-<id>"; Canvas's "<student>_[LATE_]<user id>_<submission id>_<file>"
    files give "<student>" and the late mark; otherwise a folder's name or,
    for a file at the top, the part of its name before the first "_".
    """
    top, _, rest = entry.partition("/")
    moodle = next(filter(None, map(_MOODLE.match, entry.split("/"))), None)
    if moodle:
        return _slug(f"{moodle.group(1)}-{moodle.group(2)}") or None, False
    canvas = _CANVAS.match(os.path.basename(entry))
    if canvas:
        return _slug(canvas.group(1)) or None, bool(canvas.group(2))
    field = top if rest else top.partition("_")[0] if "_" in top else ""
    return _slug(field) or None, False


def _unread(entry: str, data: bytes | str) -> str | None:
    """Why a file of a download is not read as a notebook (``data`` is that reason already for a
    symbolic link or a special file), or None."""
    base = os.path.basename(entry)
    if isinstance(data, str):
        return data
    if any(part in entry for part in _IGNORED) or base.startswith("."):
        return "system file"
    return None if base.endswith(".ipynb") else "not a notebook (not copied)"


def _wrapper(notebooks: list) -> str:
    """The folders around every notebook of a download that name no student: "class/" of
    "class/ada/gates.ipynb" and "class/ben/gates.ipynb", when the notebooks, read without them, name
    two students or more and none is left without a name; else ""."""
    prefix = ""
    while notebooks:
        top = notebooks[0][len(prefix):].partition("/")[0] + "/"
        inside = [e[len(prefix) + len(top):] for e in notebooks if e[len(prefix):].startswith(top)]
        if len(inside) < len(notebooks):
            break
        students = {student_of(e)[0] for e in inside}
        if None in students or len(students) < 2:
            break
        prefix += top
    return prefix


def _notebook_for(filename: str, names: set) -> str | None:
    """The released notebook a submitted file stands for (the only one, or by name suffix)."""
    if len(names) == 1:
        return next(iter(names))
    matches = [n for n in names if filename.endswith(n) or filename.endswith(n.replace(".ipynb", "") + ".ipynb")]
    return matches[0] if len(matches) == 1 else None


def _grade_ids(data: bytes) -> set:
    """The nbgrader ids of the answer and graded cells of a notebook (valid JSON, format 4); not of the
    locked instruction and setup cells, whose ids ("intro", "setup") assignments share."""
    cells = json.loads(data.decode("utf-8")).get("cells", [])
    marks = [c["metadata"]["nbgrader"] for c in cells if isinstance(c, dict)
             and isinstance(c.get("metadata", {}).get("nbgrader"), dict)]  # fmt: skip
    return {m.get("grade_id") for m in marks if m.get("solution") or m.get("grade")} - {None}


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _entries(source: str):
    """``(relative path, bytes)`` for each file of a zip or a folder, or, for an entry that is not
    read, the reason: a symbolic link in a folder is never followed, nor one stored in a zip read as
    a file, and a special file (a FIFO would block the reading) is not opened."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.flag_bits & 0x800:  # no UTF-8 flag: zipfile read the name as cp437
                    with contextlib.suppress(UnicodeError):
                        info.filename = info.filename.encode("cp437").decode("utf-8")
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if stat.S_ISLNK(info.external_attr >> 16):
                    yield info.filename, "symbolic link"
                elif not info.is_dir():
                    try:
                        data = archive.read(info)
                    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                        raise ValueError(f"{source}: its member {info.filename} cannot be read ({exc}); "
                                         "nothing was imported; download the archive again") from None
                    yield info.filename, data
    elif os.path.isdir(source):
        # os.walk lists a link to a folder among the folders, without entering it
        paths = [os.path.join(folder, name) for folder, dirs, files in os.walk(source)
                 for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]]
        for rel, path in sorted((os.path.relpath(p, source).replace(os.sep, "/"), p) for p in paths):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                yield rel, "symbolic link"
            elif not stat.S_ISREG(mode):
                yield rel, "not a regular file"
            else:
                yield rel, _read_bytes(path)
    elif os.path.exists(source):
        raise ValueError(f"source must be a .zip file or a folder; {source!r} is neither (a damaged download?)")
    else:
        raise ValueError(f"source must be a .zip file or a folder; {source!r} does not exist")
