"""Voltpay: remote prepaid electricity management."""
