"""The instructor's commands end to end: grade, autograde (sharded), merge,
feedback and export, on a small class in a temporary course folder."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bs4 import BeautifulSoup
from nbgrader.api import Gradebook

from autograder.leaks import find_leaks, suite_lines
from autograder.sandbox import bubblewrap
from conftest import MATHJAX_DONE, ROOT, course, run
from submissions import answer_source, submission, submitted_class

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli")]
# Off by one: the last real token counts as padding.
WRONG_MASK = answer_source("answer-padding-mask").replace("positions[None, :] < lengths[:, None]",
                                                          "positions[None, :] < lengths[:, None] - 1")


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """A course folder with four students: full, empty, one mistake, corrupted file."""
    root = tmp_path_factory.mktemp("course")
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    scratch = tmp_path_factory.mktemp("scratch")
    return submitted_class(root, {
        "ada": submission(scratch, name="ada.ipynb"),
        "ben": submission(scratch, base="release", name="ben.ipynb"),
        "cy": submission(scratch, replace={"answer-padding-mask": WRONG_MASK}, name="cy.ipynb"),
        "dee": '{"cells": [',
    })


def grade_json(nb, root):
    proc = course("grade", str(nb), "--assignment", "a03", "--json", "--device", "cpu",
                  env={"COURSE_ROOT": str(root)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_grade_json_contract(klass):
    report = grade_json(klass / "submitted" / "ada" / "a03" / "a03.ipynb", klass)
    assert set(report) == {"assignment", "score", "max_score", "components", "errors"}
    assert report["assignment"] == "a03" and report["max_score"] == 10.0
    assert report["score"] == report["max_score"], report
    for comp in report["components"]:
        assert set(comp) == {"grade_id", "name", "score", "max_score", "tests"}
        for test in comp["tests"]:
            assert set(test) == {"name", "outcome", "message"}
            assert test["outcome"] in {"passed", "failed", "error", "timeout", "not_graded"}


def test_grade_readable_report(klass):
    proc = course("grade", str(klass / "submitted" / "cy" / "a03" / "a03.ipynb"), "--assignment", "a03",
                  "--device", "cpu", env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("a03: ") and "causal_mask: 1 / 1 points" in proc.stdout, proc.stdout
    assert "padding_mask: 1 / 1" not in proc.stdout and "[FAIL]" in proc.stdout and "[PASS]" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the CPU-only report")
def test_gpu_tests_are_not_graded_on_cpu(klass):
    report = grade_json(klass / "submitted" / "ada" / "a03" / "a03.ipynb", klass)
    outcomes = [t["outcome"] for c in report["components"] for t in c["tests"]]
    assert "not_graded" in outcomes, "the suite should have GPU-parametrized tests"
    assert any("need a GPU" in e for e in report["errors"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_clear_error(klass):
    proc = course("grade", str(klass / "submitted" / "ada" / "a03" / "a03.ipynb"), "--assignment", "a03",
                  "--device", "cuda", env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.startswith("course: error: --device cuda: PyTorch sees no CUDA device"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_solution_scores_full_marks_on_cuda(klass):
    proc = course("grade", str(klass / "submitted" / "ada" / "a03" / "a03.ipynb"), "--assignment", "a03",
                  "--json", "--device", "cuda", env={"COURSE_ROOT": str(klass)})
    report = json.loads(proc.stdout)
    assert report["score"] == report["max_score"]
    assert not any(t["outcome"] == "not_graded" for c in report["components"] for t in c["tests"])


def test_sharded_autograde_merge_feedback_export(klass):
    env = {"COURSE_ROOT": str(klass)}
    results = []
    for k in (1, 2):
        out = klass / f"shard{k}.json"
        proc = course("autograde", "a03", "--shard", f"{k}/2", "--results", str(out), "--quiet",
                      "--device", "cpu", env=env)
        assert proc.returncode == 0, proc.stderr
        results.append(out)
    assert not (klass / "gradebook.db").exists(), "a shard must not write the gradebook"
    proc = course("merge", *map(str, results), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ada" in proc.stdout and "mean score" in proc.stdout

    with Gradebook(f"sqlite:///{klass}/gradebook.db") as gb:
        scores = {s: gb.find_submission("a03", s).score for s in ("ada", "ben", "cy", "dee")}
    assert scores["ada"] == 10.0 and scores["ben"] == 0.0 and scores["dee"] == 0.0
    assert 9.0 <= scores["cy"] < 10.0, "a wrong padding_mask loses at most its own point"
    standalone = grade_json(klass / "submitted" / "cy" / "a03" / "a03.ipynb", klass)
    assert scores["cy"] == pytest.approx(standalone["score"], abs=1e-9)
    dee = json.loads((klass / "autograded" / "dee" / "a03" / "report.json").read_text())
    assert dee["score"] == 0 and "could not be read" in dee["errors"][0]

    proc = course("feedback", "a03", env=env)
    assert proc.returncode == 0, proc.stderr
    html = (klass / "feedback" / "cy" / "a03" / "a03.html").read_text()
    assert "padding_mask: " in html and "[FAIL]" in html
    text = BeautifulSoup(html, "html.parser").get_text("\n")
    # The student's own answers are theirs to see; the hidden tests are not.
    assert find_leaks([], text, suite_lines("a03", ROOT)) == []
    # Offline: MathJax is in the page, nothing is loaded from the internet.
    assert "window.MathJax" in html and "MathJax.Hub" not in html
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?:", html), "feedback loads from the internet"
    assert "scaled_dot_product_attention</a>" in html, "the table of contents names the components"

    csv_path = klass / "grades.csv"
    proc = course("export", "--to", str(csv_path), env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(csv_path.open())}
    assert rows == scores


@pytest.fixture(scope="module")
def feedback_pages(klass):
    """Feedback pages of the class (written by the test above, or here if it did not run)."""
    if not (klass / "feedback" / "cy" / "a03" / "a03.html").exists():
        env = {"COURSE_ROOT": str(klass)}
        for args in (["autograde", "a03", "--quiet", "--device", "cpu"], ["feedback", "a03"]):
            proc = course(*args, env=env)
            assert proc.returncode == 0, proc.stderr
    return {s: klass / "feedback" / s / "a03" / "a03.html" for s in ("cy", "ben")}


@pytest.mark.browser
def test_feedback_page_reads_well_offline_in_chromium(browser, feedback_pages):
    """Opened straight from disk: math typeset by the page's own MathJax, no request
    leaves the file, nothing wider than the window, unanswered cells labelled."""
    tab = browser.new_page(viewport={"width": 1000, "height": 1400})
    requests = []
    tab.on("request", lambda r: requests.append(r.url))
    tab.goto(feedback_pages["cy"].as_uri(), wait_until="load")
    math = tab.evaluate(MATHJAX_DONE)
    assert math["loaded"] and math["typeset"] > 5 and math["errors"] == 0 and math["raw"] == 0, math
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == [], requests
    overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the window: reports must wrap"
    toc = tab.eval_on_selector_all("#toc a", "els => els.map(e => e.textContent)")
    assert toc == ["scaled_dot_product_attention", "causal_mask", "padding_mask", "AdditiveAttention",
                   "SelfAttention"], toc
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(shots / "feedback-cy.png"))
    tab.goto(feedback_pages["ben"].as_uri(), wait_until="load")
    labels = tab.eval_on_selector_all(".not-answered-label", "els => els.length")
    assert labels == 5, f"the untouched release has 5 answer cells, {labels} labelled as not answered"
    tab.close()


def test_in_process_grading_matches_the_sandbox(klass):
    """`course grade --in-process`, the README's way to debug a suite, grades as the sandbox does."""
    nb = klass / "submitted" / "cy" / "a03" / "a03.ipynb"  # one mistake: tests pass and fail
    proc = course("grade", str(nb), "--assignment", "a03", "--json", "--device", "cpu", "--in-process",
                  env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 0, proc.stderr
    in_process = json.loads(proc.stdout)
    assert 0 < in_process["score"] < 10 and in_process == grade_json(nb, klass)


@pytest.mark.skipif(bubblewrap() is None, reason="the fault needs bubblewrap's private /tmp")
def test_grading_works_with_python_under_tmp(klass, tmp_path):
    """A checkout (and so its .venv) under /tmp: the sandbox's own /tmp must not hide
    the worker's Python (it once did, and no worker could start)."""
    venv = tmp_path / ".venv"
    if subprocess.run(["cp", "-al", sys.prefix, str(venv)], capture_output=True).returncode != 0:
        pytest.skip(f"cannot hard-link {sys.prefix} into {tmp_path} (another filesystem)")
    nb = klass / "submitted" / "ada" / "a03" / "a03.ipynb"
    proc = run([str(venv / "bin" / "python"), "-m", "autograder.cli", "grade", str(nb), "--assignment", "a03",
                "--json", "--device", "cpu"], env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["score"] == 10.0


def test_merge_refuses_overlapping_shards(klass):
    out = klass / "dup.json"
    proc = course("autograde", "a03", "--shard", "1/1", "--student", "ben", "--results", str(out), "--quiet",
                  "--device", "cpu", env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 0, proc.stderr
    proc = course("merge", str(out), str(out), env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 2 and "already merged" in proc.stderr


@pytest.mark.parametrize("args, phrase", [
    (["autograde", "a99"], "unknown assignment"),
    (["autograde", "a03", "--shard", "3/2"], "--shard takes K/N"),
    (["grade", "missing.ipynb", "--assignment", "a03"], "no such file"),
    (["merge", "missing.json"], "not a results file"),
])
def test_cli_errors_are_one_line(klass, args, phrase):
    proc = course(*args, env={"COURSE_ROOT": str(klass)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0] and "Traceback" not in proc.stderr


def test_gradebook_schema_revision_is_nbgrader_s(monkeypatch):
    """`course` reads the gradebook's schema revision in-process; nbgrader runs `alembic heads`."""
    from autograder import gradebook
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert gradebook.alembic_head() == gradebook.NBGRADER_ALEMBIC_HEAD()


def test_spawned_judges_grade_like_one_process(klass, monkeypatch):
    """On CUDA, --jobs processes are spawned rather than forked (a forked child
    cannot use the CUDA driver its parent initialised): that path, run on CPU."""
    from autograder import classroom
    items = classroom.find_submissions("a03", klass)
    alone = classroom.grade_class("a03", items, klass, jobs=1, device="cpu", progress=False)
    monkeypatch.setattr(classroom, "forks_judges", lambda device: False)
    spawned = classroom.grade_class("a03", items, klass, jobs=2, device="cpu", progress=False)
    assert {s: r["report"] for s, r in spawned.items()} == {s: r["report"] for s, r in alone.items()}
    assert spawned["ada"]["report"]["score"] == 10.0
