"""The generated back-end and the closure interpreter agree; three-valued logic holds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from interpret.engine import compile_node
from interpret.ruleset import conditions as c
from interpret.validate import InputError
from tests.strategies import panels


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(panels())
def test_generated_code_matches_the_closure_interpreter(interpreter, panel):
    try:
        _, facts, generated = interpreter.evaluate(panel)
    except InputError:
        return
    assert generated == interpreter.engine.evaluate_by_closures(facts)


class FakeFacts:
    def __init__(self, **quantities):
        self.quantities = quantities
        self.classes = None


class Q:
    def __init__(self, status):
        self.status = status


def test_kleene_logic():
    low_k = c.StatusIn("potassium", frozenset({"low"}), "is low")
    low_mg = c.StatusIn("magnesium", frozenset({"low"}), "is low")
    both = compile_node(c.All((low_k, low_mg)))
    either = compile_node(c.Any_((low_k, low_mg)))
    neither = compile_node(c.Not(c.Any_((low_k, low_mg))))
    only_k_low = FakeFacts(potassium=Q("low"))
    only_k_normal = FakeFacts(potassium=Q("normal"))
    assert both(only_k_low) is None  # unknown: Mg missing
    assert both(only_k_normal) is False  # false whatever Mg is
    assert either(only_k_low) is True
    assert either(only_k_normal) is None
    assert neither(only_k_normal) is None
