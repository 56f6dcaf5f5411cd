"""Where `rules/` and `templates/` are: in the checkout, or inside the installed wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

SOURCE_ROOT = Path(__file__).resolve().parents[1]
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def data_dir(folder: str, marker: str) -> Path:
    """`folder` of the source checkout if it holds `marker`, else the wheel's copy.

    The wheel installs `rules/` as `interpret._rules` and `templates/` as
    `interpret._templates` (data-only namespace packages, see pyproject.toml).
    """
    source = SOURCE_ROOT / folder
    if (source / marker).is_file():
        return source
    spec = importlib.util.find_spec(f"interpret._{folder}")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"cannot find the {folder}/ folder of this installation")
    return Path(next(iter(spec.submodule_search_locations)))


def read_yaml(path: Path) -> Any:
    """A YAML file as plain data, through libyaml when the build has it (start-up time).

    Both loaders are the *safe* loader: no Python objects are ever constructed from a file.
    """
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
