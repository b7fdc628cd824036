"""A real PostgreSQL server with PostGIS for the tests, on 127.0.0.1, run by an unprivileged user.

Debian's packages (`postgresql`, `postgresql-<version>-postgis-3`; .ci/run installs them) put the
server in /usr/lib/postgresql/<version>/bin. The server runs from a fresh data folder on a free
port, listening on 127.0.0.1 only (its Unix socket in that folder), with password (SCRAM)
authentication; as root it runs as the `postgres` user the package created, since PostgreSQL
refuses to run as root. `stop()` ends it (the tests' session fixture calls it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ADMIN = "riskradar_admin"


def server_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder that has PostGIS, or None."""
    for folder in sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    ):
        version = folder.parent.name
        has_postgis = any(Path(f"/usr/share/postgresql/{version}/extension").glob("postgis.control"))
        if (folder / "initdb").exists() and has_postgis:
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """initdb, start, a database with PostGIS; `dsn` is the owner's connection string."""

    def __init__(self, bin_dir: Path, database: str = "riskradar_share"):
        self.bin = bin_dir
        self.database = database
        self.port = _free_port()
        self.password = secrets.token_hex(16)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.home = Path(tempfile.mkdtemp(prefix="riskradar-pg-"))
        self.data = self.home / "data"

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), check=True, capture_output=True, text=True, timeout=120, user=self.user, **kwargs
        )

    def start(self) -> LocalPostgres:
        pwfile = self.home / "pw"
        pwfile.write_text(self.password)
        if self.user:
            shutil.chown(self.home, self.user)
            shutil.chown(pwfile, self.user)
        os.chmod(self.home, 0o700)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ADMIN,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.home / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        return self

    def dsn(self, database: str | None = None, *, user: str = ADMIN, password: str | None = None) -> str:
        secret = password or self.password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database or self.database}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
                user=self.user,
                check=False,
            )
        shutil.rmtree(self.home, ignore_errors=True)
