"""`interpret rules diff`: what a ruleset change does to a site's own export.

Both rulesets run over the same export through the batch path (any engine); per finding
code and severity, the panels that gain or lose it are counted, with a few example rows
(line and the id column only: never another identifier). The files whose content changed
are compared as YAML structures (which threshold, which medication entry, which wording),
and both versions and hashes are named, with a warning when the content changed but the
version did not.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from interpret.batch.job import BatchOptions, execute
from interpret.batch.read import BatchInputError
from interpret.ruleset import Ruleset, load_ruleset
from interpret.ruleset.release import RELEASED

EXAMPLES = 5  # example rows per gain or loss
REFUSED = "(refused)"  # the "code" of a row refused by one ruleset and not the other


@dataclass(frozen=True)
class Change:
    """One difference between the two rulesets' files: `path` inside `file` (YAML keys; list
    items by their `code`, `name` or `id` where they have one)."""

    file: str
    path: str
    old: Any
    new: Any


@dataclass
class Shift:
    """The panels that gain, or lose, one finding at one severity."""

    code: str
    severity: str
    gained: int = 0
    lost: int = 0
    gained_examples: list[tuple[int, str | None]] = field(default_factory=list)
    lost_examples: list[tuple[int, str | None]] = field(default_factory=list)


@dataclass
class Impact:
    old: Ruleset
    new: Ruleset
    rows: int
    shifts: list[Shift]
    changes: list[Change]
    id_column: str | None
    rows_changed: int = 0  # rows whose findings, severities or refusal differ
    seconds: float = 0.0

    @property
    def unversioned(self) -> bool:
        """The content changed but the version did not: reports of both would say the same version."""
        return self.old.sha256 != self.new.sha256 and self.old.version == self.new.version


# --- which rulesets ---------------------------------------------------------------------------


def ruleset_folder(given: str, workdir: Path) -> Path:
    """A folder as given, or a ruleset version (`2026.12.1`) looked up in this repository's
    history, its `rules/` written under `workdir`: the commit that released it (whose
    `rules/released.yaml` records it: the content as released, not a later edit made under
    the same version before the next release), else, for versions from before releases were
    recorded, the newest commit whose `rules/ruleset.yaml` has that version."""
    if Path(given).is_dir():
        return Path(given)
    from interpret.ruleset.load import default_rules_dir

    rules = default_rules_dir().resolve()
    top = _git(rules.parent, "rev-parse", "--show-toplevel")
    if top is None:
        raise BatchInputError(
            f"--old {given!r}: not a folder, and the rules are not in a git checkout to look it up in"
        )
    relative = rules.relative_to(Path(top.strip())).as_posix()
    for recorded in ("released.yaml", "ruleset.yaml"):
        commit = _newest_with_version(rules.parent, f"{relative}/{recorded}", given)
        if commit is not None:
            folder = workdir / f"rules-{given}"
            archive = subprocess.run(
                ["git", "-C", str(rules.parent), "archive", commit, relative], capture_output=True, check=True
            )
            folder.mkdir(parents=True)
            subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
            return folder / relative
    raise BatchInputError(f"--old {given!r}: not a folder, and no commit of {relative}/ruleset.yaml has that version")


def _newest_with_version(cwd: Path, path: str, version: str) -> str | None:
    """The newest commit in which the YAML file `path` says `version: <version>`."""
    for commit in (_git(cwd, "log", "--format=%H", "--", path) or "").split():
        text = _git(cwd, "show", f"{commit}:{path}") or ""
        try:
            if (yaml.safe_load(text) or {}).get("version") == version:
                return commit
        except yaml.YAMLError:
            continue
    return None


def _git(cwd: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


# --- what changed in the files ----------------------------------------------------------------


def file_changes(old: Path, new: Path) -> list[Change]:
    """Every difference between the two folders' YAML files (and files added or removed)."""
    names = sorted({p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()} | {
        p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()
    } - {RELEASED})  # fmt: skip
    changes: list[Change] = []
    for name in names:
        a, b = old / name, new / name
        if not a.exists() or not b.exists():
            changes.append(Change(name, "", "(file)" if a.exists() else None, "(file)" if b.exists() else None))
        elif a.read_bytes() == b.read_bytes():
            continue
        elif name.endswith(".yaml"):
            changes += _diff(name, "", yaml.safe_load(a.read_text()), yaml.safe_load(b.read_text()))
        else:  # documentation (README, CHANGES): named, not compared line by line
            lines = [len(f.read_text(encoding="utf-8", errors="replace").splitlines()) for f in (a, b)]
            changes.append(Change(name, "(text)", f"{lines[0]} lines", f"{lines[1]} lines"))
    return changes


KEYS = ("code", "name", "id")  # what names a list item, where it has one


def _diff(file: str, path: str, a: Any, b: Any) -> list[Change]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for key in [*a, *(k for k in b if k not in a)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(Change(file, where, a.get(key), b.get(key)))
            else:
                out += _diff(file, where, a[key], b[key])
        return out
    if isinstance(a, list) and isinstance(b, list):
        key = next((k for k in KEYS if all(isinstance(i, dict) and k in i for i in a + b)), None)
        if key is not None:
            left, right = {i[key]: i for i in a}, {i[key]: i for i in b}
            return _diff(file, path, left, right)
        if len(a) == len(b):
            return [c for i, (x, y) in enumerate(zip(a, b, strict=True)) for c in _diff(file, f"{path}[{i}]", x, y)]
    return [] if a == b else [Change(file, path, a, b)]


# --- what changes on the export -----------------------------------------------------------------


def compare(old: Ruleset, new: Ruleset, export: Path, options: BatchOptions, changes: list[Change]) -> Impact:
    """Both rulesets over `export` (the batch path, `options` as given), compared row by row."""
    import time

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="rules-diff-"))
    try:
        quiet = replace(options, severities=True, summary=None, details=None, progress=None, prefetch=None)
        outputs = []
        for name, rs in (("old", old), ("new", new)):
            result = execute(rs, export, folder / f"{name}.csv", quiet)
            outputs.append(pl.read_csv(folder / f"{name}.csv", infer_schema=False))
        id_column = result.plan.id_column and (result.plan.id_label or result.plan.id_column)
        shifts = _shifts(outputs[0], outputs[1], id_column)
        impact = Impact(old, new, outputs[0].height, shifts, changes, id_column)
        impact.rows_changed = int((_outcome(outputs[0]) != _outcome(outputs[1])).sum())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    impact.seconds = time.perf_counter() - started
    return impact


