"""The tenants' kiosk and phone pages: their own entry script (main.py), no operator pages."""
