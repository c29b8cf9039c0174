"""The book's course-wide facts, each from one place.

* ``{assignment} aNN`` (directive): the download link and the Colab, Binder and
  JupyterHub launch links of an assignment, built from ``_config.yml``'s
  ``repository`` and ``course_launch`` (its ``launch_buttons`` and Colab). No page writes these URLs by hand, so
  changing the repository or the hub there changes every link.
* ``{course-map}`` (directive): the front page's table of the 15 chapters. A
  chapter whose overview page is in ``_toc.yml`` is linked, under that page's own
  title; the build fails when the table lacks a published chapter or names it
  differently than its page does.
* ``_build/exec-times.json`` (at the end of a build): how long each page took to
  execute, for the test-run budget (see the README).
"""
import json
import re
from pathlib import Path
from urllib.parse import quote

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
CHAPTER_PAGE = re.compile(r"^book/ch(\d\d)-[^/]+/index$")


# --- assignment links ------------------------------------------------------------------------

def launch_links(repository_url: str, branch: str, launch: dict, notebook: str) -> list[tuple[str, str]]:
    """(label, URL) of each configured launch service for `notebook`, a path in the
    repository such as assignments/a03/a03.ipynb."""
    repo_path = repository_url.rstrip("/").removeprefix("https://github.com/")
    repo_name = repo_path.rpartition("/")[2]
    links = []
    if launch.get("colab_url"):
        links.append(("Colab", f"{launch['colab_url'].rstrip('/')}/github/{repo_path}/blob/{branch}/{notebook}"))
    if launch.get("binderhub_url"):
        interface = "labpath" if launch.get("notebook_interface", "jupyterlab") == "jupyterlab" else "filepath"
        links.append(("Binder", f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{repo_path}/{branch}"
                                f"?{interface}={quote(notebook, safe='')}"))
    if launch.get("jupyterhub_url"):
        # nbgitpuller clones the repository into the user's home, then opens the notebook.
        target = quote(f"lab/tree/{repo_name}/{notebook}", safe="")
        links.append(("JupyterHub", f"{launch['jupyterhub_url'].rstrip('/')}/hub/user-redirect/git-pull"
                                    f"?repo={quote(repository_url, safe='')}&branch={quote(branch, safe='')}"
                                    f"&urlpath={target}"))
    return links


def _site(config) -> tuple[str, str, dict]:
    """The repository, its branch, and the assignments' launch services (course_launch
    in _config.yml's sphinx.config: the theme's launch_buttons plus Colab)."""
    options = config.html_theme_options or {}
    return options.get("repository_url", ""), options.get("repository_branch", "main"), \
        dict(config.course_launch or {})


class AssignmentDirective(SphinxDirective):
    """``{assignment} aNN``: download and launch links for assignments/aNN/*.ipynb."""
    required_arguments = 1

    def run(self):
        name = self.arguments[0]
        notebooks = sorted((Path(self.env.srcdir) / "assignments" / name).glob("*.ipynb"))
        if not re.fullmatch(r"a\d\d", name) or not notebooks:
            raise self.error(f"{{assignment}} {name}: no released notebook in assignments/{name}/ "
                             "(run `course release`)")
        notebook = f"assignments/{name}/{notebooks[0].name}"
        download = addnodes.download_reference("", "", nodes.literal(text=notebooks[0].name),
                                               reftarget=f"/{notebook}", refdoc=self.env.docname,
                                               reftype="download", refdomain="", refexplicit=True)
        first = nodes.paragraph("", "Download the notebook: ", download)
        repo, branch, launch = _site(self.config)
        links = launch_links(repo, branch, launch, notebook) if repo else []
        items = [nodes.list_item("", first)]
        if links:
            para = nodes.paragraph("", "Open it in ")
            for i, (label, url) in enumerate(links):
                if i:
                    para += nodes.Text(" or your course's " if label == "JupyterHub" else ", ")
                para += nodes.reference("", label, refuri=url, classes=[f"launch-{label.lower()}"])
            para += nodes.Text(".")
            items.append(nodes.list_item("", para))
        return [nodes.bullet_list("", *items, classes=["assignment-links"])]


