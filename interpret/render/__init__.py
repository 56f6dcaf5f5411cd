"""Renderers: Interpretation -> JSON, HTML, plain text. They render; they decide nothing."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from interpret.models import Interpretation
from interpret.resources import data_dir

FORMATS = ("json", "html", "text")


def templates_dir() -> Path:
    return data_dir("templates", "report.html")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from interpret.units import format_number

    env.filters["num"] = format_number
    return env


def render(interpretation: Interpretation, fmt: str) -> str:
    if fmt == "json":
        from interpret.render.json import render_json

        return render_json(interpretation)
    if fmt == "html":
        from interpret.render.html import render_html

        return render_html(interpretation)
    if fmt == "text":
        from interpret.render.text import render_text

        return render_text(interpretation)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
