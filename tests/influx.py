"""A real influxd (Debian's InfluxDB 1.6.7) in a temporary directory, for integration tests."""

from __future__ import annotations

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
    influxd = shutil.which("influxd") or INFLUXD
    if not Path(influxd).exists():
        raise RuntimeError(
            f"{INFLUXD} is missing: install Debian's InfluxDB with `apt-get install influxdb` "
            "(`make test` installs it)"
        )
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voltpay-influxd-")))
        rpc_port, http_port = _free_ports(2)
        config = root / "influxd.conf"
        config.write_text(
            CONFIG.format(
                root=root,
                rpc_port=rpc_port,
                http_port=http_port,
                auth_enabled=str(auth_enabled).lower(),
            )
        )
        stderr_path = root / "influxd.stderr"
        stderr = stack.enter_context(stderr_path.open("wb"))
        process = subprocess.Popen(
            [influxd, "-config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
        stack.callback(_stop, process)
        url = f"http://127.0.0.1:{http_port}"
        _wait_until_up(url, process, stderr_path)
        yield url


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the ports differ; influxd binds them right after.
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


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
