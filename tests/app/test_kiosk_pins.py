"""Kiosk PINs on the operators' side: set when opening an account (typed twice), reset on the
accounts page by a cashier (which lifts a lock), and whether the tenant may restore power,
which only an operator with the control permission decides."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.kiosk.session import utcnow
from billing import tenants
from schema.db import unit_of_work
from schema.models import Account, AuditEntry, Operator
from tests.app.support import Site


def signs_in(site: Site, number: str, pin: str) -> str:
    with unit_of_work(site.url) as session:
        return tenants.sign_in(session, number, pin, now=utcnow()).outcome


def open_with_pin(at: AppTest, pin: str, confirm: str) -> AppTest:
    at.text_input(key="open_account_number").input("20001")
    at.text_input(key="open_account_tenant").input("Book Nook 书角")
    at.text_input(key="open_account_pin").input(pin)
    at.text_input(key="open_account_pin_confirm").input(confirm)
    return at.button(key="open_account_submit").click().run()


def test_a_pin_set_at_opening_lets_the_tenant_sign_in(site: Site) -> None:
    at = site.open_app("cashier").switch_page("screens/open_account.py").run()

    open_with_pin(at, "135790", "135799")
    assert [e.value for e in at.error] == ["The two kiosk PINs differ."]
    open_with_pin(at, "1357", "1357")
    assert [e.value for e in at.error] == ["A kiosk PIN is 6 digits."]
    with unit_of_work(site.url) as session:
        assert session.scalars(select(Account).where(Account.number == "20001")).first() is None
    open_with_pin(at, "135790", "135790")

    assert not at.error
    assert at.success[0].value.startswith("Account 20001 opened for Book Nook 书角")
    assert signs_in(site, "20001", "135790") == "ok"


def on_kiosk_tab(site: Site, username: str) -> AppTest:
    at = site.open_app(username).switch_page("screens/accounts.py").run()
    at.text_input(key="accounts_query").input("10001")
    return at.run()


def test_a_cashier_resets_a_forgotten_pin_and_lifts_the_lock(site: Site) -> None:
    at = on_kiosk_tab(site, "cashier")
    assert "No PIN yet: the tenant cannot sign in." in [m.value for m in at.markdown]
    account_id = site.account("10001").id
    with unit_of_work(site.url) as session:
        tenants.set_pin(session, operator=session.get(Operator, site.operator_ids["admin"]),
                        account_id=account_id, pin="135790", now=utcnow())
    for _ in range(5):
        signs_in(site, "10001", "000000")
    at.run()
    assert "A PIN is set." in [m.value for m in at.markdown]
    assert at.warning[0].value.startswith("Locked after wrong PINs until ")
    # A cashier has no control permission: the restore switch is not offered.
    assert "accounts_tenant_control" not in [c.key for c in at.checkbox]

    at.text_input(key="accounts_pin").input("246801")
    at.text_input(key="accounts_pin_confirm").input("246801")
    at.button(key="accounts_pin_submit").click().run()

    assert [s.value for s in at.success] == [
        "Account 10001: the kiosk PIN is set. Give it to the tenant."
    ]
    assert not at.warning
    assert at.text_input(key="accounts_pin").value == ""
    assert signs_in(site, "10001", "246801") == "ok"


def test_an_administrator_lets_the_tenant_restore_power(site: Site) -> None:
    at = on_kiosk_tab(site, "admin")
    assert at.checkbox(key="accounts_tenant_control").value is False

    at.checkbox(key="accounts_tenant_control").check()
    at.button(key="accounts_tenant_control_submit").click().run()

    assert [s.value for s in at.success] == ["Account 10001: the tenant may restore power."]
    assert site.account("10001").tenant_control is True
    with unit_of_work(site.url) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "account.tenant_control_on")
        ).one()
        assert (entry.actor, entry.target) == ("admin", "10001")
        assert entry.at > utcnow() - timedelta(minutes=1)
