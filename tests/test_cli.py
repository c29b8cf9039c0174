"""The instructor's commands end to end: grade, autograde (sharded), merge,
feedback and export, on a small class in a temporary course folder."""
import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from nbgrader.api import Gradebook

from conftest import ROOT, course
from submissions import answer_source, submission, submitted_class

pytestmark = pytest.mark.slow
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
    suite_sources = [p.read_text() for p in (ROOT / "autograder" / "suites" / "a03").glob("test_*.py")]
    for source in suite_sources:
        for line in source.splitlines():
            if len(line.strip()) > 40 and not line.strip().startswith(('"""', "#")):
                assert line.strip() not in html, f"hidden test source in feedback: {line.strip()}"
    assert "BEGIN SOLUTION" not in html and "BEGIN HIDDEN" not in html

    csv_path = klass / "grades.csv"
    proc = course("export", "--to", str(csv_path), env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(csv_path.open())}
    assert rows == scores


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
