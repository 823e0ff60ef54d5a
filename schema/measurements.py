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
