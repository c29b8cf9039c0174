"""Grading speed for a03: one notebook, and a class of 20, against nbgrader autograde.

    .venv/bin/python bench/grading.py [--students 20] [--repeats 5]

Builds a temporary course folder with 20 submissions (full solutions, untouched
releases and common mistakes), then times:
  * `course grade --json` on one notebook, run as a fresh command (median of --repeats);
  * `course autograde a03 --jobs 1` and `--jobs 2` on the class;
  * `nbgrader autograde a03` on the same class (it runs the public checks in a
    Jupyter kernel; it has no hidden suite, so it does strictly less work).
Prints a table. Not a test: timings depend on the machine.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from submissions import answer_source, submission  # noqa: E402

BIN = Path(sys.executable).parent
MISTAKES = {
    "answer-sdpa": answer_source("answer-sdpa").replace(" / math.sqrt(d_k)", ""),
    "answer-causal-mask": answer_source("answer-causal-mask").replace(".tril()", ".triu()"),
    "answer-additive": answer_source("answer-additive").replace("torch.tanh(", "("),
}


def make_class(root: Path, n: int) -> None:
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    kinds = ["solution", "release"] + list(MISTAKES)
    scratch = root / "_scratch"
    scratch.mkdir()
    for i in range(n):
        kind = kinds[i % len(kinds)]
        folder = root / "submitted" / f"student{i:02d}" / "a03"
        folder.mkdir(parents=True)
        if kind == "release":
            nb = submission(scratch, base="release", name=f"{i}.ipynb")
        elif kind == "solution":
            nb = submission(scratch, name=f"{i}.ipynb")
        else:
            nb = submission(scratch, replace={kind: MISTAKES[kind]}, name=f"{i}.ipynb")
        shutil.move(nb, folder / "a03.ipynb")


def timed(cmd, root: Path) -> float:
    env = dict(os.environ, COURSE_ROOT=str(root), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_class(root, args.students)
        one = root / "submitted" / "student00" / "a03" / "a03.ipynb"
        course = [str(BIN / "course")]
        singles = [timed(course + ["grade", str(one), "--assignment", "a03", "--json", "--device", "cpu"], root)
                   for _ in range(args.repeats)]
        rows = [("course grade, one notebook (median)", statistics.median(singles), 1)]
        for jobs in (1, 2):
            (root / "gradebook.db").unlink(missing_ok=True)
            t = timed(course + ["autograde", "a03", "--jobs", str(jobs), "--quiet", "--device", "cpu"], root)
            rows.append((f"course autograde --jobs {jobs}", t, args.students))
        # nbgrader needs the assignment in its own gradebook first.
        nbg = [str(BIN / "nbgrader")]
        db = f"--CourseDirectory.db_url=sqlite:///{root}/nbgrader.db"
        common = [f"--CourseDirectory.root={root}", db, "--CourseDirectory.source_directory=solutions",
                  f"--CourseDirectory.release_directory={root}/_release"]
        timed(nbg + ["generate_assignment", "a03", "--force"] + common, root)
        for student in sorted(p.name for p in (root / "submitted").iterdir()):
            timed(nbg + ["db", "student", "add", student, db], root)
        t = timed(nbg + ["autograde", "a03", "--force"] + common, root)
        rows.append(("nbgrader autograde (public checks only)", t, args.students))

    nbgrader_rate = args.students / rows[-1][1]
    print(f"{'what':42} {'wall s':>8} {'notebooks':>9} {'nb/min':>7} {'vs nbgrader':>11}")
    for name, seconds, count in rows:
        rate = count / seconds
        print(f"{name:42} {seconds:8.2f} {count:9d} {60 * rate:7.1f} {rate / nbgrader_rate:10.2f}x")


if __name__ == "__main__":
    main()
