"""`voltpay run`: start the simulator, the collector, the dashboard and the tenants' kiosk; stop
them all together."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from voltpay.settings import ROOT, Settings

STOP_TIMEOUT_S = 10.0


def _children(settings: Settings, speed: float, interval_s: float) -> dict[str, list[str]]:
    python = sys.executable
    notifier = (
        {"notifier": [python, "-m", "voltpay.cli", "notify"]} if settings.notify_configured else {}
    )
    sandbox = (
        {"pay-sandbox": [python, "-m", "voltpay.cli", "sandbox-pay"]}
        if settings.pay_provider == "sandbox" else {}
    )
    return {
        "simulator": [python, "-m", "voltpay.cli", "simulate", "--speed", str(speed)],
        "collector": [python, "-m", "voltpay.cli", "collect", "--interval", str(interval_s)],
        **notifier,
        **sandbox,
        "api": [python, "-m", "voltpay.cli", "api"],
        "dashboard": [
            python, "-m", "streamlit", "run", str(Path(ROOT, "app", "main.py")),
            "--server.port", str(settings.dashboard_port),
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
        ],
        "kiosk": [
            python, "-m", "streamlit", "run", str(Path(ROOT, "app", "kiosk", "main.py")),
            "--server.port", str(settings.kiosk_port),
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
        ],
    }


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {STOP_TIMEOUT_S:g} s; killing it", file=sys.stderr)
            process.kill()
            process.wait()


def run_all(
    settings: Settings, *, generated_password: str | None, speed: float, interval_s: float
) -> int:
    stopping = False
    failed = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, argv in _children(settings, speed, interval_s).items():
            # Own process group: a Ctrl-C reaches only us, and we stop the children in order.
            processes[name] = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
        url = f"http://localhost:{settings.dashboard_port}"
        print("\n" + "=" * 64)
        print(f"  Voltpay is running: {url}")
        print(f"  Tenants' kiosk and phone pages: http://localhost:{settings.kiosk_port}")
        if generated_password:
            print(f"  Log in as admin with password: {generated_password}")
            print("  (generated on this first run and shown only once; keep it)")
        elif settings.admin_password:
            print("  Log in as admin with the password in VOLTPAY_ADMIN_PASSWORD")
        else:
            print("  Log in as admin with the password shown on the first run")
            print("  (set VOLTPAY_ADMIN_PASSWORD to choose a new one)")
        print(f"  API: http://{settings.api_host}:{settings.api_port}/docs"
              f"  (online payments: {settings.pay_provider})")
        print(f"  Simulated meters run at ×{speed:g}; meters are read every {interval_s:g} s.")
        if "notifier" not in processes:
            print("  No notification channel is configured (NOTIFY_MODEM_PORT, NOTIFY_HTTP_URL,")
            print("  NOTIFY_SMTP_HOST): tenants and operators are not sent SMS or email.")
        print("  Press Ctrl-C to stop.")
        print("=" * 64 + "\n", flush=True)
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; stopping",
                          file=sys.stderr)
                    stopping = failed = True
            time.sleep(0.5)
    finally:
        _stop(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Voltpay stopped.")
    return 1 if failed else 0