def _outcome(out: pl.DataFrame) -> pl.Series:
    return out.select(
        pl.concat_str([pl.col("severities").fill_null(""), pl.col("error").fill_null("")], separator="|")
    ).to_series()


def _pairs(out: pl.DataFrame) -> pl.Series:
    """Each row's findings as `code=severity` items; a refused row as one item."""
    refused = pl.lit(f"{REFUSED}=refused")
    items = pl.when(pl.col("error").fill_null("") != "").then(refused).otherwise(pl.col("severities").fill_null(""))
    return out.select(items.str.split(";").list.eval(pl.element().filter(pl.element() != ""))).to_series()


def _shifts(old: pl.DataFrame, new: pl.DataFrame, id_column: str | None) -> list[Shift]:
    if old.height != new.height:
        raise BatchInputError(f"the two runs gave {old.height} and {new.height} rows: not comparable")
    ids = old.get_column(id_column) if id_column and id_column in old.columns else pl.Series([None] * old.height)
    frame = pl.DataFrame(
        {"line": old.get_column("line").cast(pl.Int64), "id": ids.cast(pl.String), "a": _pairs(old), "b": _pairs(new)}
    )
    gained = frame.select("line", "id", pl.col("b").list.set_difference("a").alias("item")).explode("item")
    lost = frame.select("line", "id", pl.col("a").list.set_difference("b").alias("item")).explode("item")
    shifts: dict[str, Shift] = {}
    for table, kind in ((gained, "gained"), (lost, "lost")):
        for item, group in table.drop_nulls("item").group_by("item", maintain_order=True):
            code, severity = str(item[0]).split("=", 1)
            shift = shifts.setdefault(f"{code}={severity}", Shift(code, severity))
            setattr(shift, kind, group.height)
            getattr(shift, f"{kind}_examples").extend(group.head(EXAMPLES).select("line", "id").iter_rows())
    return sorted(shifts.values(), key=lambda s: (-(s.gained + s.lost), s.code, s.severity))


def impact_of(old_dir: Path, new_dir: Path, export: Path, options: BatchOptions) -> Impact:
    old, new = load_ruleset(old_dir), load_ruleset(new_dir)
    return compare(old, new, export, options, file_changes(old_dir, new_dir))


# --- what is shown --------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A YAML value as a reviewer reads it (absent: "—")."""
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=80).strip()
    return str(value)


def text_report(impact: Impact) -> str:
    lines = [
        f"old: ruleset {impact.old.version} sha256 {impact.old.sha256[:16]}",
        f"new: ruleset {impact.new.version} sha256 {impact.new.sha256[:16]}",
    ]
    if impact.unversioned:
        lines.append("WARNING: the content changed but the version did not: raise `version` in ruleset.yaml")
    lines.append(f"{impact.rows} panels; {impact.rows_changed} change their findings, severities or refusal")
    label = f"line, {impact.id_column}" if impact.id_column else "line"
    for s in impact.shifts:
        lines.append(f"  {s.code} ({s.severity}): +{s.gained} -{s.lost}")
        for kind, examples in (("gained", s.gained_examples), ("lost", s.lost_examples)):
            if examples:
                shown_rows = ", ".join(f"{line}" + (f" ({i})" if i else "") for line, i in examples)
                lines.append(f"      {kind}, e.g. ({label}): {shown_rows}")
    lines.append(f"{len(impact.changes)} changes in the rules' files:")
    for c in impact.changes:
        lines.append(f"  {c.file} {c.path}: {_one_line(c.old)} -> {_one_line(c.new)}")
    lines.append(impact.new.disclaimer())
    return "\n".join(lines) + "\n"


def _one_line(value: Any) -> str:
    text = shown(value).replace("\n", " ")
    return text if len(text) <= 100 else text[:97] + "..."


def chart(impact: Impact, width: int = 720) -> dict[str, Any]:
    """Bars of gains (right) and losses (left) per code and severity."""
    label_w, row_h = 260, 20
    most = max((max(s.gained, s.lost) for s in impact.shifts), default=1) or 1
    half = (width - label_w - 80) / 2
    zero = label_w + 40 + half
    bars = [
        {
            "y": i * row_h,
            "label": f"{s.code} ({s.severity})",
            "gained": s.gained,
            "lost": s.lost,
            "gained_w": round(half * s.gained / most, 1),
            "lost_w": round(half * s.lost / most, 1),
        }
        for i, s in enumerate(impact.shifts)
    ]
    return {"width": width, "height": max(row_h, row_h * len(bars)), "zero": zero, "bars": bars}


def write_html(path: Path, impact: Impact, export: Path) -> None:
    from interpret.render import environment

    html = (
        environment()
        .get_template("rules_diff.html")
        .render(
            impact=impact, chart=chart(impact), shown=shown, export_name=export.name, disclaimer=impact.new.disclaimer()
        )
    )
    path.write_text(html, encoding="utf-8")
