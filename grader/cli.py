"""``python -m grader``: the instructor's commands over nbgrader.

    python -m grader release gates                 # solutions/gates -> course/gates
    python -m grader import gates submissions.zip  # an LMS zip or folder -> submitted/
    python -m grader autograde gates               # parallel, sandboxed, resumable
    python -m grader feedback gates                # feedback/<student>/gates/*.html
    python -m grader export gates -o grades.csv
    python -m grader summary gates                 # points per test, common mistakes
    python -m grader demo                          # all of it on the bundled samples
    python -m grader protections                   # which sandbox protections this system grants
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from .config import RELEASE, default_db_url
from .course import Course, format_grades, format_summary
from .sandbox import Limits, describe_protections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")
DEMO_OUTPUT = "grader_demo"
DEMO_MARK = ".grader-demo"  # in a folder the demo made, which it may replace
LIMIT_HELP = {"cell_timeout": "seconds for one cell or one call into student code",
              "notebook_timeout": "seconds for a whole notebook", "memory_mb": "address-space cap (MiB)",
              "cpu_seconds": "CPU-time cap (s)", "max_processes": "processes and threads",
              "output_bytes": "outputs kept per notebook (bytes)", "file_mb": "largest file written (MiB)"}


class UsageError(Exception):
    """A mistake in the command: reported as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=REPO, help="nbgrader course root (default: the repository)")
    parser.add_argument("--db-url", default=None, help="gradebook SQLAlchemy URL (default: $GRADER_DB_URL, "
                        "else sqlite gradebook.db in the root)")
    parser.add_argument("--workers", type=int, default=None, help="parallel submissions (default: cores)")
    _add_limits(parser, defaults=True)
    limits = argparse.ArgumentParser(add_help=False)  # the same options after autograde and demo
    _add_limits(limits, defaults=False)
    assignment = {"help": "the assignment's folder name in solutions/ and course/, e.g. gates"}
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student release of an assignment: solutions/<a> -> "
                   "course/<a>, recorded in the gradebook").add_argument("assignment", **assignment)
    p = sub.add_parser("import", help="import submissions from an LMS zip or a folder into submitted/")
    p.add_argument("assignment", **assignment)
    p.add_argument("source", help="a .zip (Canvas/Moodle download) or a folder")
    p = sub.add_parser("autograde", parents=[limits],
                       help="autograde the submissions in parallel (resumes an interrupted run)")
    p.add_argument("assignment", **assignment)
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="grade again even submissions already graded")
    sub.add_parser("feedback", help="HTML feedback for every graded student, in feedback/<student>/<a>/"
                   ).add_argument("assignment", **assignment)
    p = sub.add_parser("export", help="grades CSV")
    p.add_argument("assignment", **assignment)
    p.add_argument("-o", "--output", default=None, help="CSV path (default: grades_<assignment>.csv in the root)")
    p = sub.add_parser("summary", help="points per test across the class and the common mistakes")
    p.add_argument("assignment", **assignment)
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p = sub.add_parser("demo", parents=[limits], help="release, import the bundled samples, autograde, "
                       "feedback, report (in a course of its own, with its own SQLite gradebook)")
    p.add_argument("--assignment", default="gates", help="an assignment with samples in samples/ (default gates)")
    p.add_argument("--output", default=os.path.join(REPO, DEMO_OUTPUT),
                   help="demo folder: created, or replaced if an earlier demo made it (any other "
                        "non-empty folder is refused)")
    sub.add_parser("protections", help="print the sandbox protections this system grants")
    return parser


def _add_limits(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The kernel's limits as options; ``defaults=False`` leaves a value unset unless given
    (for a subcommand, over the main parser's)."""
    group = parser.add_argument_group("limits of a student's kernel")
    for field in Limits.__dataclass_fields__.values():
        group.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                           default=field.default if defaults else argparse.SUPPRESS,
                           help=f"{LIMIT_HELP.get(field.name, field.name)} (default {field.default})")


def _limits(args) -> Limits:
    return Limits(**{name: getattr(args, name) for name in Limits.__dataclass_fields__})


def _fresh_demo_folder(out: str) -> None:
    """Empty ``out`` for the demo: absent or empty, made by an earlier demo, or the repository's own
    (git-ignored) demo folder; never another folder."""
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(os.path.join(out, DEMO_MARK)) and out != os.path.join(REPO, DEMO_OUTPUT):
            raise UsageError(f"{out} is not empty and no demo made it; give --output a new or empty folder")
        shutil.rmtree(out)
    elif os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out} is a file; give --output a new or empty folder")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, DEMO_MARK), "w", encoding="utf-8") as fh:
        fh.write("made by `python -m grader demo`, which replaces this folder on its next run\n")


