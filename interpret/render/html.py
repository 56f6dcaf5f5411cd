"""The standalone, printable HTML report (templates/report.html)."""

from __future__ import annotations

from interpret.models import Interpretation
from interpret.render import environment
from interpret.render.view import context


def render_html(interpretation: Interpretation, **extra: object) -> str:
    return environment().get_template("report.html").render(**context(interpretation), **extra)
