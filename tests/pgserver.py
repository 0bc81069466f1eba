"""A throw-away PostgreSQL server in a temporary directory, for the tests and bench/serve_db_restart.py.

`PgServer.create()` finds Debian's binaries (`pg_config --bindir`,
`/usr/lib/postgresql/*/bin`, then PATH), installs the `postgresql` package
with apt-get when they are missing and we are root (as `make test` does
for chromium), runs `initdb -A trust` in a fresh directory and starts the
server on a free port of 127.0.0.1 with its socket in that directory.
PostgreSQL refuses to run as root: as root the directory is given to the
`postgres` system user and every command runs as that user.  Anything that
makes this impossible is a `PgUnavailable` whose message is the one-line
reason a test skips with.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from serving import free_port

USER = "recog"  # the database superuser initdb creates (trust auth: no password)


class PgUnavailable(Exception):
    """Why no PostgreSQL server can be started here (one line)."""


def _bindir() -> Path | None:
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        path = Path(out.stdout.strip())
        if out.returncode == 0 and (path / "initdb").exists():
            return path
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def find_bindir(*, install: bool = True) -> Path:
    """The directory of initdb/pg_ctl, installing Debian's package first when root may."""
    bindir = _bindir()
    if bindir is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"], capture_output=True, env=env
        )
        bindir = _bindir()
    if bindir is None:
        raise PgUnavailable(
            "PostgreSQL is not installed (no initdb in `pg_config --bindir`, "
            "/usr/lib/postgresql/*/bin or PATH; as root the tests apt-get install postgresql)"
        )
    return bindir


@dataclass
class PgServer:
    bindir: Path
    root: Path  # the temporary directory: data/ and the socket
    port: int
    run_as: str | None  # the system user the server runs as (None: this process's)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def create(cls, *, fsync: bool = False) -> PgServer:
        """initdb in a fresh temporary directory and start the server (raises PgUnavailable)."""
        bindir = find_bindir()
        run_as = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no `postgres` user") from None
            run_as = "postgres"
        root = Path(tempfile.mkdtemp(prefix="recog-pg-"))
        if run_as is not None:
            os.chown(root, pw.pw_uid, pw.pw_gid)
        server = cls(bindir, root, free_port(), run_as)
        init = server._run(
            "initdb", "-D", str(server.data), "-A", "trust", "-U", USER, "-E", "UTF8"
        )
        if init.returncode != 0:
            server.remove()
            lines = (init.stderr or init.stdout).strip().splitlines() or ["no output"]
            raise PgUnavailable(f"initdb cannot run here: {lines[-1]}")
        conf = "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        with open(server.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("" if fsync else conf)
        server.start()
        return server

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            user=self.run_as,
            cwd=self.root,
            timeout=120,
        )

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        out = self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", "-o", options,
            "-l", str(self.root / "server.log"), *args,
        )  # fmt: skip
        if out.returncode != 0:
            raise PgUnavailable(f"pg_ctl {action} failed: {(out.stderr or out.stdout).strip()}")

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when a database server restarts."""
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data)).returncode == 0

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        """Stop the server (if it runs) and delete its directory."""
        if self.data.exists() and self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
