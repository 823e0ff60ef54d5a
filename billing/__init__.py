"""Money: tariffs, the ledger, accounts, sales, alarm levels and report queries.

Plain functions over a SQLAlchemy session; no Streamlit, no pymodbus.
"""
