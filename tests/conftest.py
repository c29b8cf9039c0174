"""Shared fixtures: the repository, the course CLI, and one book build per session."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(cmd, cwd=ROOT, env=None, timeout=600):
    """Run a command with the venv's bin/ first on PATH (nbgrader calls alembic)."""
    full_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def course(*args, env=None):
    return run([sys.executable, "-m", "autograder.cli", *args], env=env)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the book the way `make book` does, warnings as errors, into a temp folder."""
    out = tmp_path_factory.mktemp("book")
    proc = run(
        [str(BIN / "jupyter-book"), "build", str(ROOT), "--path-output", str(out),
         "--warningiserror", "--keep-going"],
        env={"COURSE_BOOK_BUILD": "1"},
        timeout=1200,
    )
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    return html


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None
