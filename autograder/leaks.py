"""Find instructor-only material (solution code, hidden tests) in student-facing files.

A solution *block* (an answer of the solution notebook, or a correct alternative
from the suite's banks) leaks when most of its distinctive lines show up in one
student-facing text: a book may legitimately show `softmax(q @ k.T)` in a line or
two, but not the assignment's answer. A hidden suite leaks when any one of its
distinctive lines does: a suite's lines are written for grading, not teaching.
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .notebook import BEGIN, BEGIN_HIDDEN, END, read_notebook
from .paths import solutions_dir

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MIN_LINE = 12  # shorter lines (`return x`, `else:`) are too common to mean anything


def _normal(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


@dataclass
class SolutionBlock:
    where: str
    lines: list[str]  # distinctive, normalised

    @property
    def threshold(self) -> int:
        n = len(self.lines)
        return n if n <= 2 else math.ceil(0.6 * n)


def solution_blocks(notebook: Path) -> list[SolutionBlock]:
    blocks = []
    nb = read_notebook(notebook)
    for cell in nb.cells:
        inside, current = False, []
        for raw in cell.source.splitlines():
            if BEGIN in raw or BEGIN_HIDDEN in raw:
                inside, current = True, []
            elif END in raw or "### END HIDDEN TESTS" in raw:
                inside = False
                lines = [l for l in map(_normal, current) if len(l) >= MIN_LINE]
                if lines:
                    blocks.append(SolutionBlock(f"{notebook.name}:{cell.get('id', '?')}", lines))
            elif inside:
                current.append(raw)
    return blocks


def alternative_blocks(assignment: str) -> list[SolutionBlock]:
    """The correct alternatives in the suite's banks: answers as much as the solution's."""
    from .banks import Banks
    blocks = []
    for alt in Banks.load(assignment).alternatives:
        lines = [l for l in map(_normal, alt.source.splitlines()) if len(l) >= MIN_LINE]
        if lines:
            blocks.append(SolutionBlock(f"banks of {assignment}: alternative {alt.name}", lines))
    return blocks


def instructor_blocks(assignment: str, root: Path | None = None) -> list[SolutionBlock]:
    notebooks = sorted((solutions_dir(root) / assignment).glob("*.ipynb"))
    return [b for nb in notebooks for b in solution_blocks(nb)] + alternative_blocks(assignment)


SUITE_LINE = 40  # a suite line this long, not a comment or a docstring, is the suite's own
NOT_CODE = ("#", '"""', "'''", "from ", "import ", "@")


def suite_lines(assignment: str, root: Path | None = None) -> list[str]:
    """The hidden suite's distinctive lines (normalised), from its test files, less those
    the release itself holds (public by design). Its banks hold answers, not tests: their
    correct alternatives count as solution blocks (`alternative_blocks`)."""
    from .config import suite_dir
    from .extract import release_notebook
    public = {_normal(l) for c in read_notebook(release_notebook(assignment, root)).cells
              for l in c.source.splitlines()}
    lines = set()
    for path in sorted(suite_dir(assignment).glob("test_*.py")):
        for raw in path.read_text().splitlines():
            line = _normal(raw)
            if len(line) >= SUITE_LINE and not line.startswith(NOT_CODE) and line not in public:
                lines.add(line)
    return sorted(lines)


def find_leaks(blocks: list[SolutionBlock], text: str, suite: list[str] = ()) -> list[str]:
    """Blocks whose distinctive lines appear (as whole lines) in `text`, lines of a
    hidden suite, and marker words."""
    present = {_normal(l) for l in text.splitlines()}
    found = [m for m in MARKERS if m in text]
    for block in blocks:
        hits = [l for l in block.lines if l in present]
        if len(hits) >= block.threshold:
            found.append(f"solution block {block.where}: {hits[0]!r} and {len(hits) - 1} more of its lines")
    found += [f"hidden test line {line!r}" for line in suite if line in present]
    return found
