"""The API's read endpoints against its own OpenAPI document (schemathesis, in-process ASGI):
with a valid token nothing fails and every answer conforms; without one, 401."""

from __future__ import annotations

from decimal import Decimal

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from api.app import ApiConfig, create_app
from billing import sales
from collector.readings import MeterReading
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from tests.factories import POLICY, T0, make_site, open_account

TOKEN = "read-token"
READS = ["/api/accounts", "/api/accounts/10001", "/api/accounts/10001/readings",
         "/api/alarms", "/api/orders/VP1"]


def site_app(url: str) -> FastAPI:
    with unit_of_work(url) as s:
        site = make_site(s, meters=2)
        account_id = open_account(s, site, *site.meters)
        sales.sell(s, account_id=account_id, amount="80.00", payment_method="cash",
                   idempotency_key="k1", operator=site.admin, now=T0, policy=POLICY)
        meter_ids = [m.id for m in site.meters]
    store = SqlReadingStore(url)
    store.write([MeterReading(meter_id=m, at=T0, energy_kwh=Decimal("12.5"),
                              power_kw=Decimal("1.2")) for m in meter_ids])
    return create_app(ApiConfig(database_url=url, store=store, policy=POLICY, tokens=[TOKEN],
                                poll=False))


def conforms(operation: schemathesis.APIOperation) -> None:
    """Generated requests to one operation, each answered without error and as documented."""
    # A schema cannot say "start before end, at most 31 days apart": a reading range may be
    # refused (422, documented) although each value is valid on its own.
    excluded: list[schemathesis.CheckFunction] = (
        [schemathesis.checks.positive_data_acceptance]
        if operation.path.endswith("/readings") else []
    )

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                               excluded_checks=excluded)

    check()


def test_read_endpoints_conform_to_the_openapi_document(db_url: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", site_app(db_url))
    reads = [op for op in (r.ok() for r in schema.get_all_operations())
             if op.method.upper() == "GET"]
    assert sorted(op.path for op in reads) == [
        "/api/accounts", "/api/accounts/{number}", "/api/accounts/{number}/readings",
        "/api/alarms", "/api/orders/{order_no}"]
    for operation in reads:
        conforms(operation)


def test_every_read_needs_a_valid_token(db_url: str) -> None:
    client = TestClient(site_app(db_url))
    for path in READS:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    account = client.get("/api/accounts/10001", headers={"Authorization": f"Bearer {TOKEN}"})
    assert account.status_code == 200
    assert (account.json()["balance"], account.json()["meters"]) == ("80.00",
                                                                     ["M00001", "M00002"])
    readings = client.get("/api/accounts/10001/readings", headers={
        "Authorization": f"Bearer {TOKEN}"}, params={"start": "2026-11-01T00:00:00Z",
                                                      "end": "2026-11-03T00:00:00Z"})
    assert [(r["meter"], r["energy_kwh"]) for r in readings.json()] == [
        ("M00001", "12.5000"), ("M00002", "12.5000")]


def test_the_openapi_document_describes_the_token(db_url: str) -> None:
    document = TestClient(site_app(db_url)).get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"/api/accounts", "/api/alarms", "/api/orders", "/pay/notify/{provider_name}"} <= set(
        document["paths"])


@pytest.mark.parametrize("query", [{"start": "2026-11-03T00:00:00Z", "end": "2026-11-01T00:00Z"},
                                   {"start": "2026-01-01T00:00:00Z", "end": "2026-11-01T00:00Z"}])
def test_a_bad_reading_range_is_a_clear_422(sqlite_url: str, query: dict[str, str]) -> None:
    reply = TestClient(site_app(sqlite_url)).get(
        "/api/accounts/10001/readings", params=query,
        headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 422
    assert reply.json()["detail"] in ("start must be before end",
                                      "At most 31 days of readings at a time")
