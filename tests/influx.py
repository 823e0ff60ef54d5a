"""A real influxd (Debian's InfluxDB 1.6.7) in a temporary directory, for integration tests.

The harness lives in voltpay.devservers, shared with `make bench`; this module keeps the old
import path working.
"""

from __future__ import annotations

from voltpay.devservers import INFLUXD, InfluxServer, influx_server, running_influxd

__all__ = ["INFLUXD", "InfluxServer", "influx_server", "running_influxd"]
