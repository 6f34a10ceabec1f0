"""Optuna tuning of any config value; studies live in a storage the dashboard reads."""
