"""Unit recognition and exact conversion to each analyte's canonical unit.

All numbers (scales, molar masses, valences) come from `rules/units.yaml` and
`rules/analytes.yaml`; this module only knows how dimensions relate: mol = eq / valence and
mol = g / molar mass. It deliberately does not follow UCUM's 1 eq = 1 mol.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ruleset loader imports this module: no import back at run time
    from interpret.ruleset.schema import AnalyteDef, UnitDef


class UnitError(ValueError):
    pass


class UnitTable:
    """Unit spellings and conversion factors, computed once when the ruleset loads."""

    def __init__(self, units: dict[str, UnitDef], analytes: dict[str, AnalyteDef]) -> None:
        self.units = units
        self.analytes = analytes
        self._aliases: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        for key, unit in units.items():
            for spelling in (key, *unit.aliases):
                self._aliases[spelling] = key
                self._folded.setdefault(spelling.casefold(), key)
        self._factors: dict[tuple[str, str], float] = {}
        for name, analyte in analytes.items():
            for unit_key in analyte.units:
                self._factors[name, unit_key] = self._compute_factor(name, analyte, unit_key)

    def resolve(self, text: str) -> str | None:
        """The unit key for a spelling (exact, then alias, then case-insensitive), or None."""
        text = text.strip()
        found = self._aliases.get(text)
        return found if found is not None else self._folded.get(text.casefold())

    def spellings(self) -> tuple[dict[str, str], dict[str, str]]:
        """(exact spellings, case-folded spellings) -> unit key: what `resolve` reads, for a
        runner that matches spellings itself (the SQL's CASE lists, `sql/raw.py`)."""
        return dict(self._aliases), dict(self._folded)

    def factor(self, analyte: str, unit: str) -> float:
        """Multiply a value in `unit` by this to get the analyte's canonical unit."""
        try:
            return self._factors[analyte, unit]
        except KeyError:
            raise UnitError(f"{unit!r} is not a unit for {analyte}") from None

    def accepted(self, analyte: str) -> list[str]:
        return list(self.analytes[analyte].units)

    def display(self, unit: str) -> str:
        return self.units[unit].display or unit

    def _compute_factor(self, name: str, analyte: AnalyteDef, unit: str) -> float:
        if unit not in self.units:
            raise UnitError(f"analyte {name}: unit {unit!r} is not defined in units.yaml")
        if analyte.canonical_unit not in analyte.units:
            raise UnitError(f"analyte {name}: canonical unit must be one of its units")
        src, dst = self.units[unit], self.units[analyte.canonical_unit]
        base = src.scale
        if src.dimension != dst.dimension:
            base = self._to_mol(name, analyte, src.dimension, base)
            base = self._from_mol(name, analyte, dst.dimension, base)
        return base / dst.scale

    @staticmethod
    def _to_mol(name: str, analyte: AnalyteDef, dimension: str, value: float) -> float:
        if dimension == "substance":
            return value
        if dimension == "charge" and analyte.valence:
            return value / analyte.valence
        if dimension == "mass" and analyte.molar_mass:
            return value / analyte.molar_mass
        raise UnitError(f"analyte {name}: cannot convert {dimension} without molar mass/valence")

    @staticmethod
    def _from_mol(name: str, analyte: AnalyteDef, dimension: str, value: float) -> float:
        if dimension == "substance":
            return value
        if dimension == "charge" and analyte.valence:
            return value * analyte.valence
        if dimension == "mass" and analyte.molar_mass:
            return value * analyte.molar_mass
        raise UnitError(f"analyte {name}: cannot convert to {dimension} without molar mass/valence")


CENSORED_MARKS = "<>≤≥"  # "<2.0", ">60": a bound reported instead of a result
CENSORED = rf"^\s*[{CENSORED_MARKS}]"


def is_censored(text: str) -> bool:
    return re.match(CENSORED, text) is not None


@lru_cache(maxsize=8192)
def format_number(value: float) -> str:
    """Show a number as a clinician would read it: no float noise, no needless decimals.

    Values of 100 and over keep a decimal that is there: a corrected sodium of 134.6 shown
    as "135" would read as inside an interval that starts at 135, while it is below it.
    """
    if value == int(value) and abs(value) >= 10:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.1f}"
        return text[:-2] if text.endswith(".0") else text
    digits = 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0")
        text = text + "0" if text.endswith(".") else text
    return text


def format_beside(value: float, limits: Iterable[float]) -> str:
    """`format_number`, with as many more decimals as it takes for the number shown to stand
    on the same side of each limit as the value itself: a corrected calcium of 2.146 mmol/L
    beside an interval starting at 2.15 shows as "2.146", not "2.15" (which would read as
    inside the interval, while the finding says low)."""
    text = format_number(value)
    if float(text) == value:
        return text  # shown exactly: on its own side of anything
    ends = [limit for limit in limits if math.isfinite(limit)]
    decimals = len(text.partition(".")[2])
    while decimals < 6 and not all(_side(float(text), end) == _side(value, end) for end in ends):
        decimals += 1
        text = f"{value:.{decimals}f}"
    return text


def _side(value: float, limit: float) -> int:
    """-1 below, 0 on, 1 above the limit; "on" up to the noise of a unit conversion (1e-9)."""
    if abs(value - limit) <= 1e-9 * max(1.0, abs(limit)):
        return 0
    return (value > limit) - (value < limit)
