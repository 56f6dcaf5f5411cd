"""The ruleset's recorded release: the version it was built from, with its content hash.

`rules/released.yaml` (outside the content hash) records the version and the SHA-256 of the
folder when it was last released (`interpret rules release`). `interpret rules check` then
refuses content that changed while the version stayed (two different rulesets would print
the same version on their reports), and a changed rule none of whose examples tells the
released rule from the changed one (the change would be untested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from interpret.ruleset.load import Ruleset

RELEASED = "released.yaml"  # not part of the content hash (load.content_hash)


@dataclass(frozen=True)
class Released:
    version: str
    sha256: str


def released(rs: Ruleset) -> Released | None:
    path = rs.directory / RELEASED
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return Released(str(data.get("version", "")), str(data.get("sha256", "")))


def record(rs: Ruleset) -> Path:
    path = rs.directory / RELEASED
    path.write_text(
        "# Written by `interpret rules release`: the version this folder was released as, and the\n"
        "# SHA-256 of its content then. `interpret rules check` fails when the content changes\n"
        "# while the version stays. Not part of the content hash.\n"
        f'version: "{rs.version}"\nsha256: {rs.sha256}\n',
        encoding="utf-8",
    )
    return path


def version_problems(rs: Ruleset) -> list[str]:
    """Why this folder may not be used as it is, relative to its recorded release."""
    done = released(rs)
    if done is None or done.version != rs.version or done.sha256 == rs.sha256:
        return []
    return [
        f"the content changed since version {done.version} was released (sha256 {done.sha256[:12]} -> "
        f"{rs.sha256[:12]}) but `version` in ruleset.yaml did not: raise it, say what changed in "
        "CHANGES.md, then `interpret rules release`"
    ]


def uncovered_changes(old: Any, new: Any) -> list[str]:
    """Rules whose logic (condition, severity, escalations) differs between two interpreters'
    rulesets, none of whose examples (old or new) has a different outcome under the two: the
    changed branch is untested."""
    from interpret.ruleset.check import example_outcome
    from interpret.validate import InputError

    before = {r.code: r for r in old.ruleset.rules}
    problems = []
    for rule in new.ruleset.rules:
        earlier = before.get(rule.code)
        if earlier is None or _logic(earlier) == _logic(rule):  # wording alone has no branch to cover
            continue
        panels = [
            c.panel for r in (rule, earlier) for c in (*r.definition.examples.fires, *r.definition.examples.silent)
        ]

        def outcome(interpreter: Any, panel: dict[str, Any], code: str = rule.code) -> Any:
            try:
                found = example_outcome(interpreter, code, panel)
            except (InputError, ValueError):
                return "invalid"
            return None if found is None else (found.fired, found.severity)

        if all(outcome(old, p) == outcome(new, p) for p in panels):
            problems.append(
                f"{rule.code}: changed since the released version, but none of its examples fires or stays "
                "silent differently under the two: add an example at the changed boundary"
            )
    return problems


def _logic(rule: Any) -> Any:
    d = rule.definition
    return rule.condition, d.severity, rule.escalations, tuple(d.at_least_as_severe_as or ())
