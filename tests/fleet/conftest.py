"""A throwaway PostgreSQL server for the telemetry store's tests (its own cluster in a temporary
directory, reachable only through a unix socket there, stopped and removed at the end)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a running PostgreSQL server: ``postgresql://postgres@/{db}?host=...``."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server here (initdb, pg_ctl): apt-get install postgresql, "
                    "or scripts/install-system-deps.sh as root")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="otakit-pg-"))
    if os.getuid() == 0:  # the server refuses to run as root: run it as the postgres user
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o",
                        f"-k {root} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {e.stderr.decode()}") from e
    try:
        yield f"postgresql://postgres@/{{db}}?host={root}"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


_databases = count()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the test server, as a ``postgresql://`` URL."""
    import psycopg  # noqa: PLC0415 - only when PostgreSQL is there

    name = f"test{next(_databases)}"
    with psycopg.connect(postgres_server.format(db="postgres"), autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return postgres_server.format(db=name)
