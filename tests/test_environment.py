"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""
import re
import tomllib

import yaml

from conftest import ROOT


def pinned(requirements):
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        assert m, f"'{req}' is not pinned with ==: pin every dependency"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pkgs = [d for d in env["dependencies"] if isinstance(d, str)]

    extras = [r for group in project["optional-dependencies"].values() for r in group]
    assert pinned(project["dependencies"] + extras) == pinned([r for r in pip_section if not r.startswith("-e ")])
    assert "-e .[postgres]" in pip_section, "environment.yml must install the course package itself (-e .[postgres])"
    assert "python=3.11" in conda_pkgs and project["requires-python"].startswith(">=3.11")


def test_core_packages_are_declared():
    names = pinned(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for needed in ["jupyter-book", "nbgrader", "torch", "ipywidgets", "pytest", "nbval"]:
        assert needed in names, f"{needed} is missing from pyproject.toml"
    assert names["jupyter-book"].startswith("1."), "Jupyter Book 2.x cannot build offline: keep 1.x"


def test_grades_and_student_work_stay_out_of_git():
    """What a class produces is never committed by accident (README, "Your first class")."""
    import shutil
    import subprocess

    import pytest
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["gradebook.db", "grades.csv", "grades-a03.csv", "students.csv", "roster-2026.csv", "results-a03-1-of-2.json", "submitted/ada/a03/a03.ipynb",
             "autograded/ada/a03/report.json", "feedback/ada/a03/a03.html"]
    proc = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(proc.stdout.split()) == sorted(paths), f"not ignored: {set(paths) - set(proc.stdout.split())}"
