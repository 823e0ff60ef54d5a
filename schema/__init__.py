"""Relational schema, migrations, engine setup and time-series measurement names."""
