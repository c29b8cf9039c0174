"""What a hidden suite must tell apart, as data: `autograder/suites/aNN/banks.py`.

A suite is only as good as the wrong answers it catches and the right ones it
accepts. Each assignment keeps, beside its suite:

* MISTAKES: common wrong answers, each an edit of the reference answer (old ->
  new, every old must be in it) or a whole answer cell, with the tests expected
  to catch it. `course audit` checks that it costs points on its own component,
  on no component that does not depend on it, and that one of the named tests
  is among those that caught it.
* ALTERNATIVES: other correct answers (another formula, einsum, loops): full marks.
* HOLLOW: answers that only look like answers (zeros, constants, the input
  passed through): their component's gate must stop them.
* DEPENDS: components whose answers call others' (a mistake there may cost them too).
* ROLES: arguments of a component that can share a shape (keys and values); each
  pair needs a mistake that swaps the two (`swaps=`), so that the suite is shown
  to give each role distinct contents.

The file is plain Python so that answer cells read as code; it defines data only.
"""
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from .config import suite_dir
from .paths import CourseError

GATE = "gate"  # in caught_by: the component's gate stops the mistake


@dataclass(frozen=True)
class Mistake:
    component: str                      # grade id of the test cell whose points it must cost
    name: str
    caught_by: tuple[str, ...]          # test functions (or "test[param]", or GATE) expected to fail
    edits: tuple[tuple[str, str], ...] = ()  # (old, new) applied to the reference answer, in order
    source: str | None = None           # or: the whole answer cell
    cell: str | None = None             # the answer cell (default: the component's only one)
    swaps: tuple[str, str] | None = None  # the two roles this mistake confuses (see ROLES)

    def __post_init__(self):
        object.__setattr__(self, "caught_by", tuple([self.caught_by] if isinstance(self.caught_by, str)
                                                    else self.caught_by))
        object.__setattr__(self, "edits", tuple(tuple(e) for e in self.edits))
        if (self.source is None) == (not self.edits):
            raise CourseError(f"mistake {self.name}: give either edits or source, not both or neither")
        if not self.caught_by:
            raise CourseError(f"mistake {self.name}: name the tests expected to catch it (caught_by)")


@dataclass(frozen=True)
class Alternative:
    component: str
    name: str
    source: str
    cell: str | None = None


@dataclass(frozen=True)
class Hollow:
    component: str
    name: str
    source: str
    cell: str | None = None


@dataclass
class Banks:
    assignment: str
    mistakes: list[Mistake] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    hollow: list[Hollow] = field(default_factory=list)
    depends: dict[str, set[str]] = field(default_factory=dict)
    roles: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, assignment: str) -> "Banks":
        path = banks_path(assignment)
        if not path.exists():
            raise CourseError(f"{path.relative_to(path.parents[3])} is missing: every assignment keeps banks of "
                              "mistakes and alternatives beside its suite (see autograder/banks.py)")
        spec = importlib.util.spec_from_file_location(f"banks_{assignment}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return cls(assignment, list(getattr(module, "MISTAKES", [])), list(getattr(module, "ALTERNATIVES", [])),
                   list(getattr(module, "HOLLOW", [])),
                   {k: set(v) for k, v in getattr(module, "DEPENDS", {}).items()},
                   {k: [tuple(p) for p in v] for k, v in getattr(module, "ROLES", {}).items()})

    def affected_by(self, component: str) -> set[str]:
        """Components whose points a wrong `component` may cost: itself and its dependents."""
        return {component} | {c for c, needs in self.depends.items() if component in needs}


def banks_path(assignment: str) -> Path:
    return suite_dir(assignment) / "banks.py"


def apply_edits(source: str, edits, what: str) -> str:
    for old, new in edits:
        if old not in source:
            raise CourseError(f"{what}: {old!r} is not in the reference answer: update the edit")
        source = source.replace(old, new)
    return source
