"""What holds for every assignment, checked for each one in solutions/: adding
solutions/aNN/ and autograder/suites/aNN/ (with its banks.py) is all it takes for
these tests to cover aNN.

* `course audit aNN` passes: the solution scores full marks, the untouched release
  and hollow answers score nothing, every mistake in the banks loses points where
  it is and is caught by the test its bank names, every alternative scores full
  marks (autograder/audit.py);
* the suite, its banks and suite.toml read sound (gates, spec quotes, coverage);
* failure messages never show reference values, and grading is deterministic;
* the chapter's overview page links the assignment through the shared directive.

The release and the public checks are covered, per assignment, by test_release.py
and test_notebooks.py.
"""
import json
import re

import pytest

from autograder import audit, submissions
from autograder.banks import GATE, Banks, Mistake
from autograder.judge import grade
from autograder.paths import known_assignments
from conftest import ROOT

ASSIGNMENTS = known_assignments(ROOT)


def test_there_are_assignments():
    assert ASSIGNMENTS, "solutions/ holds no assignment"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_audit_passes(name):
    result = audit.run(name, ROOT, jobs=2, progress=False)
    assert not result.failures, "\n" + audit.table(result)
    kinds = {r.kind for r in result.rows}
    assert kinds == {"solution", "release", "hollow", "mistake", "alternative"}, kinds


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_suite_banks_and_settings_read_sound(name):
    """Gates, spec quotes, suite.toml and bank coverage: the checks that need no grading."""
    assert audit.static_checks(name, Banks.load(name), ROOT) == []


def one_mistake_per_cell(name: str) -> dict[str, str]:
    """An answer-cell -> source map with, for each cell, the first mistake of its bank
    that a test (not only the gate) catches: a notebook that fails many checks."""
    banks, answers = Banks.load(name), submissions.reference_answers(name, ROOT)
    cells = {}
    for case in audit.cases(name, banks, ROOT):
        if case.kind == "mistake" and GATE not in case.entry.caught_by:
            for cell, source in case.replace.items():
                cells.setdefault(cell, source)
    assert cells and set(cells) <= set(answers)
    return cells


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_messages_hold_no_reference_values(name, tmp_path):
    """Failure messages say what is wrong and by how much, never what the answer is."""
    nb = submissions.write(tmp_path / "mistakes.ipynb", name, ROOT, replace=one_mistake_per_cell(name))
    report = grade(nb, name, device="cpu")
    messages = [t["message"] for c in report["components"] for t in c["tests"] if t["outcome"] == "failed"]
    assert len(messages) >= len(report["components"])
    for message in messages:
        assert "tensor(" not in message and "array(" not in message, message
        # Numbers in messages are sizes and values from the specification, or the size of an error.
        rest = re.sub(r"largest absolute error [^,]+, tolerance [^)]+", "", message)
        assert not re.search(r"\d\.\d", rest), message
        assert "check failed" not in message, f"a plain assert in the suite: {message}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_grading_is_deterministic(name, tmp_path):
    nb = submissions.write(tmp_path / "mistakes.ipynb", name, ROOT, replace=one_mistake_per_cell(name))
    first, second = grade(nb, name, device="cpu"), grade(nb, name, device="cpu")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert 0 < first["score"] < first["max_score"]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_chapter_overview_links_the_assignment(name):
    pages = sorted(ROOT.glob(f"book/ch{name[1:]}-*/index.md"))
    assert len(pages) == 1, f"assignment {name} needs its chapter's overview page book/ch{name[1:]}-<slug>/index.md"
    text = pages[0].read_text()
    assert re.search(rf"^```{{assignment}} {name}\s*$", text, re.M), (
        f"{pages[0].relative_to(ROOT)} should link the assignment with the shared directive:\n"
        f"```{{assignment}} {name}\n```")


# --- the audit itself -----------------------------------------------------------------------------

def test_audit_fails_on_a_mistake_the_suite_does_not_catch(monkeypatch, capsys):
    """`course audit` exits non-zero with one line naming the mistake and its component."""
    from autograder import cli
    name = ASSIGNMENTS[0]
    banks = Banks.load(name)
    caught = banks.mistakes[0]
    harmless = Mistake(caught.component, "adds-a-comment", caught_by=caught.caught_by,
                       source=submissions.reference_answers(name, ROOT)[_answer_cell(name, caught)] + "\n# a comment\n")
    wrong_test = Mistake(caught.component, "names-the-wrong-test", caught_by=["test_that_is_not_the_one"],
                         edits=caught.edits, source=caught.source, cell=caught.cell)
    small = Banks(name, [caught, harmless, wrong_test], banks.alternatives[:1], [], banks.depends, {})
    monkeypatch.setattr(Banks, "load", classmethod(lambda cls, n: small))
    code = cli.main(["audit", name, "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out
    failures = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert f"FAIL mistake adds-a-comment ({caught.component}): went unnoticed: {caught.component} kept" in out, out
    assert any(line.startswith(f"FAIL mistake names-the-wrong-test ({caught.component}): caught by ")
               and "not by test_that_is_not_the_one as its bank says" in line for line in failures), out
    assert not any(f"mistake {caught.name} " in line for line in failures), out


def _answer_cell(name, mistake):
    case = next(c for c in audit.cases(name, Banks(name, [mistake]), ROOT) if c.kind == "mistake")
    return next(iter(case.replace))


def test_audit_json_lists_rows_and_failures(monkeypatch, capsys):
    from autograder import cli
    name = ASSIGNMENTS[0]
    banks = Banks.load(name)
    small = Banks(name, banks.mistakes[:1], banks.alternatives[:1], banks.hollow[:1], banks.depends, {})
    monkeypatch.setattr(Banks, "load", classmethod(lambda cls, n: small))
    code = cli.main(["audit", name, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data[0]["assignment"] == name
    assert {r["kind"] for r in data[0]["rows"]} == {"solution", "release", "hollow", "mistake", "alternative"}
    assert all(not r["problems"] for r in data[0]["rows"]), "the entries themselves behave"
    assert any("needs at least 3" in f for f in data[0]["failures"]), "a thin bank is reported"
    assert all(r["seconds"] >= 0 for r in data[0]["rows"])


def test_static_checks_report_an_unstated_property_and_an_unswapped_role(monkeypatch):
    """The two rules for suites, shown to bite: a test grading what the spec does not
    say, and a declared pair of roles with no mistake that swaps them."""
    name = ASSIGNMENTS[0]
    banks = Banks.load(name)
    tests = audit.suite_tests(audit.suite_modules(name))
    graded = tests[0]
    unstated = audit.SuiteTest("test_something_unstated", graded.component, ("gradients are scaled by seven",))
    unquoted = audit.SuiteTest("test_without_a_quote", graded.component, ())
    monkeypatch.setattr(audit, "suite_tests", lambda modules: [*tests, unstated, unquoted])
    roles = {**banks.roles, graded.component: [("alpha", "omega")]}
    problems = audit.static_checks(name, Banks(name, banks.mistakes, banks.alternatives, banks.hollow,
                                               banks.depends, roles), ROOT)
    assert problems == [
        f"test_something_unstated ({graded.component}): the spec does not say 'gradients are scaled by seven'",
        f"test_without_a_quote ({graded.component}): names no sentence of the spec it grades (@spec)",
        f"banks: {graded.component} declares roles alpha and omega but no mistake swaps them"], problems
