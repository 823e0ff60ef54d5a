"""Meter collection: device profiles, Modbus transports, the poll scheduler, the command executor,
time-series stores and the meter simulator."""
