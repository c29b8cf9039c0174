"""The autograde workflow, run here job by job as GitHub Actions would run it:
its plan, one grading job per shard, and its merge, on this machine's CPU in
place of the GPU runners.

Every `run:` step is the workflow's own shell text, with its `${{ }}`
expressions evaluated from a dispatch payload. `uses:` steps are stood in for:
checkout copies the course (or a class of submissions), artifacts are copied
between jobs. Only `make venv` is skipped: the test already runs in that venv,
and `make test` has just built it.
"""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nbgrader.api import Gradebook

from conftest import ROOT
from submissions import answer_source, submission, submitted_class

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("workflows")]

WORKFLOW = ROOT / ".github" / "workflows" / "autograde.yml"
VENV = Path(sys.executable).parent.parent
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def evaluate(expr: str, context: dict):
    """The expressions the workflow uses: names, `a || b || 'literal'`, fromJson(x)."""
    expr = expr.strip()
    if expr.startswith("fromJson(") and expr.endswith(")"):
        return json.loads(evaluate(expr[len("fromJson("):-1], context))
    if "||" in expr:
        for part in expr.split("||"):
            value = evaluate(part, context)
            if value not in (None, ""):
                return value
        return ""
    if expr[0] == expr[-1] == "'":
        return expr[1:-1]
    if expr not in context:
        raise AssertionError(f"the workflow uses ${{{{ {expr} }}}}, which this test does not know: add it")
    return context[expr]


def expand(text: str, context: dict) -> str:
    return EXPRESSION.sub(lambda m: str(evaluate(m.group(1), context)), text)


def checkout(workspace: Path, inputs: dict, klass: Path) -> None:
    if inputs.get("repository"):  # the submissions repository
        shutil.copytree(klass / "submitted", workspace / inputs["path"] / "submitted")
        return
    for name in ("solutions", "assignments", "autograder"):
        shutil.copytree(ROOT / name, workspace / name)
    for name in ("nbgrader_config.py", "Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, workspace / name)
    (workspace / ".venv").symlink_to(VENV)


def upload(workspace: Path, inputs: dict, artifacts: Path) -> None:
    target = artifacts / inputs["name"]
    for line in inputs["path"].split():
        source = workspace / line
        assert source.exists(), f"upload-artifact: {line} was not made"
        if source.is_dir():
            shutil.copytree(source, target / line)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / line)


def download(workspace: Path, inputs: dict, artifacts: Path) -> None:
    assert inputs.get("merge-multiple") == "True", "this stand-in only merges artifacts into the workspace"
    found = [a for a in artifacts.iterdir() if fnmatch.fnmatch(a.name, inputs["pattern"])]
    assert found, f"download-artifact: nothing matches {inputs['pattern']}"
    for artifact in found:
        shutil.copytree(artifact, workspace, dirs_exist_ok=True)


def run_job(job: dict, workspace: Path, context: dict, klass: Path, artifacts: Path) -> dict:
    """Runs the job's steps; returns its outputs (what steps wrote to $GITHUB_OUTPUT)."""
    workspace.mkdir(parents=True)
    outputs = workspace.parent / f"{workspace.name}.outputs"
    outputs.touch()
    env = dict(os.environ, **{k: str(v) for k, v in context["env"].items()}, GITHUB_OUTPUT=str(outputs),
               COURSE_ROOT=str(workspace), PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for step in job["steps"]:
        action = step.get("uses", "").split("@")[0]
        inputs = {k: expand(str(v), context) for k, v in step.get("with", {}).items()}
        if action == "actions/checkout":
            checkout(workspace, inputs, klass)
        elif action == "actions/upload-artifact":
            upload(workspace, inputs, artifacts)
        elif action == "actions/download-artifact":
            download(workspace, inputs, artifacts)
        elif action == "actions/setup-python":
            continue
        else:
            assert "run" in step, f"a step this test cannot stand in for: {step}"
            script = expand(step["run"], context).replace("make venv", "true")
            proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=workspace, env=env,
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"step {step.get('name', script)!r} failed:\n{proc.stdout}\n{proc.stderr}"
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """Five students: full marks, the untouched release, two mistakes, a corrupted file."""
    root = tmp_path_factory.mktemp("submissions")
    scratch = tmp_path_factory.mktemp("scratch")
    return submitted_class(root, {
        "ada": submission(scratch, name="ada.ipynb"),
        "ben": submission(scratch, base="release", name="ben.ipynb"),
        "cy": submission(scratch, name="cy.ipynb", replace={
            "answer-causal-mask": answer_source("answer-causal-mask").replace(".tril()", ".tril(diagonal=-1)")}),
        "dan": submission(scratch, name="dan.ipynb", replace={
            "answer-sdpa": answer_source("answer-sdpa").replace(" / math.sqrt(d_k)", "")}),
        "eve": "not a notebook",
    })


def test_autograde_workflow_end_to_end(klass, tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML reads the key `on` as true
    assert "workflow_dispatch" in triggers and triggers["repository_dispatch"]["types"] == ["grade"]
    assert "self-hosted" in workflow["jobs"]["grade"]["runs-on"] and "gpu" in workflow["jobs"]["grade"]["runs-on"]
    assert subprocess.run(["make", "-n", "venv"], cwd=ROOT, capture_output=True).returncode == 0

    # As sent by a submissions repository (see the workflow's header).
    payload = {"assignment": "a03", "submissions": "course-org/a03-submissions", "shards": 2}
    context = {f"github.event.client_payload.{k}": v for k, v in payload.items()}
    context.update({f"github.event.inputs.{k}": "" for k in payload}, **{"secrets.SUBMISSIONS_TOKEN": "token"})
    context["env"] = {name: evaluate(EXPRESSION.fullmatch(value.strip()).group(1), context)
                      for name, value in workflow["env"].items()}
    context.update({f"env.{k}": v for k, v in context["env"].items()})
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    jobs = workflow["jobs"]

    plan = run_job(jobs["plan"], tmp_path / "plan", context, klass, artifacts)
    context["steps.matrix.outputs.shards"] = plan["shards"]
    context["needs.plan.outputs.shards"] = expand(jobs["plan"]["outputs"]["shards"], context)
    shards = evaluate(jobs["grade"]["strategy"]["matrix"]["shard"].strip()[3:-2], context)
    assert shards == [1, 2]
    for shard in shards:
        run_job(jobs["grade"], tmp_path / f"grade-{shard}", {**context, "matrix.shard": shard}, klass, artifacts)
    assert sorted(a.name for a in artifacts.iterdir()) == ["results-1", "results-2"]
    assert jobs["merge"]["needs"] == "grade"
    run_job(jobs["merge"], tmp_path / "merge", context, klass, artifacts)

    out = artifacts / "feedback-a03"
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission("a03", s).score for s in ("ada", "ben", "cy", "dan", "eve")}
    assert scores["ada"] == 10.0 and scores["ben"] == 0.0 and scores["eve"] == 0.0, scores
    # cy's mask costs causal_mask's point and part of SelfAttention's two, which uses it.
    assert 7.0 <= scores["cy"] < 10.0 and 0 < scores["dan"] < 10.0, scores
    for student in scores:
        assert (out / "feedback" / student / "a03" / "a03.html").is_file(), f"no feedback for {student}"
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(scores) and rows[0].startswith("assignment,")
