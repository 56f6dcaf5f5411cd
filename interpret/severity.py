"""How a fired rule's severity is decided: one plan per rule, read by every evaluator.

A rule fires at its own tier (`severity`), is raised by the highest `escalate` step whose
condition holds, then to at least the tier of each earlier rule it names in
`at_least_as_severe_as` that fired too (rules/README.md). The closures (`engine.py`), the
generated Python (`codegen.py`) and the polars runner (`batch/polars_backend.py`) all walk
this plan, so none of them restates the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ruleset loader imports this module: no import back at run time
    from interpret.ruleset import conditions as c


@dataclass(frozen=True)
class SeverityPlan:
    base: int  # the rule's own tier, as a rank (rules/ruleset.yaml's `severities`, lowest first)
    raises: tuple[tuple[int, c.Node], ...]  # (rank, condition), highest first; only ranks above base
    at_least: tuple[int, ...]  # indexes of earlier rules whose tier this one is at least

    def decide(self, holds: Callable[[c.Node], bool], fired_ranks: Sequence[int | None]) -> int:
        """The rank, given which conditions hold and the ranks of earlier fired rules."""
        rank = next((to for to, node in self.raises if holds(node)), self.base)
        return max([rank, *(r for i in self.at_least if (r := fired_ranks[i]) is not None)])


def severity_plans(
    rules: Sequence[tuple[str, str, Sequence[tuple[str, c.Node]], Sequence[str]]], rank: dict[str, int]
) -> list[SeverityPlan]:
    """One plan per rule, from (code, severity, escalations, at_least_as_severe_as)."""
    index = {code: i for i, (code, *_rest) in enumerate(rules)}
    plans = []
    for _code, severity, escalations, at_least in rules:
        base = rank[severity]
        raises = sorted(((rank[to], node) for to, node in escalations if rank[to] > base), key=lambda s: -s[0])
        plans.append(SeverityPlan(base, tuple(raises), tuple(index[o] for o in at_least)))
    return plans
