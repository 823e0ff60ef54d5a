"""A throwaway PostgreSQL cluster from the installed binaries, for machines where no server runs."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


class NoPostgres(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a trust-auth cluster on a free loopback port; yield its maintenance-database URL."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise NoPostgres("no PostgreSQL server binaries: install Debian's `postgresql` package")
    bindir = os.path.dirname(binaries[-1])
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            raise NoPostgres("running as root without `runuser` to start PostgreSQL as postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    directory = tempfile.mkdtemp(prefix="voltpay-pg-")
    if as_postgres:
        shutil.chown(directory, user="postgres")
    data = os.path.join(directory, "data")
    port = _free_port()
    try:
        subprocess.run(
            [*as_postgres, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
            check=True, capture_output=True, timeout=120,
        )
        subprocess.run(
            [*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", f"{directory}/log",
             "-o", f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"],
            check=True, capture_output=True, timeout=120,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise NoPostgres(f"could not start a throwaway PostgreSQL: {exc.stderr.decode()}") from None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True, timeout=60,
        )
        shutil.rmtree(directory, ignore_errors=True)