# --- the course map -------------------------------------------------------------------------------

class CourseMapDirective(SphinxDirective):
    """A table of the course's chapters from lines ``N | title | you build``, grouped
    under part lines (any line without ``|``)."""
    has_content = True

    def run(self):
        published = {int(m.group(1)): doc for doc in self.env.found_docs if (m := CHAPTER_PAGE.match(doc))}
        rows, part, listed = [], "", set()
        for line in self.content:
            if not line.strip():
                continue
            if "|" not in line:
                part = line.strip()
                continue
            number, title, builds = (cell.strip() for cell in line.split("|"))
            n = int(number)
            listed.add(n)
            doc = published.get(n)
            if doc:
                self.env.course_map_titles = getattr(self.env, "course_map_titles", {})
                self.env.course_map_titles[doc] = (f"{n}. {title}", self.env.docname)
                cell = addnodes.pending_xref("", nodes.inline("", f"{n}. {title}"), reftype="doc", refdomain="std",
                                             reftarget=f"/{doc}", refexplicit=False, refdoc=self.env.docname,
                                             refwarn=True)
                chapter = nodes.strong("", "", cell)
            else:
                chapter = nodes.Text(f"{n}. {title}")
            rows.append((nodes.strong(text=part) if part and part not in [r[3] for r in rows] else nodes.Text(""),
                         chapter, nodes.Text(builds), part))
        missing = sorted(set(published) - listed)
        if missing:
            raise self.error(f"course map: chapter(s) {missing} are in _toc.yml but not in the map")
        return [self._table([("part", "chapter", "you build")] + [r[:3] for r in rows])]

    @staticmethod
    def _table(rows):
        table = nodes.table(classes=["course-map"])
        group = nodes.tgroup(cols=3)
        table += group
        group += [nodes.colspec(colwidth=w) for w in (2, 4, 6)]
        head, body = nodes.thead(), nodes.tbody()
        group += [head, body]
        for i, cells in enumerate(rows):
            row = nodes.row()
            for cell in cells:
                entry = nodes.entry()
                entry += nodes.paragraph("", "", cell if isinstance(cell, nodes.Node) else nodes.Text(cell))
                row += entry
            (head if i == 0 else body).append(row)
        return table


def check_course_map(app, env):
    """The map names each published chapter as its page does."""
    for doc, (title, where) in getattr(env, "course_map_titles", {}).items():
        page = env.titles.get(doc)
        if page is not None and page.astext() != title:
            logger.warning(f"course map in {where} calls {doc} '{title}', but its page is titled "
                           f"'{page.astext()}': make them agree", location=where)


# --- execution times -----------------------------------------------------------------------------

def write_exec_times(app, exception):
    """Each executed page's run time, from myst-nb's records (cached pages keep the
    time of the run that filled the cache)."""
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector
    times = {}
    for doc in sorted(app.env.found_docs):
        data = NbMetadataCollector.get_exec_data(app.env, doc)
        if data and data.get("runtime") is not None:
            times[doc] = {"seconds": round(float(data["runtime"]), 2), "method": data.get("method"),
                          "succeeded": data.get("succeeded")}
    Path(app.outdir).parent.joinpath("exec-times.json").write_text(json.dumps(times, indent=1))


def setup(app):
    app.add_config_value("course_launch", {}, "env")
    app.add_directive("assignment", AssignmentDirective)
    app.add_directive("course-map", CourseMapDirective)
    app.connect("env-check-consistency", check_course_map)
    app.connect("build-finished", write_exec_times)
    return {"parallel_read_safe": False, "parallel_write_safe": True, "env_version": 1}
