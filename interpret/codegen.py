"""The fast single-panel back-end: the whole ruleset generated as one Python function.

Like sqlglot's Python executor, this turns the condition AST into Python source once, when
the ruleset loads. Every name and number in the source comes from the closed vocabulary or
is passed in as a constant (`K0`, `K1`, ...); no text from a rule file is ever evaluated.
Semantics are those of `engine.compile_node` (three-valued logic); a test compares the two
on every rule example and on generated panels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from interpret import serial
from interpret.facts import QUANTITIES, presence_of
from interpret.ruleset import conditions as c
from interpret.ruleset.load import Ruleset

_COMPARE = {"below": "<", "at_or_below": "<=", "above": ">", "at_or_above": ">="}


class _Source:
    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self._temp = 0

    def const(self, value: Any) -> str:
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name

    def temp(self) -> str:
        self._temp += 1
        return f"_t{self._temp}"

    def expr(self, node: c.Node) -> str:
        match node:
            case c.All(items):
                t = self.temp()
                parts = ", ".join(self.expr(i) for i in items)
                return f"(False if False in ({t} := ({parts},)) else None if None in {t} else True)"
            case c.Any_(items):
                t = self.temp()
                parts = ", ".join(self.expr(i) for i in items)
                return f"(True if True in ({t} := ({parts},)) else None if None in {t} else False)"
            case c.Not(item):
                t = self.temp()
                return f"(None if ({t} := {self.expr(item)}) is None else not {t})"
            case c.StatusIn(quantity, statuses, _):
                q = _local(quantity)
                return f"(None if {q} is None else {q}.status in {self.const(statuses)})"
            case c.Compare(quantity, op, threshold):
                q = _local(quantity)
                by_unit = self.const(dict(threshold.by_unit))
                primary = self.const(threshold.primary)
                limit = f"{by_unit}.get({q}.unit, {primary})"
                return f"(None if {q} is None else {q}.value {_COMPARE[op]} {limit})"
            case c.Available(name):
                return self._available(name)
            case c.Missing(name):
                return f"(not {self._available(name)})"
            case c.Taking(classes):
                tests = " or ".join(f"{self.const(cl)} in C" for cl in classes)
                return f"(None if C is None else ({tests}))"
            case c.TakingCount(classes, at_least):
                count = " + ".join(f"({self.const(cl)} in C)" for cl in classes)
                return f"(None if C is None else ({count}) >= {int(at_least)})"
            case c.SpecimenFlag():
                return "f.hemolyzed"
            case c.NeedsVerification(names):
                tests = " or ".join(f"({_local(n)} is not None and {_local(n)}.verify is not None)" for n in names)
                return f"({tests})"
            case c.SexIs(values):
                return f"(None if f.sex is None else f.sex in {self.const(values)})"
            case c.UnrecognizedMedications():
                return "bool(f.unrecognized)"
            case c.SettingOn(name):
                return f"bool(f.settings[{self.const(name)}])"
            case c.Change() | c.Ratio() | c.Earlier() | c.StartedAfter():
                # across time: the one evaluator (`serial.evaluate`), bound to its node
                return f"{self.const(functools.partial(serial.evaluate, node))}(f)"
        raise TypeError(f"no generator for {node!r}")

    @staticmethod
    def _available(name: str) -> str:
        tested = presence_of(name)
        if tested is None:
            return "True"
        if tested in QUANTITIES:
            return f"({_local(tested)} is not None)"
        return {"age": "(f.age is not None)", "sex": "(f.sex is not None)", "medications": "(C is not None)"}[tested]


def _local(quantity: str) -> str:
    if quantity not in QUANTITIES:  # names are identifiers from a fixed list
        raise ValueError(quantity)
    return f"q_{quantity}"


def generate(ruleset: Ruleset) -> tuple[str, dict[str, Any]]:
    """Python source of `evaluate_all(f)`, returning [(rule index, severity rank | None)].

    Only rules that fired (with their rank) or could not be assessed (None) are returned.
    """
    src = _Source()
    lines = ["def evaluate_all(f):", "    Q = f.quantities", "    C = f.classes", "    out = []"]
    lines += [f"    {_local(q)} = Q.get({q!r})" for q in QUANTITIES]
    lines += [f"    s{i} = -1" for i in range(len(ruleset.rules))]
    for i, (rule, plan) in enumerate(zip(ruleset.rules, ruleset.severity_plans, strict=True)):
        lines.append(f"    r = {src.expr(rule.condition)}")
        lines.append(f"    if r is None: out.append(({i}, None))")
        lines.append("    elif r:")
        # severity.SeverityPlan: the highest escalation that holds, else the rule's own tier
        lines.append(f"        s = {plan.base}")
        for k, (to, node) in enumerate(plan.raises):
            lines.append(f"        {'if' if k == 0 else 'elif'} {src.expr(node)} is True: s = {to}")
        for j in plan.at_least:
            lines.append(f"        if s < s{j}: s = s{j}")
        lines.append(f"        s{i} = s")
        lines.append(f"        out.append(({i}, s))")
    lines.append("    return out")
    return "\n".join(lines) + "\n", src.constants


def build(ruleset: Ruleset) -> Callable[[Any], list[tuple[int, int | None]]]:
    source, constants = generate(ruleset)
    namespace: dict[str, Any] = dict(constants)
    code = compile(source, f"<ruleset {ruleset.version} {ruleset.sha256[:12]}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated from the validated AST only
    return namespace["evaluate_all"]  # type: ignore[no-any-return]
