"""Single-panel speed: validate + derive + evaluate, and the full report, per panel.

Prints panels per second and the median time per panel, and ratios against baselines
measured in the same run (the machine is shared and noisy; absolute times alone mean little):
structural validation alone (pydantic, the floor for any validated input) and the closure
interpreter (the reference back-end). Goal: median <= 100 µs for validate+derive+evaluate.
Run: .venv/bin/python benchmarks/bench_panel.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panels import panels

from interpret.models import PanelIn
from interpret.pipeline import Interpreter
from interpret.prepare import build_facts
from interpret.validate import validate_panel


def measure(name: str, fn: Callable[[Any], object], items: list[Any]) -> float:
    for item in items[:500]:  # warm caches (medication matches, compiled code)
        fn(item)
    times = []
    start = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    median = statistics.median(times) * 1e6
    p99 = sorted(times)[int(len(times) * 0.99)] * 1e6
    print(f"{name:<44} {len(items) / total:>10,.0f}/s  median {median:7.1f} µs  p99 {p99:7.1f} µs")
    return median


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    interpreter = Interpreter()
    rs = interpreter.ruleset
    items = panels(n)
    print(f"{n} generated panels, ruleset v{rs.version} ({len(rs.rules)} rules)")
    floor = measure("baseline: structural validation (pydantic)", PanelIn.model_validate, items)

    def by_closures(p: Any) -> object:
        panel = validate_panel(p, rs)
        return interpreter.engine.evaluate_by_closures(build_facts(panel, rs))

    reference = measure("baseline: validate+derive+closure interpreter", by_closures, items)
    core = measure("validate + derive + evaluate (generated)", interpreter.evaluate, items)
    full = measure("full Interpretation (with evidence, wording)", interpreter.interpret, items)
    print(f"ratio evaluate / structural validation: {core / floor:.1f}x")
    print(f"ratio evaluate / closure interpreter:   {core / reference:.2f}x")
    print(f"ratio full report / evaluate:           {full / core:.1f}x")
    verdict = "meets" if core <= 100 else "MISSES"
    print(f"goal <= 100 µs median for validate+derive+evaluate: {core:.1f} µs ({verdict})")


if __name__ == "__main__":
    main()
