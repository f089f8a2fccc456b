"""Airflow hooks, one per provider: auth, sessions, retries and rate limits."""
