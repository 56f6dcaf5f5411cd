"""The ruleset catalogue: every rule with its logic in words, tiers and sources.

Generated from the same rule objects the engines run (datasette's model: one declaration
yields both behaviour and explanation), for `interpret rules list`, `GET /api/v1/rules` and
the CDS Hooks card links.
"""

from __future__ import annotations

from typing import Any

from interpret.ruleset import Ruleset


def catalogue(ruleset: Ruleset) -> dict[str, Any]:
    return {
        "name": ruleset.meta.name,
        "version": ruleset.version,
        "sha256": ruleset.sha256,
        "title": ruleset.meta.title,
        "intended_use": ruleset.meta.intended_use,
        "disclaimer": ruleset.disclaimer(),
        "rules": [rule_entry(ruleset, rule.code) for rule in ruleset.rules],
    }


def rule_entry(ruleset: Ruleset, code: str) -> dict[str, Any]:
    rule = ruleset.rule(code)
    d = rule.definition
    return {
        "code": d.code,
        "title": d.title,
        "severity": d.severity,
        "escalations": [{"to": to, "when": node.words()} for to, node in rule.escalations],
        "at_least_as_severe_as": list(d.at_least_as_severe_as),
        "logic": rule.condition.words(),
        "recommendation": " ".join(d.recommendation.split()),
        "references": [
            {"key": k, "citation": ruleset.references[k].citation, "url": ruleset.references[k].url}
            for k in d.references
        ],
        "source": rule.source,
        "order_suggestion": d.order_suggestion.model_dump() if d.order_suggestion else None,
        "examples": {"fires": len(d.examples.fires), "silent": len(d.examples.silent)},
    }
