"""A hidden suite's settings, read without importing torch (commands read them
before starting zygotes)."""
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import Limits

SUITES = Path(__file__).resolve().parent / "suites"


@dataclass
class SuiteConfig:
    """autograder/suites/aNN/suite.toml: limits, and APIs that answers may not use
    (`[forbidden] apis` for every component, `[forbidden.components] <grade id>`
    for one)."""
    limits: Limits
    forbidden: list[str] = field(default_factory=list)
    forbidden_by_component: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, assignment: str) -> "SuiteConfig":
        path = SUITES / assignment / "suite.toml"
        data = tomllib.loads(path.read_text()) if path.exists() else {}
        forbidden = data.get("forbidden", {})
        return cls(Limits.from_dict(data.get("limits")), forbidden.get("apis", []),
                   forbidden.get("components", {}))

    def forbidden_for(self, grade_id: str) -> list[str]:
        return self.forbidden + self.forbidden_by_component.get(grade_id, [])

    def all_forbidden(self) -> list[str]:
        return sorted(set(self.forbidden).union(*self.forbidden_by_component.values()))


def suite_dir(assignment: str) -> Path:
    return SUITES / assignment
