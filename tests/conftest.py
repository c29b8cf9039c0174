"""Shared fixtures: the repository, the course CLI, one book build per session, a
headless browser; and the test-run budget's hooks (tests/budget.py)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import budget
from budget import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401 (hooks)

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
        env={"COURSE_BOOK_BUILD": "1", "OMP_NUM_THREADS": "1"},  # as `make book` (see the Makefile)
        timeout=1200,
    )
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    times = out / "_build" / "exec-times.json"
    if times.exists():
        budget.record_exec_times({page: t["seconds"] for page, t in json.loads(times.read_text()).items()})
    return html


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MATHJAX_DONE = """async () => {
  for (let i = 0; i < 100 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(r => setTimeout(r, 100));
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return {loaded: false};
  await MathJax.startup.promise;
  return {
    loaded: true,
    typeset: document.querySelectorAll('mjx-container').length,
    errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    raw: (document.body.innerText.match(/\\\\(frac|sqrt|mathrm)\\b/g) || []).length,
  };
}"""


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium through Playwright; skipped with a reason when absent."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found (install Debian's `chromium`; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def toc_files() -> list[str]:
    """The pages of _toc.yml, in order (paths without suffix, e.g. book/intro)."""
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            files.append(entry["file"])
            walk(entry.get("sections", []))
    for part in toc["parts"]:
        walk(part["chapters"])
    return files


def chapters() -> dict[str, list[str]]:
    """Published chapters: folder (book/chNN-slug) -> its pages in the table of contents."""
    found = {}
    for f in toc_files():
        folder, _, _ = f.rpartition("/")
        if folder.startswith("book/ch"):
            found.setdefault(folder, []).append(f)
    return found
