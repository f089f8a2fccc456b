"""Conversation analytics: per-interaction metrics and flags, and per-agent daily figures (docs/metrics.md).

Kept light at import (the DAG factory and the config import parts of it): pandas is loaded by the modules
that compute, inside the task.
"""
