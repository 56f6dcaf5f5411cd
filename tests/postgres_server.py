"""A throwaway PostgreSQL server for the SQL tests: Debian's own binaries (`scripts/setup`
installs `postgresql` when missing), a cluster in a temporary folder, reachable only through a
Unix socket in that folder (no TCP port), stopped and removed after the tests. Run as the
`postgres` system user when the tests run as root (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PORT = 54329  # the socket's name only: no TCP listener is opened


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """Why no server can be started here, or None."""
    if binaries() is None:
        return "PostgreSQL's server binaries are not installed (Debian: postgresql; scripts/setup installs them)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install '.[dev]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot be started"
    return None


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def server() -> Iterator[dict[str, object]]:
    """Connection keywords for psycopg.connect, while the server runs."""
    bin_dir = binaries()
    assert bin_dir is not None
    folder = Path(tempfile.mkdtemp(prefix="interpret-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    try:
        subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "interpret", "-E", "UTF8"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-k {folder} -p {PORT} -c listen_addresses='' -c fsync=off"
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield {"host": str(folder), "port": PORT, "user": "interpret", "dbname": "postgres"}
        finally:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                check=False, capture_output=True,
            )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
