"""The solution passes its own public checks; the untouched release passes none.

Notebooks run with COURSE_QUICK=1 in their environment: experiment cells that
train read it and shrink to seconds (README, "Budget for chapter authors")."""
import nbclient
import nbformat
import pytest

from conftest import ROOT

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def quick_experiments(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")  # the kernel inherits it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny tensors, a busy machine: as the book build


def execute(path):
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def errors(cell):
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def graded(cell):
    return cell.metadata.get("nbgrader", {}).get("grade", False)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_runs_top_to_bottom_and_passes_public_checks(name):
    for path in (ROOT / "solutions" / name).glob("*.ipynb"):
        nb = execute(path)
        failures = [(c.id, e.ename, e.evalue) for c in nb.cells if c.cell_type == "code" for e in errors(c)]
        assert failures == [], f"{path.name}: cells failed: {failures}"
        assert sum(graded(c) for c in nb.cells) >= 1


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_untouched_release_fails_every_graded_check(name):
    for path in (ROOT / "assignments" / name).glob("*.ipynb"):
        nb = execute(path)
        checks = [c for c in nb.cells if graded(c)]
        passing = [c.id for c in checks if not errors(c)]
        assert passing == [], f"{path.name}: graded cells pass without any work: {passing}"
        setup = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("locked")
                 and not graded(c)]
        assert all(not errors(c) for c in setup), "the release's setup cells must run cleanly"
