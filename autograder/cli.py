"""The course's command line: `course release`, and the grading commands."""
import argparse
import sys

from . import release as release_mod
from .paths import CourseError, known_assignments


def cmd_release(args) -> int:
    names = args.assignments or known_assignments()
    if not names:
        raise CourseError("no assignments found: solutions/ has no aNN/ folder")
    for name in names:
        target = release_mod.release(name, out_dir=args.to)
        print(f"released {name} -> {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="regenerate assignments/ from solutions/ with nbgrader")
    p.add_argument("assignments", nargs="*", help="aNN names (default: all)")
    p.add_argument("--to", default=None, help="release into this folder instead of assignments/")
    p.set_defaults(func=cmd_release)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as err:
        print(f"course: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
