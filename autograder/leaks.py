"""Find instructor-only material (solution code, hidden tests) in student-facing files.

A solution *block* leaks when most of its distinctive lines show up in one
student-facing text: a book may legitimately show `softmax(q @ k.T)` in a line or
two, but not the assignment's answer.
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .notebook import BEGIN, BEGIN_HIDDEN, END, read_notebook

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


def find_leaks(blocks: list[SolutionBlock], text: str) -> list[str]:
    """Blocks whose distinctive lines appear (as whole lines) in `text`, and marker words."""
    present = {_normal(l) for l in text.splitlines()}
    found = [m for m in MARKERS if m in text]
    for block in blocks:
        hits = [l for l in block.lines if l in present]
        if len(hits) >= block.threshold:
            found.append(f"solution block {block.where}: {hits[0]!r} and {len(hits) - 1} more of its lines")
    return found