def demo_course(args) -> tuple:
    """(the demo's course, the samples zip): a fresh course in ``args.output`` with the assignment's
    solutions and a SQLite gradebook of its own."""
    zip_path = os.path.join(SAMPLES, f"{args.assignment}.zip")
    if not os.path.isfile(zip_path):
        raise UsageError(f"there are no bundled samples for {args.assignment!r} (samples/ has "
                         f"{', '.join(sorted(f[:-4] for f in os.listdir(SAMPLES) if f.endswith('.zip')))})")
    out = os.path.abspath(args.output)
    _fresh_demo_folder(out)
    shutil.copytree(os.path.join(REPO, "solutions", args.assignment), os.path.join(out, "solutions", args.assignment))
    course = Course(out, db_url=default_db_url(out), limits=_limits(args), workers=args.workers,
                    hidden_paths=(SAMPLES,))
    return course, zip_path


def run_demo(args) -> str:
    """The whole loop on the bundled samples, in a fresh course under ``args.output``.

    The demo's course has its own SQLite gradebook in that folder, whatever
    ``--db-url`` or ``$GRADER_DB_URL`` say: its sample students never reach a class's gradebook.
    """
    course, zip_path = demo_course(args)
    out = course.root
    print(describe_protections())
    course.release(args.assignment)
    print(_import_summary(course.import_submissions(args.assignment, zip_path), args.assignment, details=False))
    states = course.autograde(args.assignment)
    html = course.feedback(args.assignment)
    csv_path = course.export_csv(args.assignment, os.path.join(out, "grades.csv"))
    summary = format_summary(course.summary(args.assignment))
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as fh:
        fh.write(summary)
    print(format_grades(states, course.late(args.assignment)))
    print()
    print(summary)
    print(f"Demo output in {out}: grades.csv, summary.md, feedback/ ({len(html)} HTML files), "
          f"grader_work/ (per-test reports)")
    return csv_path


def _import_summary(report, assignment: str, details: bool = True) -> str:
    """One line of counts, then (``details``) a line per file left out or late, with its reason."""
    lines = [f"imported {len(report.imported)} students; {len(report.duplicates)} duplicates, "
             f"{len(report.stray)} stray files, {len(report.late)} late "
             f"(see grader_work/{assignment}/import.json)"]
    if details:
        lines += [f"  duplicate {d['file']}: {d['reason']}" for d in report.duplicates]
        lines += [f"  stray {s['file']}: {s['reason']}" for s in report.stray]
        lines += [f"  late {d['file']} ({d['student']})" for d in report.late]
    return "\n".join(lines)


def _require_release(course: Course, assignment: str) -> None:
    """nbgrader grades only an assignment its gradebook holds, which ``release`` records."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.config.CourseDirectory.db_url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            raise UsageError(f"assignment {assignment!r} is not in this course's gradebook: run "
                             f"`python -m grader release {assignment}` first") from None
    if not os.path.isdir(os.path.join(course.root, RELEASE, assignment)):
        raise UsageError(f"assignment {assignment!r} has no release folder {RELEASE}/{assignment}: run "
                         f"`python -m grader release {assignment}` first")


def main(argv: list | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (UsageError, ValueError, FileNotFoundError, RuntimeError) as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog} {args.command}: interrupted; what was saved stays, and the same "
                         "command (without --force) goes on from there\n")
    return 0


def run(args) -> None:
    """Run the parsed command."""
    if args.command == "protections":
        print(describe_protections())
        return
    if args.command == "demo":
        run_demo(args)
        return
    course = Course(args.root, db_url=args.db_url, limits=_limits(args), workers=args.workers)
    if args.command != "release":
        _require_release(course, args.assignment)
    if args.command == "release":
        for path in course.release(args.assignment):
            print(path)
    elif args.command == "import":
        report = course.import_submissions(args.assignment, args.source)
        print(_import_summary(report, args.assignment))
        if not report.imported:
            raise UsageError(f"no submission found in {args.source}: no notebook of {args.assignment} with a "
                             "student id in its name or its folder's")
    elif args.command == "autograde":
        print(describe_protections())
        states = course.autograde(args.assignment, args.student, force=args.force)
        print(format_grades(states, course.late(args.assignment)))
    elif args.command == "feedback":
        for path in course.feedback(args.assignment):
            print(path)
    elif args.command == "export":
        print(course.export_csv(args.assignment, args.output or os.path.join(course.root, f"grades_{args.assignment}.csv")))
    elif args.command == "summary":
        summary = course.summary(args.assignment)
        print(json.dumps(summary, indent=1) if args.json else format_summary(summary))


if __name__ == "__main__":
    sys.exit(main())
