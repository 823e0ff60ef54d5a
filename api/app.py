"""The HTTP API (FastAPI): payment notifications from the provider, online recharge orders,
and read endpoints for integrations.

- `POST /pay/notify/{provider}`: the provider's asynchronous notification, answered with the
  body its protocol expects (`success`), or `failure` with 400 when refused.
- `/api/…`: bearer-token auth (API_TOKENS). Orders for a kiosk or app elsewhere; accounts with
  balance and days left, readings, alarms. Money is a decimal string, instants ISO 8601 UTC.
- `/openapi.json` describes it all; `/health` is for health checks.

A poller runs beside it (a thread): unpaid orders older than PAY_POLL_AFTER_S are asked about,
so a site the provider's notifications cannot reach still sees payments.
"""


import logging
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from billing import monitoring, parameters, views
from billing.errors import BillingError, NotFound
from billing.policy import BillingPolicy
from collector.readings import ReadingStore
from payments import orders
from payments.provider import PaymentProvider, ProviderError
from schema.db import unit_of_work
from schema.models import Account, AccountMeter, Meter, PaymentOrder
from voltpay.settings import Settings

log = logging.getLogger(__name__)
MAX_READING_SPAN = timedelta(days=31)


@dataclass
class ApiConfig:
    database_url: str
    store: ReadingStore
    policy: BillingPolicy  # from the settings; the operators' saved parameters go on top
    tokens: Sequence[str]
    provider: PaymentProvider | None = None
    poll_after: timedelta = timedelta(seconds=60)
    poll_interval_s: float = 30.0
    order_timeout: timedelta = timedelta(minutes=15)
    poll: bool = True


# --- response models ---------------------------------------------------------------------


class AccountOut(BaseModel):
    number: str
    tenant_name: str
    status: Literal["open", "closed"]
    balance: Decimal
    alarm_level: Literal["normal", "alarm1", "alarm2", "arrears"]


class AccountDetail(AccountOut):
    average_daily_cost: Decimal | None = Field(description="over the last 7 days' charges")
    days_left: Decimal | None
    runs_out_on: date | None = Field(description="site-local date")
    meters: list[str]


class ReadingOut(BaseModel):
    meter: str
    at: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None
    voltage_v: Decimal | None
    current_a: Decimal | None
    relay_closed: bool | None


class AlarmOut(BaseModel):
    id: int
    kind: str
    meter: str | None
    gateway: str | None
    unit: str | None
    account: str | None
    raised_at: datetime
    value: str
    detail: str
    acknowledged_at: datetime | None


class OrderIn(BaseModel):
    account: str = Field(min_length=1, max_length=32, description="account number")
    amount: str = Field(pattern=r"^\d{1,9}(\.\d{1,2})?$", description="yuan, e.g. 50.00")


class OrderOut(BaseModel):
    order_no: str
    account: str
    amount: Decimal
    provider: str
    state: Literal["created", "paid", "closed", "failed", "refunded"]
    pay_url: str
    balance: Decimal = Field(description="the account's balance now")
    created_at: datetime
    paid_at: datetime | None


# --- the app -----------------------------------------------------------------------------


