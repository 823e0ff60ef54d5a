"""`voltpay` command line: run the whole system, or one part of it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from schema.db import SchemaOutOfDate, migrate, require_current, unit_of_work
from voltpay.settings import Settings, get_settings

log = logging.getLogger("voltpay")


def _now() -> datetime:
    return datetime.now(UTC)


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def run_until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run until done, Ctrl-C or SIGTERM (how `voltpay run` stops its children): a signal
    cancels the work, so it shuts down through its own cleanup, quietly."""

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await work

    asyncio.run(main())


def setup(settings: Settings, *, seed: bool) -> str | None:
    """Migrate, create the administrator, seed the demo site when empty.

    Returns the administrator password when this run generated it (first run only).
    """
    from billing.operators import ADMIN_USERNAME, ensure_admin
    from schema.models import Operator
    from voltpay.demo import seed_demo_site, site_is_empty

    migrate(settings.database_url)
    with unit_of_work(settings.database_url) as session:
        generated = ensure_admin(session, password=settings.admin_password, now=_now())
        if seed and site_is_empty(session):
            admin = session.scalars(
                select(Operator).where(Operator.username == ADMIN_USERNAME)
            ).one()
            count = seed_demo_site(session, admin=admin, now=_now(),
                                   first_port=settings.demo_first_port,
                                   policy=settings.billing_policy())
            log.info("seeded the demo site: %d meters", count)
    return generated


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    generated = setup(settings, seed=args.seed)
    print(f"database ready: {settings.database_url}")
    if generated:
        print(f"administrator: admin / {generated}  (shown once; keep it)")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from billing.views import meter_status

    with unit_of_work(settings.database_url) as session:
        rows = meter_status(session)
    if args.json:
        print(json.dumps([row.as_json() for row in rows], ensure_ascii=False, indent=2))
        return 0
    print(f"{'meter':8} {'unit':6} {'account':8} {'balance':>10} {'relay':7} last reading (UTC)")
    for row in rows:
        print(
            f"{row.meter:8} {row.unit or '-':6} {row.account or '-':8} "
            f"{row.balance if row.balance is not None else '-':>10} {row.relay:7} "
            f"{row.last_reading_at.isoformat() if row.last_reading_at else '-'}"
        )
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Serve every gateway in the database that lives on this machine, as simulated meters."""
    from collector.simulator import GatewaySimulator, SimulatedMeter, serve_forever
    from schema.models import Gateway

    simulators = []
    with unit_of_work(settings.database_url) as session:
        for gw in session.scalars(select(Gateway).order_by(Gateway.id)):
            if gw.host not in ("127.0.0.1", "localhost") or not gw.meters:
                continue
            if gw.transport == "serial":
                continue  # a local serial port is real hardware; nothing to simulate
            meters = [
                SimulatedMeter.create(
                    meter.bus_address,
                    seed=meter.id,
                    initial_kwh=meter.last_energy_kwh,
                    relay_closed=meter.relay != "open",
                    power_protect=meter.power_protect,
                    profile=meter.profile,
                )
                for meter in gw.meters
            ]
            simulators.append(
                GatewaySimulator(meters, host=gw.host, port=gw.port, speed=args.speed,
                                 tz=settings.tz, framer=gw.transport)
            )
    if not simulators:
        print("no gateway on 127.0.0.1 to simulate: run `voltpay migrate --seed` first",
              file=sys.stderr)
        return 1

    def started(sims: object) -> None:
        for sim in simulators:
            log.info("simulating %d meters on %s:%d (speed ×%g)", len(sim.meters), sim.host,
                     sim.port, args.speed)

    run_until_signalled(serve_forever(simulators, on_started=started))
    return 0


def cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    from billing import parameters
    from collector.service import Collector
    from collector.tsdb import open_store

    # The operators' saved parameters (系统设置) over the settings; a change needs a restart.
    base = settings.billing_policy()
    with unit_of_work(settings.database_url) as session:
        policy = parameters.effective_policy(session, base)
        saved = parameters.current(
            session, parameters.defaults(base, collect_interval_s=settings.collect_interval_s)
        )
    spool = settings.spool_dir if settings.timeseries_url else None
    store = open_store(settings.timeseries_url, settings.database_url, spool_dir=spool)
    collector = Collector(
        settings.database_url,
        store,
        interval_s=args.interval or saved.collect_interval_s,
        policy=policy,
        archive_keep_days=settings.archive_after_days,
    )
    try:
        run_until_signalled(collector.run())
    finally:
        store.close()
    return 0


def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver queued notifications through the configured channels until stopped."""
    from notify.config import sender_from_settings

    if not settings.notify_configured:
        print("no notification channel is configured: set NOTIFY_MODEM_PORT, NOTIFY_HTTP_URL "
              "or NOTIFY_SMTP_HOST", file=sys.stderr)
        return 1
    sender = sender_from_settings(settings)
    log.info("delivering notifications by %s",
             ", ".join(channel.name for channel in sender.router.channels))
    run_until_signalled(sender.run(poll_s=settings.notify_poll_s))
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the HTTP API (payment notifications, orders, integrations) with uvicorn."""
    import uvicorn

    from api.app import app_from_settings

    if not settings.api_token_list:
        log.warning("API_TOKENS is empty: the /api endpoints refuse every request")
    app = app_from_settings(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="info")
    return 0


def cmd_sandbox_pay(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the sandbox payment provider (the demo's stand-in for Alipay)."""
    from payments.config import (
        MERCHANT_KEY,
        SANDBOX_APP_ID,
        sandbox_keys,
        sandbox_public_key,
    )
    from payments.sandbox import SandboxGateway

    _, gateway_key = sandbox_keys(settings.pay_sandbox_dir)
    sandbox = SandboxGateway(
        gateway_key=gateway_key,
        merchant_public_key=sandbox_public_key(settings.pay_sandbox_dir, MERCHANT_KEY),
        app_id=SANDBOX_APP_ID, host=settings.pay_sandbox_host, port=settings.pay_sandbox_port,
    )
    log.info("sandbox payment provider on %s (no real money moves)", sandbox.url)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # `voltpay run` stops its children with SIGTERM

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from voltpay.supervisor import run_all

    if "pay_provider" not in settings.model_fields_set:
        # The demo pays through the sandbox unless a provider was chosen.
        os.environ["PAY_PROVIDER"] = "sandbox"
        settings = settings.model_copy(update={"pay_provider": "sandbox"})
    if settings.pay_provider == "sandbox":
        from payments.config import sandbox_keys

        sandbox_keys(settings.pay_sandbox_dir)  # once, before the children that read them
    generated = setup(settings, seed=True)
    return run_all(settings, generated_password=generated, speed=args.speed,
                   interval_s=args.interval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voltpay", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="migrate, seed, then run simulator, collector and dashboard")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (default 60)")
    p.add_argument("--interval", type=float, default=10.0,
                   help="collection interval in seconds (default 10 for the demo)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--seed", action="store_true", help="also seed the demo site when empty")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("simulate", help="serve simulated meters for the gateways on 127.0.0.1")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per real second (default 1)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("collect", help="read every meter, store readings, bill, run commands")
    p.add_argument("--interval", type=float, default=None,
                   help="collection interval in seconds (default COLLECT_INTERVAL_S)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("notify", help="deliver queued SMS and email notifications")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser("api", help="serve the HTTP API (payments, integrations) on API_PORT")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("sandbox-pay", help="serve the sandbox payment provider for the demo")
    p.set_defaults(func=cmd_sandbox_pay)

    p = sub.add_parser("status", help="one line (or JSON object) per meter")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    settings = get_settings()
    try:
        if args.func not in (cmd_migrate, cmd_run):
            require_current(settings.database_url)
        return int(args.func(args, settings))
    except SchemaOutOfDate as exc:
        print(exc, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `voltpay status | head`: the reader left; not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

