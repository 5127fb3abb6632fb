"""Autograde throughput: ``python -m grader`` (parallel, sandboxed) against serial plain nbgrader.

    python benchmarks/bench_autograde.py [--submissions 40] [--workers N]

Both grade the same N submissions of the gates assignment in one run, each in
a fresh course root released from ``solutions/gates``: the full solution and
the sample mistakes of ``samples/gates.zip``, cycled. The peer is ``nbgrader
autograde gates`` with nbgrader's defaults (one kernel per notebook, in turn,
no sandbox). Printed: both wall times, the throughput ratio, the grader's
per-notebook overhead beyond execution (nbgrader's bookkeeping around
``TrustedExecute``: worker wall per notebook minus the time spent starting
the kernel and running cells and tests), the load average (wall-clock ratios
depend on what else the machine runs), and the projected wall time for 300
students x 4 assignments at the measured rate.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from grader.course import Course  # noqa: E402
from grader.sandbox import describe_protections  # noqa: E402

KINDS = ("full", "swapped-gates", "missing-bias", "h-c-swapped", "sigmoid-sign", "count-no-bias",
         "calls-reference", "blank")


def _course(root: str, submissions: int) -> Course:
    shutil.copytree(os.path.join(REPO, "solutions", "gates"), os.path.join(root, "solutions", "gates"))
    course = Course(root, workers=1)
    course.release("gates")
    with zipfile.ZipFile(os.path.join(REPO, "samples", "gates.zip")) as archive:
        by_kind = {name.split("_")[0]: archive.read(name) for name in archive.namelist() if name.endswith(".ipynb")}
    for n in range(submissions):
        dest = os.path.join(root, "submitted", f"s{n:03d}", "gates", "gates.ipynb")
        os.makedirs(os.path.dirname(dest))
        with open(dest, "wb") as fh:
            fh.write(by_kind[KINDS[n % len(KINDS)]])
    return course


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(describe_protections())
    with tempfile.TemporaryDirectory() as tmp:
        tool_root, plain_root = os.path.join(tmp, "tool"), os.path.join(tmp, "plain")
        _course(tool_root, args.submissions)
        tool = Course(tool_root, workers=args.workers)
        _course(plain_root, args.submissions)
        with open(os.path.join(plain_root, "nbgrader_config.py"), "w") as fh:
            fh.write("c = get_config()\nc.CourseDirectory.source_directory = 'solutions'\n"
                     "c.CourseDirectory.release_directory = 'course'\n")
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}

        start = time.perf_counter()
        states = tool.autograde("gates", progress=False)
        t_tool = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", "gates"],
                       cwd=plain_root, env=env, check=True, capture_output=True)
        t_plain = time.perf_counter() - start

    graded = [s for s in states.values() if s["status"] == "graded"]
    overhead = statistics.mean(s["seconds"]["nbgrader"] - s["seconds"]["execution"] for s in graded)
    execution = statistics.mean(s["seconds"]["execution"] for s in graded)
    per_notebook = t_tool / args.submissions
    projected = per_notebook * 300 * 4 / 60
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
    print(f"projected 300 students x 4 assignments at this rate: {projected:.1f} min")


if __name__ == "__main__":
    main()