def create_app(config: ApiConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        poller = None
        if config.provider is not None and config.poll:
            poller = threading.Thread(target=_poll_loop, args=(config, stop), name="pay-poller",
                                      daemon=True)
            poller.start()
        yield
        stop.set()
        if poller is not None:
            poller.join()

    app = FastAPI(
        title="Voltpay API",
        version="1",
        summary="Online recharge and read access for integrations",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(auto_error=False, description="a token from API_TOKENS")

    def session() -> Iterator[Session]:
        with unit_of_work(config.database_url) as s:
            yield s

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials else ""
        if not given or not any(secrets.compare_digest(given, t) for t in config.tokens):
            raise HTTPException(401, "A valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    Db = Annotated[Session, Depends(session)]
    guarded = [Depends(authorised)]
    unauthorised: dict[int | str, dict[str, Any]] = {
        401: {"description": "no or wrong bearer token"}
    }

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/pay/notify/{provider_name}",
        summary="A payment provider's asynchronous notification",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "accepted: `success`"},
                   400: {"content": {"text/plain": {}}, "description": "refused: `failure`"},
                   404: {"description": "no such provider on this site"}},
    )
    async def notify(provider_name: str, request: Request) -> Response:
        provider = config.provider
        if provider is None or provider.name != provider_name:
            return Response("failure", status_code=404, media_type="text/plain")
        raw = await request.body()
        body = raw.decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        result = await run_in_threadpool(_handle_notification, config, provider, form, body)
        if result.acknowledged:
            return Response(provider.ack_body, media_type="text/plain")
        return Response("failure", status_code=400, media_type="text/plain")

    @app.post("/api/orders", dependencies=guarded, status_code=201,
              responses={**unauthorised, 404: {"description": "no such account"},
                         422: {"description": "refused (limits, closed account)"},
                         502: {"description": "the payment provider failed"},
                         503: {"description": "online payment is not set up"}})
    def create_order(order: OrderIn, db: Db) -> OrderOut:
        """Start an online recharge; show `pay_url` to the tenant (open it, or as a QR code)."""
        if config.provider is None:
            raise HTTPException(503, "Online payment is not set up on this site")
        account = _account(db, order.account)
        try:
            created = orders.create_order(
                db, account_id=account.id, amount=order.amount, now=datetime.now(UTC),
                provider=config.provider,
                policy=parameters.effective_policy(db, config.policy),
            )
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except BillingError as exc:
            raise HTTPException(422, str(exc)) from exc
        except ProviderError as exc:
            log.warning("creating a payment: %s", exc)
            raise HTTPException(502, f"The payment provider failed: {exc}") from exc
        return _order_out(created, account)

    @app.get("/api/orders/{order_no}", dependencies=guarded,
             responses={**unauthorised, 404: {"description": "no such order"}})
    def get_order(order_no: str, db: Db) -> OrderOut:
        """An order's state: a kiosk polls this until the order is paid."""
        order = orders.find_order(db, order_no)
        if order is None:
            raise HTTPException(404, f"No order {order_no}")
        return _order_out(order, db.get_one(Account, order.account_id))

    @app.get("/api/accounts", dependencies=guarded, responses=unauthorised)
    def list_accounts(db: Db) -> list[AccountOut]:
        return [_account_out(a) for a in db.scalars(select(Account).order_by(Account.number))]

    @app.get("/api/accounts/{number}", dependencies=guarded,
             responses={**unauthorised, 404: {"description": "no such account"}})
    def get_account(number: str, db: Db) -> AccountDetail:
        """One account: balance, the expected days left from the last 7 days, its meters."""
        account = _account(db, number)
        info = views.balance_info(db, account.id, now=datetime.now(UTC), tz=config.policy.tz)
        return AccountDetail(
            **_account_out(account).model_dump(),
            average_daily_cost=info.average_daily_cost, days_left=info.days_left,
            runs_out_on=info.runs_out_on,
            meters=[serial for _, serial in _meters(db, account.id)],
        )

    @app.get("/api/accounts/{number}/readings", dependencies=guarded,
             responses={**unauthorised, 404: {"description": "no such account"},
                        422: {"description": "a bad time range"}})
    def get_readings(
        number: str,
        start: Annotated[datetime | None, Query(description="default: 24 hours before end")]
        = None,
        end: Annotated[datetime | None, Query(description="default: now")] = None,
    ) -> list[ReadingOut]:
        """Readings of the account's meters from `start` (inclusive) to `end`, at most 31 days."""
        until = _utc(end) if end else datetime.now(UTC)
        since = _utc(start) if start else until - timedelta(days=1)
        if since >= until:
            raise HTTPException(422, "start must be before end")
        if until - since > MAX_READING_SPAN:
            raise HTTPException(422, "At most 31 days of readings at a time")
        # The account's meters first, in a transaction of its own: on SQLite an open one would
        # hold the write lock the embedded store's reads wait for.
        with unit_of_work(config.database_url) as db:
            meters = _meters(db, _account(db, number).id)
        out: list[ReadingOut] = []
        for meter_id, serial in meters:
            out.extend(
                ReadingOut(meter=serial, at=r.at, energy_kwh=r.energy_kwh, power_kw=r.power_kw,
                           voltage_v=r.voltage_v, current_a=r.current_a,
                           relay_closed=r.relay_closed)
                for r in config.store.readings(meter_id, since, until)
            )
        return out

    @app.get("/api/alarms", dependencies=guarded, responses=unauthorised)
    def list_alarms(db: Db) -> list[AlarmOut]:
        """Alarms not cleared yet, newest first."""
        return [
            AlarmOut(id=a.alarm_id, kind=a.kind, meter=a.meter, gateway=a.gateway, unit=a.unit,
                     account=a.account, raised_at=a.raised_at, value=a.value, detail=a.detail,
                     acknowledged_at=a.acknowledged_at)
            for a in monitoring.open_alarms(db)
        ]

    return app


