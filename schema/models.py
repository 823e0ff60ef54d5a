"""SQLAlchemy 2 models: the site, its meters, accounts, the ledger, commands, operators, audit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from schema.types import Energy, Money, ScaledDecimal, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Building(Base):
    __tablename__ = "buildings"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    floors: Mapped[list[Floor]] = relationship(back_populates="building", order_by="Floor.level")


class Floor(Base):
    __tablename__ = "floors"
    __table_args__ = (UniqueConstraint("building_id", "level"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    level: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    building: Mapped[Building] = relationship(back_populates="floors")
    units: Mapped[list[Unit]] = relationship(back_populates="floor", order_by="Unit.number")


class Unit(Base):
    """A shop or office with its unit number (户号)."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    floor_id: Mapped[int] = mapped_column(ForeignKey("floors.id"))
    number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    area_m2: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    floor: Mapped[Floor] = relationship(back_populates="units")


class Gateway(Base):
    """A communication gateway (通讯管理机) that puts one RS-485 bus on the network."""

    __tablename__ = "gateways"
    __table_args__ = (
        CheckConstraint("port BETWEEN 1 AND 65535", name="port_range"),
        CheckConstraint("transport IN ('tcp', 'rtu-over-tcp', 'serial')", name="transport_kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=502)
    transport: Mapped[str] = mapped_column(String(16), default="tcp")
    timeout_s: Mapped[Decimal] = mapped_column(Energy(), default=Decimal("1"))
    retries: Mapped[int] = mapped_column(Integer, default=1)
    interval_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Silence kept on the bus between two requests (some gateways need it between RTU frames).
    gap_ms: Mapped[int] = mapped_column(Integer, default=0)
    # For a local serial port (transport 'serial', host = the device path such as /dev/ttyUSB0).
    baudrate: Mapped[int] = mapped_column(Integer, default=9600)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lost_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    meters: Mapped[list[Meter]] = relationship(
        back_populates="gateway", order_by="Meter.bus_address"
    )


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = (
        UniqueConstraint("gateway_id", "bus_address", name="one_meter_per_bus_address"),
        CheckConstraint("bus_address BETWEEN 1 AND 247", name="bus_address_range"),
        CheckConstraint("relay IN ('closed', 'open', 'unknown')", name="relay_state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    profile: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    bus_address: Mapped[int] = mapped_column(Integer)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), nullable=True)
    ct_ratio: Mapped[int] = mapped_column(Integer, default=1)
    # 一表一价: a price on the meter overrides the site default.
    price_per_kwh: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    power_protect: Mapped[bool] = mapped_column(Boolean, default=False)
    relay: Mapped[str] = mapped_column(String(8), default="unknown")
    last_reading_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_energy_kwh: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    last_power_kw: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    lost_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.id"), nullable=True)
    # How interval energy is split across time-of-use bands: the meter's own band registers,
    # or in proportion to time when its profile has none.
    band_source: Mapped[str | None] = mapped_column(String(12), nullable=True)
    alarm1_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    alarm2_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    overload_kw: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    gateway: Mapped[Gateway] = relationship(back_populates="meters")
    unit: Mapped[Unit | None] = relationship()


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status_kind"),
        CheckConstraint(
            "alarm_level IN ('normal', 'alarm1', 'alarm2', 'arrears')", name="alarm_level_kind"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")
    # The language the tenant is told things in (notifications): "zh" or "en".
    language: Mapped[str] = mapped_column(String(8), default="zh")
    id_number: Mapped[str] = mapped_column(String(64), default="")  # ID card or company number
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8), default="open")
    # Cached Σ ledger entries, updated in the same transaction as every entry.
    balance: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    alarm_level: Mapped[str] = mapped_column(String(8), default="normal")
    alarm1_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    alarm2_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The tenant's kiosk PIN (argon2, like operator passwords); None: no PIN, no kiosk sign-in.
    pin_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pin_failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The operators let the tenant restore a tripped meter from the kiosk (balance above 0).
    tenant_control: Mapped[bool] = mapped_column(Boolean, default=False)


class AccountMeter(Base):
    """A meter attached to an account for a period; one open attachment per meter."""

    __tablename__ = "account_meters"
    __table_args__ = (
        Index(
            "uq_account_meters_active_meter",
            "meter_id",
            unique=True,
            sqlite_where=text("detached_at IS NULL"),
            postgresql_where=text("detached_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detached_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    account: Mapped[Account] = relationship()
    meter: Mapped[Meter] = relationship()


class LedgerEntry(Base):
    """One append-only money movement on an account; `balance_after` is the running sum."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('charge', 'sale', 'refund', 'reversal', 'transfer')", name="entry_kind"
        ),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        # An account's charges over a few days (days left) without visiting the table rows.
        Index("ix_ledger_entries_account_id_kind_effective_at", "account_id", "kind",
              "effective_at", postgresql_include=["amount"]),
        # The site's entries of a day (the daily sales report, short ranges of charges).
        Index("ix_ledger_entries_effective_at", "effective_at"),
        # A sale or refund is reversed at most once.
        Index(
            "uq_ledger_entries_one_reversal",
            "reference_id",
            unique=True,
            sqlite_where=text("kind = 'reversal'"),
            postgresql_where=text("kind = 'reversal'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money())
    balance_after: Mapped[Decimal] = mapped_column(Money())
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"), nullable=True)
    energy_kwh: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    price_per_kwh: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    payment_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    receipt_no: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # effective_at: when it happened (a reading's time); recorded_at: when we wrote it.
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MeterBilling(Base):
    """Where billing stands for one meter: the last billed reading and the tier period to date.

    `period_cost_exact` is the unrounded cost of the period's energy so far; each charge is
    round(period_cost_exact, 4) - period_charged, so a period's charges never drift from the
    tariff applied to its energy.
    """

    __tablename__ = "meter_billing"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    billed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    billed_energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    billed_band_energy: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    period: Mapped[str] = mapped_column(String(8), default="")
    period_energy_kwh: Mapped[Decimal] = mapped_column(ScaledDecimal(10), default=Decimal("0"))
    period_cost_exact: Mapped[Decimal] = mapped_column(ScaledDecimal(10), default=Decimal("0"))
    period_charged: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))


class ChargeDaily(Base):
    """A meter's charges of one site-local day per tariff band, kept by billing as it charges:
    the energy and unrounded cost that cost reports stack by band. Band '' is a one-rate tariff
    (flat or tiered), or a charge made before bands were recorded."""

    __tablename__ = "charge_daily"
    __table_args__ = (Index("ix_charge_daily_on_date", "on_date"),)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    band: Mapped[str] = mapped_column(String(12), primary_key=True)
    energy_kwh: Mapped[Decimal] = mapped_column(ScaledDecimal(10))
    cost: Mapped[Decimal] = mapped_column(ScaledDecimal(10))


class Tariff(Base):
    """A named tariff; its prices live in versions, each in force from its effective_from."""

    __tablename__ = "tariffs"
    __table_args__ = (
        CheckConstraint("kind IN ('flat', 'tou', 'tiered', 'tou_tiered')", name="tariff_kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    versions: Mapped[list[TariffVersionRow]] = relationship(
        back_populates="tariff", order_by="TariffVersionRow.effective_from"
    )


class TariffVersionRow(Base):
    __tablename__ = "tariff_versions"
    __table_args__ = (
        UniqueConstraint("tariff_id", "effective_from", name="one_version_per_instant"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    spec: Mapped[dict[str, object]] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    tariff: Mapped[Tariff] = relationship(back_populates="versions")


class Holiday(Base):
    """The operator's holiday calendar: these local dates use a tariff's holiday plan."""

    __tablename__ = "holidays"
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")


class ReceiptCounter(Base):
    """The last receipt number used on a local day; taken under a row lock, so numbers are
    gap-free (a rolled-back sale gives its number back)."""

    __tablename__ = "receipt_counters"
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class AccountClosing(Base):
    """The closing record (销户) of an account."""

    __tablename__ = "account_closings"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    final_balance: Mapped[Decimal] = mapped_column(Money())
    refunded: Mapped[Decimal] = mapped_column(Money())
    debt: Mapped[Decimal] = mapped_column(Money())
    meters: Mapped[list[str]] = mapped_column(JSON)
    receipt_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class MeterReplacement(Base):
    """An old meter replaced by a new one on the same account (老表金额转入)."""

    __tablename__ = "meter_replacements"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    old_meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    new_meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    old_final_energy_kwh: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    value_transferred: Mapped[Decimal] = mapped_column(Money())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)


class Alarm(Base):
    """Something an operator should see: raised, acknowledged, cleared."""

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_open", "kind", "meter_id", "cleared_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"), nullable=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    value: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    ack_note: Mapped[str] = mapped_column(Text, default="")
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Command(Base):
    __tablename__ = "commands"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('trip', 'close', 'protect_on', 'protect_off', 'price', 'settings')",
            name="command_kind",
        ),
        CheckConstraint(
            "state IN ('queued', 'sent', 'confirmed', 'failed', 'expired')", name="command_state"
        ),
        Index("ix_commands_state_id", "state", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12), default="queued")
    reason: Mapped[str] = mapped_column(String(200), default="")
    # What a price or settings dispatch writes, e.g. {"sharp": "1.4500", ...}.
    payload: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    meter: Mapped[Meter] = relationship()


class Role(Base):
    """A named permission set; the four built-in roles can be edited but not removed."""

    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class Operator(Base):
    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    # The password before the last change: a change may not reuse it.
    previous_password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"), default="viewer")
    language: Mapped[str] = mapped_column(String(8), default="en")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Loaded with the operator, so a permission check never needs another query.
    role_info: Mapped[Role] = relationship(lazy="joined")


class SiteParameter(Base):
    """A default parameter the operators maintain (系统设置), stored as text, typed in code."""

    __tablename__ = "site_parameters"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class Reading(Base):
    """The embedded time-series store: one row per meter per reading time."""

    __tablename__ = "ts_readings"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    power_kw: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    voltage_v: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    current_a: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)
    relay_closed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class ReadingDay(Base):
    """One meter's first and last reading of one site-local day, kept by the embedded store as
    it writes readings and left in place when the day is archived: energy per day is read from
    one row per meter and day instead of from every reading. See collector/tsdb_sql.py."""

    __tablename__ = "ts_day_spans"
    # Site-wide reports read a range of days for every meter: the days' rows in one index range.
    __table_args__ = (Index("ix_ts_day_spans_on_date", "on_date", "meter_id", "energy_kwh"),)
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    # The day's energy as reports count it: last value minus the last value of the meter's
    # previous day with readings (or minus the day's first value when there is none).
    energy_kwh: Mapped[Decimal] = mapped_column(Energy())


class DailyReading(Base):
    """One meter's readings of one site-local day, rolled up when the day was archived (数据转存);
    the day's readings are then gone from `ts_readings`. See collector/archive.py."""

    __tablename__ = "ts_daily"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    last_energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    # The day's energy as reports count it: last value minus the last value before the day.
    energy_kwh: Mapped[Decimal] = mapped_column(Energy())
    readings: Mapped[int] = mapped_column(Integer)
    max_power_kw: Mapped[Decimal | None] = mapped_column(Energy(), nullable=True)


# --- Notifications (notify/): the outbox and its delivery attempts ------------------------------


class OutboxMessage(Base):
    """A message to one recipient, written in the same transaction as what it tells about and
    delivered by the sender loop (notify/sender.py).

    `dedupe_key` is unique per recipient while the message is not cleared: a balance level or a
    trip is told once until the condition ends (`cleared_at`, set by notify.outbox.clear), and a
    recharge confirmation, whose key is never cleared, is told once ever.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('alarm1', 'alarm2', 'arrears', 'trip', 'recharge', 'gateway_lost', "
            "'command_failed')",
            name="message_kind",
        ),
        CheckConstraint(
            "state IN ('queued', 'sending', 'sent', 'failed', 'cancelled')", name="message_state"
        ),
        CheckConstraint("channel IN ('any', 'modem', 'http_sms', 'email')", name="channel_kind"),
        Index(
            "uq_outbox_messages_open_key",
            "dedupe_key",
            "recipient",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_outbox_messages_state_next_attempt_at", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(12), default="any")
    language: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    # Urgent messages go out during quiet hours; the others wait for them to end.
    urgent: Mapped[bool] = mapped_column(Boolean)
    dedupe_key: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), nullable=True, index=True
    )
    state: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # queued: not before this; sending: the claim lapses then (the sender may have died mid-send).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    reference: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryAttempt(Base):
    """One try of one channel to deliver an outbox message, with what the provider answered."""

    __tablename__ = "outbox_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    # The provider's reference on success (message references, HTTP reply), or the error.
    reply: Mapped[str] = mapped_column(Text, default="")


# --- Online payments (payments/): orders toward a payment provider and what it told us ---------


class PaymentOrder(Base):
    """One online recharge: our order number is the idempotency key toward the provider.

    created → paid (credited) | closed (never paid) | failed (paid at the provider but the sale
    was refused, e.g. the account was closed meanwhile: money to give back); paid or failed →
    refunded. Amounts are whole cents (the provider's yuan with 2 decimals).
    """

    __tablename__ = "payment_orders"
    __table_args__ = (
        CheckConstraint(
            "state IN ('created', 'paid', 'closed', 'failed', 'refunded')", name="order_state"
        ),
        CheckConstraint("amount > 0 AND amount % 100 = 0", name="amount_cents"),
        UniqueConstraint("provider", "trade_no"),
        Index("ix_payment_orders_state_created_at", "state", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    provider: Mapped[str] = mapped_column(String(16))
    # The provider's own number for the payment, known once it is paid (or queried).
    trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(12), default="created")
    # What the tenant opens, or scans as a QR code, to pay.
    pay_url: Mapped[str] = mapped_column(Text, default="")
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id"), nullable=True
    )
    # Why an order is failed or closed, in words an operator understands.
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentNotification(Base):
    """Every asynchronous notification a provider posted, kept as received, with its outcome."""

    __tablename__ = "payment_notifications"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('credited', 'repeated', 'ignored', 'failed', 'refused')",
            name="outcome_kind",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    order_no: Mapped[str] = mapped_column(String(64), default="", index=True)
    body: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
