"""`voltpay run` (what `make run` starts): the demo comes up, balances fall, Ctrl-C stops it all,
and a second start reuses the data."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            sockets = []
            for port in range(first, first + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports")


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VOLTPAY_ADMIN_PASSWORD"}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'voltpay.db'}",
        DASHBOARD_PORT=str(free_port_run(1)),
        KIOSK_PORT=str(free_port_run(1)),
        DEMO_FIRST_PORT=str(free_port_run(3)),
    )
    return env


class Running:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voltpay.cli", "run", "--speed", "3600", "--interval", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.banner: list[str] = []
        assert self.process.stdout is not None
        deadline = time.monotonic() + 120
        for line in self.process.stdout:
            self.banner.append(line)
            if "Press Ctrl-C to stop" in line or time.monotonic() > deadline:
                break
        assert any("http://localhost:" in line for line in self.banner), "".join(self.banner)

    def status(self) -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "voltpay.cli", "status", "--json"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True, timeout=60,
        )
        rows: list[dict[str, object]] = json.loads(out.stdout)
        return rows

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


@pytest.fixture
def running(run_env: dict[str, str]) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def total_balance(rows: list[dict[str, object]]) -> Decimal:
    return sum((Decimal(str(r["balance"])) for r in rows if r["balance"] is not None), Decimal(0))


def test_run_starts_the_demo_and_stops_cleanly(
    run_env: dict[str, str], running: list[Running]
) -> None:
    first = Running(run_env)
    running.append(first)
    banner = "".join(first.banner)
    match = re.search(r"Log in as admin with password: (\S+)", banner)
    assert match, banner
    dashboard = f"http://127.0.0.1:{run_env['DASHBOARD_PORT']}"

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{dashboard}/_stcore/health", timeout=2).text == "ok":
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the dashboard never answered"
        time.sleep(0.5)
    assert httpx.get(dashboard, timeout=5).status_code == 200
    kiosk = f"http://127.0.0.1:{run_env['KIOSK_PORT']}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{kiosk}/_stcore/health", timeout=2).text == "ok":
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the kiosk never answered"
        time.sleep(0.5)

    rows = first.status()
    assert len(rows) == 48
    assert {r["relay"] for r in rows} <= {"closed", "open", "unknown"}
    deadline = time.monotonic() + 60
    while not all(r["last_reading_at"] for r in rows):
        assert time.monotonic() < deadline, "not every meter was read"
        time.sleep(1)
        rows = first.status()
    before = total_balance(rows)
    time.sleep(3)
    assert total_balance(first.status()) < before, "balances go down while you watch"

    assert first.stop() == 0
    out = first.process.stdout.read() if first.process.stdout else ""
    assert "Voltpay stopped." in out
    for port in range(int(run_env["DEMO_FIRST_PORT"]), int(run_env["DEMO_FIRST_PORT"]) + 3):
        with socket.socket() as s:  # the simulator let go of its ports (bound as a server binds)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

    second = Running(run_env)
    running.append(second)
    banner = "".join(second.banner)
    assert "Log in as admin with password" not in banner, "the password is shown only once"
    assert len(second.status()) == 48, "a second run reuses the data"
    assert second.stop() == 0
