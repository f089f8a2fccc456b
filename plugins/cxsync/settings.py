"""Constants in one place: defaults of the contract, pools, names and tunables."""

from __future__ import annotations

from cxsync import __version__

USER_AGENT = f"cxsync/{__version__} (+https://github.com/cxsync/cxsync)"

PROVIDERS = ("liveperson", "helpdesk")

# Integrations file (DESIGN.md, "Integrations file").
INTEGRATIONS_FILE_ENV = "CXSYNC_INTEGRATIONS_FILE"
DEFAULT_INTEGRATIONS_FILE = "include/integrations.yaml"
INTEGRATION_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_INTEGRATION_ID_LENGTH = 64
DEFAULT_BACKFILL_WEEKS = 1
MIN_BACKFILL_WEEKS = 1
MAX_BACKFILL_WEEKS = 4
DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_RETENTION = {"value": 13, "unit": "months"}
RETENTION_UNITS = ("days", "weeks", "months", "quarters", "years")

# Warehouse (DESIGN.md, "Warehouse tables").
DEFAULT_WAREHOUSE_CONN_ID = "cxsync_warehouse"
WAREHOUSE_PATH_ENV = "CXSYNC_WAREHOUSE_PATH"
WAREHOUSE_FILE_NAME = "cxsync.db"
UPSERT_BATCH_ROWS = 500
RETENTION_DELETE_BATCH = 5000
# Pages fetched and mapped ahead (in a background thread) while the previous page is written; 0: none.
READ_AHEAD_PAGES = 1
# Move the objects that exist before a load out of the cyclic GC's reach (pipeline.spare_the_heap).
GC_FREEZE_BEFORE_LOAD = True

# DAGs.
DAG_TAG = "cxsync"
TASK_RETRIES = 3
RETRY_DELAY_SECONDS = 60
MAX_RETRY_DELAY_SECONDS = 15 * 60
POOL_SLOTS = {"liveperson": 4, "helpdesk": 2}


def pool_name(provider: str) -> str:
    return f"cxsync_{provider}"


def dag_id(integration_id: str, kind: str) -> str:
    return f"cxsync_{integration_id}_{kind}"


def roster_asset_uri(integration_id: str) -> str:
    return f"cxsync://{integration_id}/roster"


def interactions_asset_uri(integration_id: str) -> str:
    return f"cxsync://{integration_id}/interactions"


# Conversation analytics (cxsync.analytics, docs/metrics.md).
# Bump when a metric's definition changes: the next analytics run recomputes every row computed before.
ANALYTICS_METRICS_VERSION = 1
# Interactions whose messages are read and computed at once: bounds the run's memory whatever the total.
ANALYTICS_BATCH_INTERACTIONS = 5000
# Agent days recomputed per transaction (a week: one query and one group-by for a typical incremental run).
ANALYTICS_DAYS_PER_TRANSACTION = 7
# Thresholds of the flags, per provider: chats are answered in minutes, tickets in hours. Integration
# options of the same names override them.
ANALYTICS_DEFAULT_THRESHOLDS = {
    "liveperson": {"long_first_response_seconds": 120, "long_wait_seconds": 300, "many_agents": 3},
    "helpdesk": {"long_first_response_seconds": 8 * 3600, "long_wait_seconds": 24 * 3600, "many_agents": 3},
}
