"""The public JSON form of an Interpretation."""

from __future__ import annotations

from interpret.models import Interpretation, to_json


def render_json(interpretation: Interpretation) -> str:
    return to_json(interpretation, indent=2)
