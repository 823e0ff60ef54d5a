"""Operators (登陆管理) as an administrator runs them — on SQLite and PostgreSQL.

Logins lock after five wrong passwords; operators, roles and passwords change only through
someone with the operators permission (or, for one's own password, oneself); nobody can take
the operators permission away from the last active operator who has it; every change is in the
operation log, which filters by site-local dates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import operators, oplog
from billing.errors import BillingError, PermissionDenied
from payments import orders
from schema.db import unit_of_work
from schema.models import AuditEntry, Operator, Role
from tests.factories import T0, make_site

PASSWORD = "correct horse"  # the factory's administrator password
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def by_name(s: Session, username: str) -> Operator:
    return s.scalars(select(Operator).where(Operator.username == username)).one()


def log(url: str, *, since: datetime = T0) -> list[tuple[str, str, str]]:
    with unit_of_work(url) as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target)
            .where(AuditEntry.at >= since).order_by(AuditEntry.id)
        ).all()
    return [(actor, action, target) for actor, action, target in rows]


def staffed(url: str) -> None:
    """The factory site (admin) with a cashier and a viewer."""
    with unit_of_work(url) as s:
        site = make_site(s)
        for username, role in (("cashier", "cashier"), ("viewer", "viewer")):
            operators.add_operator(s, operator=site.admin, username=username, display_name="",
                                   role=role, password=f"{username}-password", now=T0)


def as_admin(url: str, change: Callable[[Session, Operator], object]) -> None:
    with unit_of_work(url) as s:
        change(s, by_name(s, "admin"))


def login(url: str, username: str, password: str, minutes: float) -> operators.LoginAttempt:
    with unit_of_work(url) as s:
        return operators.attempt_login(s, username, password, now=at(minutes))


# --- login and lock ------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_for_15_minutes(db_url: str) -> None:
    staffed(db_url)
    for minute in range(1, 5):
        assert login(db_url, "cashier", "guess", minute).outcome == "wrong"

    fifth = login(db_url, "cashier", "guess", 5)

    assert fifth.outcome == "locked"
    assert fifth.locked_until == at(20)
    # Locked: even the right password is refused, and the lock is not extended by trying.
    during = login(db_url, "cashier", "cashier-password", 19)
    assert (during.outcome, during.operator, during.locked_until) == ("locked", None, at(20))
    # Once the 15 minutes are over, the right password opens the session again.
    after = login(db_url, "cashier", "cashier-password", 20)
    assert after.outcome == "ok"
    assert after.operator is not None and after.operator.username == "cashier"
    with unit_of_work(db_url) as s:
        cashier = by_name(s, "cashier")
        assert (cashier.failed_attempts, cashier.locked_until) == (0, None)
        assert cashier.last_seen_at == at(20)
    assert log(db_url, since=at(1)) == [
        *[("system", "login.failed", "cashier")] * 5,
        ("system", "operator.lock", "cashier"),
        ("system", "login.failed", "cashier"),
        ("system", "operator.unlock", "cashier"),
        ("cashier", "login", "cashier"),
    ]


def test_a_good_login_starts_the_count_again(db_url: str) -> None:
    staffed(db_url)
    for i in range(4):
        login(db_url, "cashier", "guess", i)
    assert login(db_url, "cashier", "cashier-password", 4).outcome == "ok"
    for i in range(4):
        assert login(db_url, "cashier", "guess", 5 + i).outcome == "wrong"


def test_the_lock_setting_is_honoured(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        first = operators.attempt_login(s, "viewer", "guess", now=T0, lock_after=1,
                                        lock_for=timedelta(minutes=2))
    assert (first.outcome, first.locked_until) == ("locked", at(2))


def test_a_disabled_operator_cannot_log_in(db_url: str) -> None:
    staffed(db_url)
    as_admin(db_url, lambda s, admin: operators.set_active(
        s, operator=admin, operator_id=by_name(s, "cashier").id, active=False, now=T0))

    assert login(db_url, "cashier", "cashier-password", 1).outcome == "disabled"
    # Without the right password nobody learns that the account exists but is disabled.
    assert login(db_url, "cashier", "guess", 2).outcome == "wrong"
    with unit_of_work(db_url) as s:
        assert operators.authenticate(s, "cashier", "cashier-password", now=at(3)) is None


def test_an_unknown_name_is_refused_and_recorded(db_url: str) -> None:
    staffed(db_url)
    long_name = "x" * 200

    assert login(db_url, "nobody", "guess", 1).outcome == "wrong"
    assert login(db_url, long_name, "guess", 2).outcome == "wrong"

    assert log(db_url, since=at(1)) == [
        ("system", "login.failed", "nobody"),
        ("system", "login.failed", "x" * 64),
    ]


def test_authenticate_still_answers_operator_or_none(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        assert operators.authenticate(s, " admin ", PASSWORD, now=T0) is not None
        assert operators.authenticate(s, "admin", "wrong", now=T0) is None


def test_the_environment_password_lets_a_locked_administrator_back_in(db_url: str) -> None:
    staffed(db_url)
    for i in range(5):
        login(db_url, "admin", "guess", i)
    assert login(db_url, "admin", PASSWORD, 5).outcome == "locked"

    with unit_of_work(db_url) as s:
        assert operators.ensure_admin(s, password="a new admin password", now=at(6)) is None

    assert login(db_url, "admin", "a new admin password", 7).outcome == "ok"


# --- operator management -------------------------------------------------------------------


def test_an_administrator_creates_an_operator_who_can_log_in(db_url: str) -> None:
    staffed(db_url)
    as_admin(db_url, lambda s, admin: operators.add_operator(
        s, operator=admin, username=" li.na ", display_name="李娜", role="engineer",
        password="first-day-pw", now=at(1)))

    attempt = login(db_url, "li.na", "first-day-pw", 2)

    assert attempt.operator is not None
    assert (attempt.operator.display_name, attempt.operator.role) == ("李娜", "engineer")
    assert operators.can(attempt.operator, "control")
    assert not operators.can(attempt.operator, "sell")
    assert ("admin", "operator.create", "li.na") in log(db_url)


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("", "long enough", "cashier", "Enter a user name"),
        ("li na", "long enough", "cashier", "no spaces"),
        ("CASHIER", "long enough", "cashier", "Operator cashier already exists"),
        ("li.na", "short", "cashier", "at least 8 characters"),
        ("li.na", "x" * 129, "cashier", "at most 128 characters"),
        ("li.na", "long enough", "janitor", "Unknown role 'janitor'"),
    ],
)
def test_a_bad_new_operator_is_refused_and_nothing_is_saved(
    db_url: str, username: str, password: str, role: str, message: str
) -> None:
    staffed(db_url)
    with pytest.raises(BillingError, match=message), unit_of_work(db_url) as s:
        operators.add_operator(s, operator=by_name(s, "admin"), username=username,
                               display_name="", role=role, password=password, now=at(1))
    with unit_of_work(db_url) as s:
        assert s.scalar(select(Operator.id).where(Operator.username == "li.na")) is None
    assert log(db_url, since=at(1)) == []


def test_only_the_operators_permission_manages_operators(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        cashier = by_name(s, "cashier")
        viewer_id = by_name(s, "viewer").id
        refused: list[Callable[[], object]] = [
            lambda: operators.list_operators(s, operator=cashier, now=T0),
            lambda: operators.add_operator(s, operator=cashier, username="x.y", display_name="",
                                           role="administrator", password="long enough", now=T0),
            lambda: operators.set_active(s, operator=cashier, operator_id=viewer_id,
                                         active=False, now=T0),
            lambda: operators.reset_password(s, operator=cashier, operator_id=viewer_id,
                                             password="long enough", now=T0),
            lambda: operators.change_role(s, operator=cashier, operator_id=cashier.id,
                                          role="administrator", now=T0),
            lambda: operators.unlock(s, operator=cashier, operator_id=viewer_id, now=T0),
            lambda: operators.list_roles(s, operator=cashier),
            lambda: operators.set_role_permissions(s, operator=cashier, name="cashier",
                                                   permissions=operators.PERMISSIONS, now=T0),
            lambda: operators.create_role(s, operator=cashier, name="boss",
                                          permissions=["operators"], now=T0),
            lambda: operators.delete_role(s, operator=cashier, name="engineer", now=T0),
            lambda: oplog.search(s, operator=cashier, tz=SHANGHAI),
            lambda: oplog.actors(s, operator=cashier),
        ]
        for call in refused:
            with pytest.raises(PermissionDenied, match=r"cashier is not allowed .*operators"):
                call()
    with unit_of_work(db_url) as s:
        assert by_name(s, "cashier").role == "cashier"
        assert by_name(s, "viewer").is_active


def test_disable_and_enable(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        admin, viewer = by_name(s, "admin"), by_name(s, "viewer")
        with pytest.raises(BillingError, match="cannot disable your own account"):
            operators.set_active(s, operator=admin, operator_id=admin.id, active=False, now=T0)
        operators.set_active(s, operator=admin, operator_id=viewer.id, active=False, now=at(1))
        assert not operators.can(viewer, "view")
    assert login(db_url, "viewer", "viewer-password", 2).outcome == "disabled"
    as_admin(db_url, lambda s, admin: operators.set_active(
        s, operator=admin, operator_id=by_name(s, "viewer").id, active=True, now=at(3)))
    assert login(db_url, "viewer", "viewer-password", 4).outcome == "ok"
    assert [a for _, a, target in log(db_url, since=at(1)) if target == "viewer"] == [
        "operator.disable", "login.failed", "operator.enable", "login",
    ]


def test_a_reset_password_replaces_the_old_one_and_lifts_the_lock(db_url: str) -> None:
    staffed(db_url)
    for i in range(5):
        login(db_url, "cashier", "guess", i)
    with unit_of_work(db_url) as s:
        admin, cashier = by_name(s, "admin"), by_name(s, "cashier")
        with pytest.raises(BillingError, match="at least 8"):
            operators.reset_password(s, operator=admin, operator_id=cashier.id, password="short",
                                     now=at(5))
        with pytest.raises(BillingError, match="Change password page"):
            operators.reset_password(s, operator=admin, operator_id=admin.id,
                                     password="long enough", now=at(5))
        operators.reset_password(s, operator=admin, operator_id=cashier.id,
                                 password="temporary-1", now=at(5))

    assert login(db_url, "cashier", "cashier-password", 6).outcome == "wrong"
    assert login(db_url, "cashier", "temporary-1", 7).outcome == "ok"
    with unit_of_work(db_url) as s:
        assert by_name(s, "cashier").password_changed_at is None  # temporary: set by someone else
    assert log(db_url, since=at(5))[:2] == [
        ("admin", "operator.reset_password", "cashier"),
        ("admin", "operator.unlock", "cashier"),
    ]


def test_an_administrator_unlocks_before_the_time_is_up(db_url: str) -> None:
    staffed(db_url)
    for i in range(5):
        login(db_url, "cashier", "guess", i)
    with unit_of_work(db_url) as s:
        admin, viewer = by_name(s, "admin"), by_name(s, "viewer")
        with pytest.raises(BillingError, match="viewer is not locked"):
            operators.unlock(s, operator=admin, operator_id=viewer.id, now=at(5))
        rows = {row.username: row for row in operators.list_operators(s, operator=admin,
                                                                        now=at(5))}
        assert rows["cashier"].locked_until == at(19)
        assert rows["viewer"].locked_until is None
        operators.unlock(s, operator=admin, operator_id=by_name(s, "cashier").id, now=at(5))

    assert login(db_url, "cashier", "cashier-password", 6).outcome == "ok"


def test_a_role_change_takes_effect_at_once(db_url: str) -> None:
    staffed(db_url)
    as_admin(db_url, lambda s, admin: operators.change_role(
        s, operator=admin, operator_id=by_name(s, "viewer").id, role="cashier", now=at(1)))
    with unit_of_work(db_url) as s:
        assert operators.can(by_name(s, "viewer"), "sell")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "operator.role")).one()
        assert entry.detail == {"before": "viewer", "after": "cashier"}


def test_nobody_can_remove_the_last_operator_who_manages_operators(db_url: str) -> None:
    staffed(db_url)
    with pytest.raises(BillingError, match="no active operator could manage"), \
            unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        operators.change_role(s, operator=admin, operator_id=admin.id, role="cashier", now=at(1))
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        # With a second administrator the first may step down to cashier.
        operators.add_operator(s, operator=admin, username="boss", display_name="",
                               role="administrator", password="long enough", now=at(2))
        operators.change_role(s, operator=admin, operator_id=admin.id, role="cashier", now=at(3))
    with pytest.raises(BillingError, match="no active operator could manage"), \
            unit_of_work(db_url) as s:
        boss = by_name(s, "boss")
        operators.change_role(s, operator=boss, operator_id=boss.id, role="viewer", now=at(4))
    with unit_of_work(db_url) as s:
        assert by_name(s, "boss").role == "administrator"
        assert by_name(s, "admin").role == "cashier"


def test_two_administrators_disabling_each_other_at_once_leave_one(db_url: str) -> None:
    staffed(db_url)
    as_admin(db_url, lambda s, admin: operators.add_operator(
        s, operator=admin, username="boss", display_name="", role="administrator",
        password="long enough", now=at(1)))
    refused: list[BaseException] = []

    with unit_of_work(db_url) as first:
        admin = by_name(first, "admin")
        operators.set_active(first, operator=admin, operator_id=by_name(first, "boss").id,
                             active=False, now=at(2))

        def second() -> None:
            try:
                with unit_of_work(db_url) as s:
                    boss = by_name(s, "boss")
                    operators.set_active(s, operator=boss, operator_id=by_name(s, "admin").id,
                                         active=False, now=at(2))
            except BillingError as exc:
                refused.append(exc)

        # The second waits for the first's locks (PostgreSQL rows, SQLite's write lock).
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive()
    thread.join(timeout=30)

    assert len(refused) == 1, refused
    with unit_of_work(db_url) as s:
        assert by_name(s, "admin").is_active
        assert not by_name(s, "boss").is_active


# --- roles -----------------------------------------------------------------------------------


def test_a_role_edit_changes_what_its_operators_may_do(db_url: str) -> None:
    staffed(db_url)
    as_admin(db_url, lambda s, admin: operators.set_role_permissions(
        s, operator=admin, name="cashier", permissions=["sell", "view", "reverse"], now=at(1)))
    with unit_of_work(db_url) as s:
        cashier = by_name(s, "cashier")
        assert operators.can(cashier, "reverse")
        assert not operators.can(cashier, "refund")
        assert s.get_one(Role, "cashier").permissions == ["view", "sell", "reverse"]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "role.update")).one()
        assert entry.detail == {"added": "reverse", "removed": "refund,accounts"}


@pytest.mark.parametrize(
    ("name", "permissions", "message"),
    [
        ("administrator", ["view"], "administrator role must keep the operators permission"),
        ("cashier", ["view", "fly"], r"Unknown permission\(s\): fly"),
        ("janitor", ["view"], "No such role 'janitor'"),
    ],
)
def test_a_bad_role_edit_is_refused(
    db_url: str, name: str, permissions: list[str], message: str
) -> None:
    staffed(db_url)
    with pytest.raises(BillingError, match=message), unit_of_work(db_url) as s:
        operators.set_role_permissions(s, operator=by_name(s, "admin"), name=name,
                                       permissions=permissions, now=at(1))
    with unit_of_work(db_url) as s:
        assert "operators" in s.get_one(Role, "administrator").permissions
        assert s.get_one(Role, "cashier").permissions == ["view", "sell", "refund", "accounts"]


def test_a_site_role_is_created_used_and_deleted(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        operators.create_role(s, operator=admin, name=" 抄表员 ", permissions=["view", "control"],
                              now=at(1))
        with pytest.raises(BillingError, match="Role 抄表员 already exists"):
            operators.create_role(s, operator=admin, name="抄表员", permissions=[], now=at(1))
        with pytest.raises(BillingError, match="built-in role"):
            operators.delete_role(s, operator=admin, name="viewer", now=at(1))
        operators.change_role(s, operator=admin, operator_id=by_name(s, "viewer").id,
                              role="抄表员", now=at(2))
    with pytest.raises(BillingError, match=r"1 operator\(s\) still have the role"), \
            unit_of_work(db_url) as s:
        operators.delete_role(s, operator=by_name(s, "admin"), name="抄表员", now=at(3))
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        rows = {row.name: row for row in operators.list_roles(s, operator=admin)}
        assert list(rows)[:4] == ["administrator", "cashier", "engineer", "viewer"]
        assert rows["抄表员"] == operators.RoleRow("抄表员", ("view", "control"), False, 1)
        operators.change_role(s, operator=admin, operator_id=by_name(s, "viewer").id,
                              role="viewer", now=at(4))
        operators.delete_role(s, operator=admin, name="抄表员", now=at(5))
    with unit_of_work(db_url) as s:
        assert s.get(Role, "抄表员") is None
    assert [a for _, a, target in log(db_url, since=at(1)) if target == "抄表员"] == [
        "role.create", "role.delete",
    ]


def test_a_site_role_cannot_take_away_the_last_managers_permission(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        operators.create_role(s, operator=admin, name="manager", permissions=["operators"],
                              now=at(1))
        operators.change_role(s, operator=admin, operator_id=by_name(s, "cashier").id,
                              role="manager", now=at(2))
    with unit_of_work(db_url) as s:
        manager = by_name(s, "cashier")
        operators.set_active(s, operator=manager, operator_id=by_name(s, "admin").id,
                             active=False, now=at(3))
    with pytest.raises(BillingError, match="no active operator could manage"), \
            unit_of_work(db_url) as s:
        operators.set_role_permissions(s, operator=by_name(s, "cashier"), name="manager",
                                       permissions=["view"], now=at(4))


# --- own password ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "message"),
    [
        ("wrong", "a brand new one", "current password is wrong"),
        ("cashier-password", "short", "at least 8 characters"),
        ("cashier-password", "cashier-password", "differ from the current one"),
    ],
)
def test_a_bad_password_change_is_refused(
    db_url: str, current: str, new: str, message: str
) -> None:
    staffed(db_url)
    with pytest.raises(BillingError, match=message), unit_of_work(db_url) as s:
        operators.change_password(s, operator=by_name(s, "cashier"), current_password=current,
                                  new_password=new, now=at(1))
    assert login(db_url, "cashier", "cashier-password", 2).outcome == "ok"


def test_a_password_change_may_not_go_back_to_the_last_one(db_url: str) -> None:
    staffed(db_url)

    def change(current: str, new: str, minutes: float) -> None:
        with unit_of_work(db_url) as s:
            operators.change_password(s, operator=by_name(s, "cashier"),
                                      current_password=current, new_password=new,
                                      now=at(minutes))

    change("cashier-password", "second password", 1)
    with pytest.raises(BillingError, match="differ from the previous one"):
        change("second password", "cashier-password", 2)
    change("second password", "third password", 3)
    change("third password", "cashier-password", 4)  # two back is allowed again

    assert login(db_url, "cashier", "cashier-password", 5).outcome == "ok"
    with unit_of_work(db_url) as s:
        assert by_name(s, "cashier").password_changed_at == at(4)
    assert [a for actor, a, _ in log(db_url, since=at(1))].count(
        "operator.change_password") == 3


def test_nobody_changes_a_password_without_being_logged_in(db_url: str) -> None:
    staffed(db_url)
    with pytest.raises(PermissionDenied), unit_of_work(db_url) as s:
        operators.change_password(s, operator=None, current_password="x",
                                  new_password="long enough", now=at(1))


def test_everyone_chooses_their_own_language_administrators_anyone_s(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        operators.set_language(s, operator=by_name(s, "viewer"),
                               operator_id=by_name(s, "viewer").id, language="zh", now=at(1))
        # Choosing the language already set is no change and no log row.
        operators.set_language(s, operator=by_name(s, "viewer"),
                               operator_id=by_name(s, "viewer").id, language="zh", now=at(2))
    as_admin(db_url, lambda s, admin: operators.set_language(
        s, operator=admin, operator_id=by_name(s, "cashier").id, language="zh", now=at(3)))
    with pytest.raises(PermissionDenied), unit_of_work(db_url) as s:
        operators.set_language(s, operator=by_name(s, "viewer"),
                               operator_id=by_name(s, "cashier").id, language="en", now=at(4))
    with pytest.raises(BillingError, match="Unknown language 'fr'; choose one of en, zh"), \
            unit_of_work(db_url) as s:
        operators.set_language(s, operator=by_name(s, "viewer"),
                               operator_id=by_name(s, "viewer").id, language="fr", now=at(5))
    with pytest.raises(PermissionDenied), unit_of_work(db_url) as s:
        operators.set_language(s, operator=None, operator_id=by_name(s, "viewer").id,
                               language="en", now=at(6))

    with unit_of_work(db_url) as s:
        assert [(o.username, o.language) for o in operators.list_operators(
            s, operator=by_name(s, "admin"), now=at(7))] == [
            ("admin", "en"), ("cashier", "zh"), ("viewer", "zh")]
    assert log(db_url, since=at(1)) == [
        ("viewer", "operator.language", "viewer"), ("admin", "operator.language", "cashier"),
    ]


# --- operation log ---------------------------------------------------------------------------


def test_the_operation_log_filters_by_site_days_operator_action_and_target(db_url: str) -> None:
    staffed(db_url)
    # 2026-11-02 23:30 and 2026-11-03 00:30 in Shanghai: two different local days.
    late = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
    early = datetime(2026, 11, 2, 16, 30, tzinfo=UTC)
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        operators.reset_password(s, operator=admin, operator_id=by_name(s, "viewer").id,
                                 password="temporary-1", now=late)
        operators.change_role(s, operator=admin, operator_id=by_name(s, "viewer").id,
                              role="cashier", now=early)
        operators.attempt_login(s, "100%_sure", "x", now=early)

    def search(**filters: object) -> list[tuple[str, str, str]]:
        with unit_of_work(db_url) as s:
            page = oplog.search(s, operator=by_name(s, "admin"), tz=SHANGHAI, **filters)
        return [(row.actor, row.action, row.target) for row in page.rows]

    day2 = date(2026, 11, 2)
    day3 = date(2026, 11, 3)
    assert search(start_on=day2, end_on=day2) == [
        ("admin", "operator.reset_password", "viewer"),
        ("admin", "operator.create", "viewer"),
        ("admin", "operator.create", "cashier"),
        ("system", "operator.create", "admin"),
    ]
    assert search(start_on=day3, end_on=day3) == [
        ("system", "login.failed", "100%_sure"),
        ("admin", "operator.role", "viewer"),
    ]
    assert search(start_on=day3, actor="admin") == [("admin", "operator.role", "viewer")]
    assert search(action_prefix="operator.r", target_text="VIEW") == [
        ("admin", "operator.role", "viewer"),
        ("admin", "operator.reset_password", "viewer"),
    ]
    # % and _ are searched for as they are, not as wildcards.
    assert search(target_text="0%_") == [("system", "login.failed", "100%_sure")]
    assert search(target_text="0%x") == []
    with pytest.raises(BillingError, match="start date is after the end date"):
        search(start_on=day3, end_on=day2)


def test_the_operation_log_says_when_there_is_more_than_it_shows(db_url: str) -> None:
    staffed(db_url)
    with unit_of_work(db_url) as s:
        admin = by_name(s, "admin")
        every = oplog.search(s, operator=admin, tz=SHANGHAI)
        capped = oplog.search(s, operator=admin, tz=SHANGHAI, limit=2)
        exact = oplog.search(s, operator=admin, tz=SHANGHAI, limit=len(every.rows))
        assert oplog.actors(s, operator=admin) == ["admin", "cashier", "viewer", "system"]

    assert len(every.rows) >= 3 and not every.more
    assert capped.rows == every.rows[:2] and capped.more
    assert not exact.more
    assert every.rows[0].detail == "role=viewer"  # the last thing done: viewer created


def test_the_online_channel_is_not_managed_as_a_person(db_url: str) -> None:
    """Nobody can reset the online channel's password (and then log in as it), and its role
    is given to nobody else."""
    with unit_of_work(db_url) as s:
        admin = make_site(s).admin
        channel = orders.online_operator(s, now=T0)
        with pytest.raises(BillingError, match="built-in channel"):
            operators.reset_password(s, operator=admin, operator_id=channel.id,
                                     password="a-new-password-1", now=T0)
        with pytest.raises(BillingError, match="built-in channel"):
            operators.change_role(s, operator=admin, operator_id=channel.id,
                                  role="administrator", now=T0)
        with pytest.raises(BillingError, match="belongs to the built-in online channel"):
            operators.add_operator(s, operator=admin, username="li.na", display_name="Li Na",
                                   role="online", password="a-new-password-1", now=T0)
