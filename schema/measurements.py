"""Names shared by every time-series store, so a dashboard query and a writer never disagree."""

READINGS = "meter_readings"
# Tags on every point of READINGS.
TAG_METER = "meter"
TAG_UNIT = "unit"
TAG_FLOOR = "floor"
TAG_BUILDING = "building"
TAG_GATEWAY = "gateway"
# Fields.
FIELD_ENERGY = "energy_kwh"
FIELD_POWER = "power_kw"
FIELD_VOLTAGE = "voltage_v"
FIELD_CURRENT = "current_a"
FIELD_RELAY = "relay_closed"

# Archived days (collector/archive.py): one point per meter per site-local day, at the instant
# the day begins, tagged like the day's last reading. FIELD_ENERGY holds the day's energy.
DAILY = "meter_readings_daily"
FIELD_FIRST_AT = "first_at"  # integer ns since the epoch
FIELD_LAST_AT = "last_at"
FIELD_FIRST_ENERGY = "first_energy_kwh"
FIELD_LAST_ENERGY = "last_energy_kwh"
FIELD_READINGS = "readings"  # integer
FIELD_MAX_POWER = "max_power_kw"
