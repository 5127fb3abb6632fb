"""Autograde throughput: ``python -m grader`` (parallel, sandboxed) against serial plain nbgrader.

    python benchmarks/bench_autograde.py [--submissions 40] [--workers N] [--copies 6]

Both grade the same N submissions of the gates assignment in one run, each in
a fresh course root released from ``solutions/gates``: the full solution and
the sample mistakes of ``samples/gates.zip``, cycled. The peer is ``nbgrader
autograde gates`` with nbgrader's defaults (one kernel per notebook, in turn,
no sandbox). Printed: both wall times, the throughput ratio, the grader's
per-notebook overhead beyond execution (nbgrader's bookkeeping around
``TrustedExecute``: worker wall per notebook minus the time spent starting
the kernel and running cells and tests), the load average (wall-clock ratios
depend on what else the machine runs), and the projected wall time for 300
students x 4 assignments.

The projection grades, after the comparison, ``--copies`` copies of the
solution notebook of each graded assignment (gates, bptt, gru,
sequence_tasks) with the same workers, and takes each assignment's mean
worker time per notebook (without each worker's first notebook, which also
imports the grader's modules): 300 x (the four means added) / workers, times the
gates run's wall per notebook over its mean worker time / workers (the pool's
start and the workers' contention for the cores). A complete submission runs
every cell, so the solutions are the costly case; blank and broken ones stop
sooner.

That factor charges the run's start-up (the workers' processes, their
zygotes' imports, each worker's first notebook), which a run pays once, to
every notebook. A second projection separates the two: the first FEW
submissions are graded again in a run of their own, the difference of the
two walls gives the rate once running and the start-up, and a class costs 4
start-ups plus its notebooks at that rate.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from grader.course import Course  # noqa: E402
from grader.sandbox import describe_protections  # noqa: E402

KINDS = ("full", "swapped-gates", "missing-bias", "h-c-swapped", "sigmoid-sign", "count-no-bias",
         "calls-reference", "blank")
ASSIGNMENTS = ("gates", "bptt", "gru", "sequence_tasks")
STUDENTS = 300
FEW = 8  # submissions of the second, short run that separates a run's start-up from its rate


def _course(root: str, assignment: str, submissions: list, workers: int = 1) -> Course:
    """A course root released from ``solutions/<assignment>``, one student per notebook of ``submissions`` (bytes)."""
    shutil.copytree(os.path.join(REPO, "solutions", assignment), os.path.join(root, "solutions", assignment))
    course = Course(root, workers=workers)
    course.release(assignment)
    for n, notebook in enumerate(submissions):
        dest = os.path.join(root, "submitted", f"s{n:03d}", assignment, f"{assignment}.ipynb")
        os.makedirs(os.path.dirname(dest))
        with open(dest, "wb") as fh:
            fh.write(notebook)
    return course


def _gates_samples(submissions: int) -> list:
    """The full solution and the sample mistakes of samples/gates.zip, cycled."""
    with zipfile.ZipFile(os.path.join(REPO, "samples", "gates.zip")) as archive:
        by_kind = {name.split("_")[0]: archive.read(name) for name in archive.namelist() if name.endswith(".ipynb")}
    return [by_kind[KINDS[n % len(KINDS)]] for n in range(submissions)]


def _solution(assignment: str) -> bytes:
    """The solution notebook of ``assignment`` as a student would hand it in: answers filled, no outputs."""
    nb = nbformat.read(os.path.join(REPO, "solutions", assignment, f"{assignment}.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb).encode()


def _worker_seconds(states: dict, drop: int = 0) -> tuple:
    """Mean worker wall per graded notebook and mean execution (kernel start, cells, tests) in it,
    without the ``drop`` slowest notebooks."""
    graded = sorted((s for s in states.values() if s["status"] == "graded"), key=lambda s: s["seconds"]["nbgrader"])
    kept = graded[:len(graded) - drop]
    if not kept:
        raise RuntimeError(f"{len(graded)} submissions graded, {drop} dropped: "
                           + "; ".join(s["reason"] for s in states.values()))
    return (statistics.mean(s["seconds"]["nbgrader"] for s in kept),
            statistics.mean(s["seconds"]["execution"] for s in kept))


def per_assignment(tmp: str, workers: int, copies: int) -> dict:
    """``{assignment: (worker s, execution s)}`` per solution notebook, ``copies`` of each graded by ``workers``.

    Each worker's first notebook also imports the grader's own modules; the ``workers``
    slowest notebooks are left out, so the figures are those of a worker in its stride."""
    if copies <= workers:
        raise ValueError(f"copies must exceed workers ({workers}) to leave a warm notebook, got {copies}")
    seconds = {}
    for assignment in ASSIGNMENTS:
        course = _course(os.path.join(tmp, f"solution-{assignment}"), assignment, [_solution(assignment)] * copies,
                         workers)
        seconds[assignment] = _worker_seconds(course.autograde(assignment, progress=False), drop=workers)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--copies", type=int, default=6, help="solution notebooks per assignment for the projection")
    args = parser.parse_args()
    if args.submissions <= FEW:
        parser.error(f"--submissions must exceed {FEW}, the short run that measures the start-up")
    print(describe_protections())
    with tempfile.TemporaryDirectory() as tmp:
        tool_root, plain_root = os.path.join(tmp, "tool"), os.path.join(tmp, "plain")
        samples = _gates_samples(args.submissions)
        tool = _course(tool_root, "gates", samples, args.workers)
        _course(plain_root, "gates", samples)
        with open(os.path.join(plain_root, "nbgrader_config.py"), "w") as fh:
            fh.write("c = get_config()\nc.CourseDirectory.source_directory = 'solutions'\n"
                     "c.CourseDirectory.release_directory = 'course'\n")
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}

        start = time.perf_counter()
        states = tool.autograde("gates", progress=False)
        t_tool = time.perf_counter() - start
        few = _course(os.path.join(tmp, "few"), "gates", samples[:FEW], args.workers)
        start = time.perf_counter()
        few.autograde("gates", progress=False)
        t_few = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", "gates"],
                       cwd=plain_root, env=env, check=True, capture_output=True)
        t_plain = time.perf_counter() - start
        solutions = per_assignment(tmp, args.workers, args.copies)

    graded = [s for s in states.values() if s["status"] == "graded"]
    worker, execution = _worker_seconds(states)
    overhead = worker - execution
    per_notebook = t_tool / args.submissions
    wall_factor = per_notebook / (worker / args.workers)
    class_work = STUDENTS * sum(w for w, _ in solutions.values()) / args.workers  # worker s, 2 workers at once
    projected = class_work * wall_factor / 60
    # The same, with the start-up a run pays once (the workers' processes, their zygotes' imports, each
    # worker's first notebook) apart from the steady rate, from the two runs' walls.
    rate = (t_tool - t_few) / (args.submissions - FEW)  # wall s per notebook once running
    startup = t_few - FEW * rate
    steady_factor = rate / (_worker_seconds(states, drop=args.workers)[0] / args.workers)
    projected_steady = (len(ASSIGNMENTS) * startup + class_work * steady_factor) / 60
    print(f"submissions: {args.submissions} ({len(graded)} graded), workers: {args.workers}, cores: {os.cpu_count()}")
    print("| runner | wall (s) | s / notebook |")
    print("| --- | ---: | ---: |")
    print(f"| python -m grader autograde ({args.workers} workers) | {t_tool:.1f} | {per_notebook:.2f} |")
    print(f"| nbgrader autograde (serial, no sandbox) | {t_plain:.1f} | {t_plain / args.submissions:.2f} |")
    print(f"throughput ratio (plain / grader): {t_plain / t_tool:.2f}x")
    print(f"load average at the end of the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other jobs on the machine take cores from the parallel workers)")
    print(f"grader per notebook: execution {execution:.2f} s (kernel start, cells, tests), "
          f"overhead beyond execution {overhead:.2f} s")
    print(f"projected {STUDENTS} students x 4 assignments if every assignment took as long as this gates mix: "
          f"{per_notebook * STUDENTS * 4 / 60:.1f} min")
    print(f"\nsolution notebooks, {args.copies} of each, {args.workers} workers (worker s per notebook):")
    print("| assignment | worker (s) | execution (s) |")
    print("| --- | ---: | ---: |")
    for assignment, (seconds, executing) in solutions.items():
        print(f"| {assignment} | {seconds:.2f} | {executing:.2f} |")
    print(f"projected {STUDENTS} students x 4 assignments (the four solutions' worker time / {args.workers} workers "
          f"x {wall_factor:.2f}, the gates run's wall over worker time): {projected:.1f} min (goal 30 min)")
    print(f"start-up apart: {FEW} submissions took {t_few:.1f} s, so a run starts in {startup:.1f} s and then "
          f"grades at {rate:.2f} s a notebook, {steady_factor:.2f} x the worker time / {args.workers} (first "
          f"notebooks left out); projected: 4 x {startup:.1f} s + the four solutions' worker time / "
          f"{args.workers} x {steady_factor:.2f} = {projected_steady:.1f} min")


if __name__ == "__main__":
    main()
