"""Development servers for tests and benchmarks: a real influxd (Debian's InfluxDB 1.6.7) in a
temporary directory, and a throwaway PostgreSQL cluster from the installed binaries.

Shared by the test suite (tests/influx.py, tests/pg.py re-export these) and `make bench`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

INFLUXD = "/usr/bin/influxd"
START_TIMEOUT_S = 30.0

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth_enabled}
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false
"""


@contextmanager
def running_influxd(auth_enabled: bool = False) -> Iterator[str]:
    """Start influxd on free local ports, without auth unless asked; yield its base URL; stop it.

    With auth enabled the server has no users yet: its first `CREATE USER ... WITH ALL
    PRIVILEGES` needs no credentials.
    """
    with influx_server(auth_enabled) as server:
        yield server.url


@contextmanager
def influx_server(auth_enabled: bool = False) -> Iterator[InfluxServer]:
    """A started influxd that the test may stop and start again (same ports, same data), for
    outages; stopped and its directory removed at the end."""
    with tempfile.TemporaryDirectory(prefix="voltpay-influxd-") as root:
        server = InfluxServer(Path(root), auth_enabled)
        try:
            server.start()
            yield server
        finally:
            server.stop()


class InfluxServer:
    """One influxd with its config and data under `root`, on ports chosen once."""

    def __init__(self, root: Path, auth_enabled: bool) -> None:
        influxd = shutil.which("influxd") or INFLUXD
        if not Path(influxd).exists():
            raise RuntimeError(
                f"{INFLUXD} is missing: install Debian's InfluxDB with `apt-get install influxdb` "
                "(`make test` installs it)"
            )
        self.influxd = influxd
        self.root = root
        rpc_port, http_port = _free_ports(2)
        self.config = root / "influxd.conf"
        self.config.write_text(
            CONFIG.format(
                root=root,
                rpc_port=rpc_port,
                http_port=http_port,
                auth_enabled=str(auth_enabled).lower(),
            )
        )
        self.url = f"http://127.0.0.1:{http_port}"
        self._stderr_path = root / "influxd.stderr"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers /ping."""
        if self._process is not None:
            raise RuntimeError("influxd is running already")
        with self._stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(
                [self.influxd, "-config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        _wait_until_up(self.url, self._process, self._stderr_path)

    def stop(self) -> None:
        """Stop the server (its data stays for the next start)."""
        if self._process is not None:
            _stop(self._process)
            self._process = None


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the ports differ; the caller binds them right after.
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _wait_until_up(url: str, process: subprocess.Popen[bytes], stderr_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"influxd exited with status {process.returncode} before answering /ping:\n"
                + _tail(stderr_path)
            )
        try:
            if httpx.get(f"{url}/ping", timeout=1.0).status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"influxd did not answer {url}/ping with 204 within {START_TIMEOUT_S:.0f} s:\n"
        + _tail(stderr_path)
    )


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:]) or "(influxd wrote nothing)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- PostgreSQL -----------------------------------------------------------------------------


class NoPostgres(RuntimeError):
    """No PostgreSQL server could be reached or started."""


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
    (port,) = _free_ports(1)
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
