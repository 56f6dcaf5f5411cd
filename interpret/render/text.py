"""The plain-text report, for pasting into a clinical note (templates/report.txt)."""

from __future__ import annotations

from interpret.models import Interpretation
from interpret.render import environment
from interpret.render.view import context


def render_text(interpretation: Interpretation) -> str:
    return environment().get_template("report.txt").render(**context(interpretation))
