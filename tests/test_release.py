"""The student release is generated, deterministic, clean, and the CLI fails helpfully."""
import filecmp
import json
import shutil

import nbformat
import pytest

from autograder.leaks import find_leaks, instructor_blocks, solution_blocks, suite_lines
from conftest import ROOT, course

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


def test_there_is_at_least_one_assignment():
    assert "a03" in ASSIGNMENTS


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_committed_release_equals_a_fresh_regeneration(name, tmp_path):
    proc = course("release", name, "--to", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    fresh, committed = tmp_path / name, ROOT / "assignments" / name
    cmp = filecmp.dircmp(fresh, committed)
    assert not cmp.left_only and not cmp.right_only, f"files differ: {cmp.left_only} vs {cmp.right_only}"
    for f in cmp.common_files:
        assert (fresh / f).read_bytes() == (committed / f).read_bytes(), (
            f"assignments/{name}/{f} is stale: run `make release` and commit the result")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_holds_no_solution_and_no_hidden_test(name):
    blocks, suite = instructor_blocks(name, ROOT), suite_lines(name, ROOT)
    assert blocks and suite, "the solution notebook should have solution blocks, and the suite lines of its own"
    for path in (ROOT / "assignments" / name).rglob("*"):
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        elif path.is_file():
            text = path.read_text(errors="replace")
        else:
            continue
        assert find_leaks(blocks, text, suite) == [], f"{path} leaks instructor material"


def test_leak_finder_catches_a_leaked_block():
    blocks = solution_blocks(ROOT / "solutions" / "a03" / "a03.ipynb")
    sdpa = next(b for b in blocks if "answer-sdpa" in b.where)
    leaked = "some prose\n" + "\n".join("    " + l for l in sdpa.lines) + "\nmore prose"
    assert find_leaks(blocks, leaked), "a pasted solution block must be reported"
    assert find_leaks(blocks, "x = 1\n### BEGIN SOLUTION\n") == ["BEGIN SOLUTION"]
    # One idiomatic line of a long block is teaching, not a leak.
    assert find_leaks(blocks, sdpa.lines[0]) == [] or len(sdpa.lines) <= 2
    # A single line of a hidden test is a leak, and so is a correct alternative from the banks.
    suite = suite_lines("a03", ROOT)
    assert find_leaks(blocks, "prose\n    " + suite[len(suite) // 2] + "\nprose", suite), "a pasted test line"
    alternative = next(b for b in instructor_blocks("a03", ROOT) if b.where.startswith("banks of a03"))
    assert find_leaks(instructor_blocks("a03", ROOT), "\n".join(alternative.lines)), "a pasted alternative"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_cells_are_locked_and_answers_are_blank(name):
    for path in (ROOT / "assignments" / name).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert graded and answers
        for cell in graded:
            meta = cell.metadata["nbgrader"]
            assert meta["locked"] and meta["points"] > 0 and meta.get("checksum")
        for cell in answers:
            assert "raise NotImplementedError()" in cell.source, f"answer cell {cell.id} is pre-answered"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "release must ship no outputs"


# --- Bad input: one line that says what to fix, never a traceback -------------

def _fake_course(tmp_path, notebook_text=None, metadata_edit=None):
    root = tmp_path / "course"
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    nb_path = root / "solutions" / "a03" / "a03.ipynb"
    if notebook_text is not None:
        nb_path.write_text(notebook_text)
    if metadata_edit is not None:
        nb = json.loads(nb_path.read_text())
        metadata_edit(nb)
        nb_path.write_text(json.dumps(nb))
    return root


def _assert_one_line_error(proc, *phrases):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_unknown_assignment_name():
    _assert_one_line_error(course("release", "a99", "--to", "/tmp/unused"), "unknown assignment 'a99'", "a03")
    _assert_one_line_error(course("release", "attention"), "not an assignment name")


def test_missing_solution_notebook(tmp_path):
    root = _fake_course(tmp_path)
    (root / "solutions" / "a03" / "a03.ipynb").unlink()
    proc = course("release", "a03", "--to", str(tmp_path / "out"), env={"COURSE_ROOT": str(root)})
    _assert_one_line_error(proc, "holds no .ipynb notebook")


def test_malformed_solution_notebook(tmp_path):
    root = _fake_course(tmp_path, notebook_text='{"cells": [ this is not json')
    proc = course("release", "a03", "--to", str(tmp_path / "out"), env={"COURSE_ROOT": str(root)})
    _assert_one_line_error(proc, "is not a valid notebook", "git checkout")


def test_solution_cell_without_nbgrader_metadata(tmp_path):
    def strip(nb):
        cell = next(c for c in nb["cells"] if c.get("id") == "answer-sdpa")
        del cell["metadata"]["nbgrader"]
    root = _fake_course(tmp_path, metadata_edit=strip)
    proc = course("release", "a03", "--to", str(tmp_path / "out"), env={"COURSE_ROOT": str(root)})
    _assert_one_line_error(proc, "answer-sdpa", "no nbgrader answer metadata")
    assert not (tmp_path / "out" / "a03").exists(), "nothing may be released from a broken source"


def test_duplicate_grade_ids(tmp_path):
    def dup(nb):
        cells = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
        cells[1]["metadata"]["nbgrader"]["grade_id"] = cells[0]["metadata"]["nbgrader"]["grade_id"]
    root = _fake_course(tmp_path, metadata_edit=dup)
    proc = course("release", "a03", "--to", str(tmp_path / "out"), env={"COURSE_ROOT": str(root)})
    _assert_one_line_error(proc, "repeats grade_id")
