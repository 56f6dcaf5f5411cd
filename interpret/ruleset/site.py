"""A site's own reference intervals, critical limits, switches and wording, without copying
`rules/`: a small overlay file applied to the shipped ruleset.

    site: St Elsewhere laboratory
    analytes:
      potassium:
        reference_interval: {any: {mmol/L: [3.5, 5.3]}}
        critical: {below: {mmol/L: 2.8}, at_or_above: {mmol/L: 6.0}}
    settings: {egfr_g5_critical: true}
    rules:
      hypokalemia: {recommendation: "Follow the St Elsewhere potassium replacement protocol."}

The overlay is applied to a copy of the ruleset folder (the site file copied in beside it),
so the content hash covers both, and the version becomes `<version>+site.<name>`: every
output names the shipped version and the site. Only these keys may be overridden; the rule
logic stays the reviewed one. Anything the overlay names that the ruleset does not have is
refused by name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from interpret.ruleset.load import RulesetError

SITE_FILE = "site.yaml"  # the overlay, as copied into the folder it made


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteAnalyte(_Strict):
    reference_interval: dict[str, Any] | None = None
    interval_source: str | None = None
    critical: dict[str, Any] | None = None


class SiteWording(_Strict):
    title: str | None = None
    message: str | None = None
    recommendation: str | None = None


class SiteFile(_Strict):
    site: str
    analytes: dict[str, SiteAnalyte] = {}
    settings: dict[str, Any] = {}
    rules: dict[str, SiteWording] = {}


def read_site(path: Path) -> SiteFile:
    try:
        return SiteFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise RulesetError([f"{path}: {exc}"]) from None
    except ValidationError as exc:
        problems = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise RulesetError(problems) from None


def apply_site(rules: Path, site_path: Path, workdir: Path) -> Path:
    """A copy of `rules` under `workdir` with the site's overrides; its folder."""
    site = read_site(site_path)
    folder = workdir / "rules"
    shutil.copytree(rules, folder, ignore=shutil.ignore_patterns("released.yaml"))
    problems: list[str] = []
    _analytes(folder / "analytes.yaml", site, problems)
    _ruleset_file(folder / "ruleset.yaml", site, problems)
    _wording(folder / "findings", site, problems)
    if problems:
        raise RulesetError([f"{site_path}: {p}" for p in problems])
    shutil.copyfile(site_path, folder / SITE_FILE)
    return folder


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _analytes(path: Path, site: SiteFile, problems: list[str]) -> None:
    if not site.analytes:
        return
    data = _load(path)
    for name, override in site.analytes.items():
        entry = data["analytes"].get(name)
        if entry is None:
            problems.append(f"analytes.{name}: not an analyte of the ruleset ({', '.join(data['analytes'])})")
            continue
        entry.update(override.model_dump(exclude_none=True))
    _dump(path, data)


def _ruleset_file(path: Path, site: SiteFile, problems: list[str]) -> None:
    data = _load(path)
    slug = re.sub(r"[^a-z0-9]+", "-", site.site.casefold()).strip("-") or "site"
    data["version"] = f"{data['version']}+site.{slug}"
    for name, value in site.settings.items():
        if name not in data.get("settings", {}):
            problems.append(f"settings.{name}: not a setting of the ruleset ({', '.join(data.get('settings', {}))})")
        else:
            data["settings"][name]["value"] = value
    _dump(path, data)


def _wording(findings: Path, site: SiteFile, problems: list[str]) -> None:
    left = dict(site.rules)
    for path in sorted(findings.glob("*.yaml")):
        data = _load(path)
        changed = False
        for rule in data.get("rules", []):
            override = left.pop(rule.get("code"), None)
            if override is not None:
                rule.update(override.model_dump(exclude_none=True))
                changed = True
        if changed:
            _dump(path, data)
    problems += [f"rules.{code}: not a rule of the ruleset" for code in left]
