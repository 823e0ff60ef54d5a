"""The alarm lifecycle (三级预警, overload, lost contact, anomalies): raised, acknowledged, cleared.

An alarm is open (cleared_at empty) while its condition lasts, and at most one alarm of a kind is
open for one account, meter or gateway, so a condition that goes on raises once. Conditions and
how they end:

- alarm1, alarm2, arrears: the account's balance level. One balance alarm is open per account,
  for the level it is at; moving to another level clears it and raises that level's (so a level
  reached again after a recharge raises again), and back to normal clears it. Balances move only
  by charges and counter operations, so they do not flap.
- overload: a meter's power above its threshold throughout OVERLOAD_SUSTAIN_S; it
  clears only once the power is below 90 % of the threshold (hysteresis), see `OverloadWatch`.
- lost_contact: a meter or a gateway the collector marked lost; cleared when it answers again.
- energy_backwards, command_failed: anomalies with no lasting condition; acknowledging one
  clears it. tariff_error clears when the meter's readings are priced again.

Alarms are rows written in the caller's transaction, beside the money or readings that raised
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from billing import notices
from billing.policy import BillingPolicy
from schema import bulk
from schema.models import Account, Alarm, Gateway, Meter

BALANCE_KINDS = ("alarm1", "alarm2", "arrears")
CLEARED_BY_ACKNOWLEDGING = ("energy_backwards", "command_failed")
OVERLOAD_CLEARS_BELOW = Decimal("0.9")  # of the threshold

Subject = Literal["meter_id", "account_id", "gateway_id"]


def _open(kind: str, subject: Subject, subject_id: int) -> ColumnElement[bool]:
    return and_(
        Alarm.kind == kind, Alarm.cleared_at.is_(None), getattr(Alarm, subject) == subject_id
    )


def clear(session: Session, kind: str, *, subject: Subject, subject_id: int, at: datetime) -> None:
    """Clear the open alarm of `kind` about the subject, if there is one."""
    session.execute(
        update(Alarm)
        .where(_open(kind, subject, subject_id))
        .values(cleared_at=at)
    )


def balance_levels(
    session: Session, changes: Sequence[tuple[Account, str]], *, at: datetime
) -> list[Alarm]:
    """Follow each account's balance level: (account, level before) for accounts whose
    alarm_level was just refreshed. Returns the alarms raised."""
    moved = [account for account, before in changes if account.alarm_level != before]
    if not moved:
        return []
    session.execute(
        update(Alarm)
        .where(
            Alarm.kind.in_(BALANCE_KINDS),
            Alarm.cleared_at.is_(None),
            bulk.among(session, Alarm.account_id, [account.id for account in moved]),
        )
        .values(cleared_at=at)
    )
    raised = [
        Alarm(kind=account.alarm_level, account_id=account.id, raised_at=at,
              value=f"{account.balance:.2f}")
        for account in moved
        if account.alarm_level in BALANCE_KINDS
    ]
    session.add_all(raised)
    return raised


def contact(session: Session, *, at: datetime, policy: BillingPolicy) -> None:
    """lost_contact alarms in step with the meters and gateways the collector marks lost and
    found: raised for each newly lost, cleared for each found again. A meter behind a lost
    gateway has no alarm of its own: the gateway's says it all (one alarm, not thirty-three).
    Operators are told of a lost gateway. A few set-based statements, whatever the size of
    the site."""
    is_open = and_(Alarm.kind == "lost_contact", Alarm.cleared_at.is_(None))
    gateway_lost = exists().where(Gateway.id == Meter.gateway_id, Gateway.lost_since.is_not(None))
    for model, column, alarmed, ended in (
        (Gateway, Alarm.gateway_id, Gateway.lost_since.is_not(None), Gateway.lost_since.is_(None)),
        (Meter, Alarm.meter_id, and_(Meter.lost_since.is_not(None), ~gateway_lost),
         or_(Meter.lost_since.is_(None), gateway_lost)),
    ):
        newly_lost = session.execute(
            select(model.id, model.lost_since).where(
                alarmed, ~exists().where(is_open, column == model.id)
            )
        ).all()
        session.add_all(
            Alarm(kind="lost_contact", raised_at=at, value=f"{since:%Y-%m-%d %H:%M} UTC",
                  **{column.key: row_id})
            for row_id, since in newly_lost
        )
        session.flush()
        found = session.scalars(
            update(Alarm)
            .where(is_open, column.in_(select(model.id).where(ended)))
            .values(cleared_at=at)
            .returning(column)
        ).all()
        if model is Gateway:
            lost_ids = [gateway_id for gateway_id, _ in newly_lost]
            names = {
                gateway_id: name
                for gateway_id, name in session.execute(
                    select(Gateway.id, Gateway.name).where(Gateway.id.in_(lost_ids))
                )
            }
            for gateway_id, since in newly_lost:
                notices.gateway_lost(session, gateway_id, names[gateway_id], since or at,
                                     policy=policy, now=at)
            for found_id in found:
                if found_id is not None:
                    notices.gateway_found(session, found_id, now=at)


class PowerReading(Protocol):
    @property
    def meter_id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def power_kw(self) -> Decimal | None: ...


@dataclass
class OverloadWatch:
    """Overload alarms from the power in successive readings.

    A meter is over from its first reading above its threshold; still over in every reading
    `sustain` later, it raises. The alarm clears only once the power is below 90 % of the
    threshold, so power hovering at the threshold cannot make alarms come and go. The collector
    keeps one watch for as long as it runs (a restart starts the timing again; an alarm already
    raised stays open until the power falls).
    """

    sustain: timedelta
    over_since: dict[int, datetime] = field(default_factory=dict)

    def check(
        self,
        session: Session,
        readings: Iterable[PowerReading],
        *,
        thresholds: Mapping[int, Decimal],
        default_kw: Decimal,
    ) -> list[Alarm]:
        """Follow a batch of readings; `thresholds` are the meters' own (others: default_kw).
        Returns the alarms raised."""
        alarmed = set(session.scalars(
            select(Alarm.meter_id).where(Alarm.kind == "overload", Alarm.cleared_at.is_(None))
        ))
        raised: list[Alarm] = []
        for reading in sorted(readings, key=lambda r: r.at):
            if reading.power_kw is None:
                continue
            meter_id = reading.meter_id
            threshold = thresholds.get(meter_id, default_kw)
            if reading.power_kw > threshold:
                since = self.over_since.setdefault(meter_id, reading.at)
                if reading.at - since >= self.sustain and meter_id not in alarmed:
                    alarm = Alarm(kind="overload", meter_id=meter_id, raised_at=reading.at,
                                  value=f"{reading.power_kw} kW > {threshold} kW")
                    session.add(alarm)
                    raised.append(alarm)
                    alarmed.add(meter_id)
            else:
                self.over_since.pop(meter_id, None)
                if reading.power_kw < threshold * OVERLOAD_CLEARS_BELOW and meter_id in alarmed:
                    clear(session, "overload", subject="meter_id", subject_id=meter_id,
                          at=reading.at)
                    alarmed.discard(meter_id)
        return raised