def app_from_settings(settings: Settings) -> FastAPI:
    """The API as the settings describe it; the caller runs it (uvicorn) and owns its store."""
    from collector.tsdb import open_store
    from payments.config import provider_from_settings

    return create_app(ApiConfig(
        database_url=settings.database_url,
        store=open_store(settings.timeseries_url, settings.database_url),
        policy=settings.billing_policy(),
        tokens=settings.api_token_list,
        provider=provider_from_settings(settings),
        poll_after=timedelta(seconds=settings.pay_poll_after_s),
        poll_interval_s=settings.pay_poll_interval_s,
        order_timeout=timedelta(minutes=settings.pay_order_timeout_min),
    ))


def _utc(value: datetime) -> datetime:
    """A query's instant; one without a zone is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _account(db: Session, number: str) -> Account:
    account = db.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise HTTPException(404, f"No account {number}")
    return account


def _meters(db: Session, account_id: int) -> list[tuple[int, str]]:
    return list(db.execute(
        select(Meter.id, Meter.serial)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .where(AccountMeter.account_id == account_id, AccountMeter.detached_at.is_(None))
        .order_by(Meter.serial)
    ))


def _account_out(account: Account) -> AccountOut:
    return AccountOut(number=account.number, tenant_name=account.tenant_name,
                      status=account.status,  # type: ignore[arg-type]
                      balance=account.balance.quantize(Decimal("0.01")),
                      alarm_level=account.alarm_level)  # type: ignore[arg-type]


def _order_out(order: PaymentOrder, account: Account) -> OrderOut:
    return OrderOut(order_no=order.order_no, account=account.number,
                    amount=order.amount.quantize(Decimal("0.01")),
                    provider=order.provider, state=order.state,  # type: ignore[arg-type]
                    pay_url=order.pay_url, balance=account.balance.quantize(Decimal("0.01")),
                    created_at=order.created_at, paid_at=order.paid_at)


def _handle_notification(
    config: ApiConfig, provider: PaymentProvider, form: dict[str, str], body: str
) -> orders.Confirmation:
    with unit_of_work(config.database_url) as db:
        return orders.handle_notification(
            db, provider, form, body=body, now=datetime.now(UTC),
            policy=parameters.effective_policy(db, config.policy),
        )


def _poll_loop(config: ApiConfig, stop: threading.Event) -> None:
    assert config.provider is not None
    while not stop.wait(config.poll_interval_s):
        try:
            with unit_of_work(config.database_url) as db:
                policy = parameters.effective_policy(db, config.policy)
            results = orders.poll_unpaid(
                config.database_url, config.provider, now=datetime.now(UTC), policy=policy,
                after=config.poll_after, give_up_after=config.order_timeout + timedelta(minutes=5),
            )
            for order_no, outcome in results.items():
                if outcome not in ("waiting", "error"):
                    log.info("order %s: %s (by asking the provider)", order_no, outcome)
        except Exception:
            # The poller is the fallback for lost notifications: it must outlive one bad round.
            log.exception("polling unpaid orders")
