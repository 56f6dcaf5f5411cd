"""The public JSON form of an Interpretation."""

from __future__ import annotations

from interpret.models import Interpretation


def render_json(interpretation: Interpretation) -> str:
    return interpretation.model_dump_json(indent=2)
