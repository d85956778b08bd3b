"""A throwaway PostgreSQL cluster for the tests: initdb'd in a temp folder, gone afterwards.

:func:`running_postgres` finds ``initdb`` and ``pg_ctl`` (``$ONETOMANY_PG_BINDIR``, then
``PATH``, then the newest ``/usr/lib/postgresql/*/bin``), creates a cluster with trust auth
in a temp folder (in /dev/shm when it has room) that listens on 127.0.0.1 only, on a free
port, with its socket in that folder and fsync off, and stops and deletes it on exit.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` OS
user and its commands run through ``runuser`` (or ``su``).

:func:`unavailable` reports a missing prerequisite: a skip on a developer's machine, a
failure when ``$CI`` is set, so CI cannot go green by skipping the PostgreSQL tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import attrs
import pytest

DATABASE = "onetomany_test"
SUPERUSER = "postgres"
OS_USER = "postgres"
START_TIMEOUT = 60.0
#: Free space /dev/shm needs for the cluster to go there (Docker's default of 64 MB is too little).
SCRATCH_MIN_BYTES = 1 << 30


class PostgresUnavailable(Exception):
    """A prerequisite for the throwaway cluster is missing."""


@attrs.frozen
class Cluster:
    """A running throwaway cluster."""

    host: str
    port: int
    database: str
    #: Restarts the server in place (``pg_ctl restart -m fast``): connections are dropped.
    restart: Callable[[], None] = attrs.field(default=lambda: None, eq=False, repr=False)

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database``, by default the test one."""
        name = database or self.database
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{name}"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip, or outside a developer's machine (``$CI`` set) fail, because of ``reason``."""
    if in_ci():
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare 9.6 < 10 < 15 numerically.
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``."""
    candidates: list[Path] = []
    if override := os.environ.get("ONETOMANY_PG_BINDIR"):
        candidates.append(Path(override))
    initdb = shutil.which("initdb")
    if initdb:
        # Debian puts symlinks (or nothing) on PATH; the real folder also holds `postgres`.
        candidates.append(Path(initdb).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    searched = ", ".join(str(c) for c in candidates) or "nothing found on PATH"
    raise PostgresUnavailable(
        "initdb/pg_ctl not found (searched $ONETOMANY_PG_BINDIR, PATH and "
        f"/usr/lib/postgresql/*/bin: {searched}); install them with "
        "`apt-get install postgresql` or set ONETOMANY_PG_BINDIR"
    )


def _scratch_parent() -> str | None:
    """Where to put the cluster: RAM (/dev/shm) if it has room, as that makes CREATE DATABASE
    ten times faster than on a busy disk; else the usual temp folder."""
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    roomy = stat.f_bavail * stat.f_frsize >= SCRATCH_MIN_BYTES
    return shm if roomy and os.access(shm, os.W_OK | os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Runner:
    """Runs the cluster's commands as its owner: ourselves, or ``postgres`` when we are root."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.as_root = os.geteuid() == 0
        if not self.as_root:
            return
        try:
            owner = pwd.getpwnam(OS_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and PostgreSQL refuses to; no {OS_USER!r} OS user to run it as"
            ) from None
        os.chown(home, owner.pw_uid, owner.pw_gid)
        self.runuser = shutil.which("runuser")
        if self.runuser is None and shutil.which("su") is None:
            raise PostgresUnavailable("running as root and neither runuser nor su is available")

    def argv(self, *argv: str | Path) -> list[str]:
        args = [str(a) for a in argv]
        if not self.as_root:
            return args
        if self.runuser:
            return [self.runuser, "-u", OS_USER, "--", *args]
        return ["su", OS_USER, "-s", "/bin/sh", "-c", shlex.join(args)]

    def __call__(self, *argv: str | Path, timeout: float = START_TIMEOUT) -> None:
        args = self.argv(*argv)
        env = dict(os.environ, LC_ALL="C", LANG="C")
        # cwd: the owner may not be allowed into the folder pytest runs from.
        proc = subprocess.run(
            args,
            check=False,
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(args)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
                + self.log_tail()
            )

    def log_tail(self) -> str:
        log = self.home / "postgres.log"
        if not log.exists():
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(log.read_text().splitlines()[-30:])


#: Waits for EOF on stdin, i.e. for the test process to end however it ends (even killed),
#: then stops the cluster with the command in argv[2:] and deletes the folder argv[1].
_WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.read()
subprocess.run(sys.argv[2:], capture_output=True, check=False, timeout=60)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def _watchdog(home: Path, stop: list[str]) -> subprocess.Popen[bytes]:
    """A process that cleans up after us if pytest dies without running its finalizers."""
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(home), *stop],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,  # a Ctrl-C for pytest must not kill it first
    )


def _wait_ready(cluster: Cluster, timeout: float) -> None:
    import psycopg  # imported late: the caller checked that it is installed

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(
                host=cluster.host,
                port=cluster.port,
                user=SUPERUSER,
                dbname="postgres",
                connect_timeout=2,
            ):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _create_database(cluster: Cluster, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=cluster.host, port=cluster.port, user=SUPERUSER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def running_postgres(database: str = DATABASE) -> Iterator[Cluster]:
    """Start a throwaway cluster with ``database`` created in it; stop and delete it on exit.

    Raises :class:`PostgresUnavailable` when the binaries, psycopg or an OS user to run it as
    are missing; any other failure to start raises with the server's log attached.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable(
            "the psycopg driver is not installed (pip install 'psycopg[binary]')"
        ) from None
    bindir = find_bindir()
    home = Path(tempfile.mkdtemp(prefix="onetomany-pg-", dir=_scratch_parent()))
    watchdog = None
    try:
        run = _Runner(home)
        data = home / "data"
        stop = run.argv(bindir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w")
        watchdog = _watchdog(home, stop)
        run(
            bindir / "initdb",
            "-D",
            data,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -k {home} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        for _ in range(3):  # the free port may be taken between choosing and binding it
            port = _free_port()
            (home / "postgres.log").unlink(missing_ok=True)
            try:
                run(
                    bindir / "pg_ctl",
                    "start",
                    "-D",
                    data,
                    "-l",
                    home / "postgres.log",
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "-o",
                    f"-p {port} {options}",
                )
                break
            except RuntimeError as exc:
                if "already in use" not in str(exc):
                    raise
        else:
            raise RuntimeError("could not start PostgreSQL on a free port" + run.log_tail())
        restart = functools.partial(
            run,
            bindir / "pg_ctl",
            "restart",
            "-D",
            data,
            "-l",
            home / "postgres.log",
            "-w",
            "-m",
            "fast",
            "-t",
            str(int(START_TIMEOUT)),
            "-o",
            f"-p {port} {options}",
        )
        cluster = Cluster(host="127.0.0.1", port=port, database=database, restart=restart)
        try:
            _wait_ready(cluster, START_TIMEOUT)
            _create_database(cluster, database)
            yield cluster
        finally:
            run(bindir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w")
    finally:
        if watchdog is not None and watchdog.stdin is not None:
            # Also stops a server that a failed start left behind.
            watchdog.stdin.close()
            watchdog.wait(timeout=START_TIMEOUT)
        shutil.rmtree(home, ignore_errors=True)
