"""Constants in one place: defaults of the contract, pools, names and tunables."""

from __future__ import annotations

import os

from cxsync import __version__

USER_AGENT = f"cxsync/{__version__} (+https://github.com/cxsync/cxsync)"

# Integrations file (docs/architecture.md, "Integrations file").
INTEGRATIONS_FILE_ENV = "CXSYNC_INTEGRATIONS_FILE"
DEFAULT_INTEGRATIONS_FILE = "include/integrations.yaml"
INTEGRATION_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_INTEGRATION_ID_LENGTH = 64
DEFAULT_BACKFILL_WEEKS = 1
MIN_BACKFILL_WEEKS = 1
MAX_BACKFILL_WEEKS = 4
DEFAULT_SCHEDULE = "0 2 * * *"
# cxsync's own schedule presets (docs/architecture.md, "Freshness mode"), written as `schedule:` in the integrations
# file and turned into the cron line Airflow gets. `@every_15_minutes`: the freshness mode (today's conversations in
# the warehouse within minutes); reconciliation then runs at most every `reconcile_every_hours`, not after each load.
SCHEDULE_PRESETS = {"@every_15_minutes": "*/15 * * * *"}
DEFAULT_RETENTION = {"value": 13, "unit": "months"}
# Reconciliation (integration option `reconcile_hours`): the look-back compared with the provider's lists after
# every incremental load; 0 turns it off. At most the longest backfill.
DEFAULT_RECONCILE_HOURS = 48
MAX_RECONCILE_HOURS = MAX_BACKFILL_WEEKS * 7 * 24
# Reconciliation lists the whole look-back: after a frequent incremental load (every 15 minutes) it runs only when
# its last pass ended at least this many hours ago (integration option `reconcile_every_hours`; 0: every load).
# A nightly schedule reconciles after every load, as before.
DEFAULT_RECONCILE_EVERY_HOURS = 6
RETENTION_UNITS = ("days", "weeks", "months", "quarters", "years")
# Scheduled retention asks for approval before deleting more than this share of an integration's interactions.
RETENTION_APPROVAL_SHARE = 0.10
# An approval nobody answers within this many days counts as "reject": nothing is deleted that day.
RETENTION_APPROVAL_DAYS = 3

# Warehouse (docs/architecture.md, "Warehouse").
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
# Read when the DAGs are parsed. CXSYNC_RETRY_DELAY_SECONDS shortens it for every DAG of a deployment: the
# cluster test tier uses it so a task retried after its worker died runs again within seconds.
RETRY_DELAY_SECONDS = int(os.environ.get("CXSYNC_RETRY_DELAY_SECONDS") or 60)
MAX_RETRY_DELAY_SECONDS = 15 * 60
# Every cxsync task's `execution_timeout` (read when the DAGs are parsed; CXSYNC_TASK_TIMEOUT_SECONDS changes it
# for a deployment). One backfill window, one incremental load or one QA list fits well inside; a task stuck on a
# hostile store or an endless wait ends instead of holding its pool slot for ever. cxsync's own waits (the shared
# rate limit's) end before it (cxsync.task_deadline).
TASK_EXECUTION_TIMEOUT_SECONDS = int(os.environ.get("CXSYNC_TASK_TIMEOUT_SECONDS") or 6 * 3600)


def pool_name(provider: str) -> str:
    return f"cxsync_{provider}"


def dag_id(integration_id: str, kind: str) -> str:
    return f"cxsync_{integration_id}_{kind}"


def roster_asset_uri(integration_id: str) -> str:
    return f"cxsync://{integration_id}/roster"


def interactions_asset_uri(integration_id: str) -> str:
    return f"cxsync://{integration_id}/interactions"


# QA layer: staff, agent matching and QA lists (README.md, "Staff, agent matching and QA lists").
STAFF_FILE_ENV = "CXSYNC_STAFF_FILE"
DEFAULT_STAFF_FILE = "include/staff.csv"
QA_LISTS_FILE_ENV = "CXSYNC_QA_LISTS_FILE"
DEFAULT_QA_LISTS_FILE = "include/qa_lists.yaml"
# Where list CSVs go; default: the directory of the embedded SQLite file (next to the warehouse).
QA_EXPORT_DIR_ENV = "CXSYNC_QA_EXPORT_DIR"
QA_EXPORT_SUBDIR = "qa_lists"
QA_LIST_ID_PATTERN = INTEGRATION_ID_PATTERN
AGENT_MATCHING_DAG_ID = "cxsync_agent_matching"
AGENT_MATCHES_ASSET_URI = "cxsync://staff/agent_matches"
QA_LISTS_ERRORS_DAG_ID = "cxsync_qa_lists_errors"
AGENT_MATCHING_SCHEDULE = "@daily"
QA_LIST_DEFAULT_SCHEDULE = "0 6 * * 1"
QA_PERIOD_UNITS = ("hours", "days", "weeks")
QA_LIST_TYPES = ("random", "sequential", "all")
# How sure each method is; a person's decision (manual) and an id both are certain.
MATCH_CONFIDENCE = {
    "manual": 1.0,
    "external_id": 1.0,
    "bot": 1.0,
    "email": 0.95,
    "name": 0.8,
    "ambiguous": 0.0,
    "unmatched": 0.0,
}
# `cx_rejected_records.integration_id` and stream of bad staff file rows (they belong to no integration).
STAFF_REJECTED_SCOPE = "_staff"
STAFF_REJECTED_STREAM = "staff_file"
# Provider roles that mark an automated agent (LivePerson userTypeId 2 is stored as role `bot`).
BOT_ROLES = ("bot",)


def qa_list_dag_id(list_id: str) -> str:
    return f"cxsync_qa_list_{list_id}"


def qa_list_asset_uri(list_id: str) -> str:
    return f"cxsync://qa_lists/{list_id}"


# Airflow UI plugin (cxsync.ui): pages under /cxsync/.
UI_CHART_DAYS = 28
# Freshness (status page): warn when the loaded-through time is older than this many schedule intervals, and at
# least the interval plus this grace (a nightly schedule warns after 26 hours). Option `freshness_warn_hours` sets
# the threshold of one integration instead.
UI_FRESHNESS_INTERVALS = 2
UI_FRESHNESS_GRACE_SECONDS = 2 * 3600
# The status page warns when more than this share of the last day's provider requests were answered 429.
UI_RATE_LIMITED_SHARE = 0.01
# The status page's totals (cx_status_totals) are recomputed when an integration is loaded or trimmed, and at
# the latest after this long (a load whose transaction committed late is then counted too).
UI_TOTALS_MAX_AGE_SECONDS = 6 * 3600
UI_MAX_AGENT_ROWS = 2000
UI_MAX_LIST_RUNS = 100
# The status page reloads itself this often while a DAG run is under way (its progress, then its outcome).
UI_REFRESH_SECONDS = int(os.environ.get("CXSYNC_UI_REFRESH_SECONDS") or 30)
# Cookies of the "Connect HelpDesk" flow between the redirect to HelpDesk and its callback (path-scoped).
UI_CONNECT_COOKIE_STATE = "cxsync_hd_state"
UI_CONNECT_COOKIE_VERIFIER = "cxsync_hd_verifier"
UI_CONNECT_COOKIE_CONN = "cxsync_hd_conn"  # no longer set: the connection travels in the signed state
UI_CONNECT_COOKIE_DONE = "cxsync_hd_done"  # changes whenever a sign-in ends (the connect page polls it)
UI_CONNECT_MAX_AGE_SECONDS = 600

# Conversation analytics (cxsync.analytics, docs/metrics.md).
# The flags an interaction can carry (cx_interaction_metrics.flags), which QA lists can filter on.
ANALYTICS_FLAGS = (
    "no_agent_reply",
    "long_first_response",
    "long_wait",
    "escalation_request",
    "bot_only",
    "reopened",
    "many_agents",
)
# Bump when a metric's definition changes: the next analytics run recomputes every row computed before.
# 2: a survey's messages left out of the scored transcript; CSAT and MCS per interaction and agent day.
ANALYTICS_METRICS_VERSION = 2
# The dialog QA scores (`cx_messages.dialog_type`): other dialogs, such as a LivePerson post-conversation survey
# (`post_survey`), are kept but left out of analytics and QA-list message counts.
SCORED_DIALOG_TYPE = "main"
# Interactions whose messages are read and computed at once: bounds the run's memory whatever the total.
ANALYTICS_BATCH_INTERACTIONS = 5000
# Agent days recomputed per transaction (a week: one query and one group-by for a typical incremental run).
ANALYTICS_DAYS_PER_TRANSACTION = 7
# The thresholds of the flags are per provider (`ProviderSpec.analytics_thresholds`): chats are answered in
# minutes, tickets in hours. Integration options of the same names override them (cxsync.analytics.options).
