"""The UI's integrations status page on a big warehouse: 50 integrations, 1,000,000 interactions on PostgreSQL.

Rows are bulk-loaded with COPY into a scratch database (interactions over a year, agents, rejected records,
watermarks, retention log), and Airflow's metadata database (a fresh SQLite one in a temporary Airflow home)
gets ten runs of every DAG of every integration. A child process with that Airflow home then calls the page's
own handler (`cxsync.ui.app.status_page`: every query and the template) and the JSON API's collection, timing
each call; the sign-in check in front of them is Airflow's and not part of the measure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import yaml

from bench._support import ROOT, pg_available, pg_database, scaled, verdict

TITLE = "UI status page: 50 integrations, 1,000,000 interactions on PostgreSQL"

INTEGRATIONS = scaled(50, 2)
INTERACTIONS = scaled(1_000_000, 2_000)
DAYS = 365
RUNS_PER_DAG = 10
CALLS = 5
TARGET_SECONDS = 1.0


def load_rows(url: str, ids: list[str]) -> None:
    from cxsync.warehouse import Warehouse

    warehouse = Warehouse.from_url(url)
    warehouse.ensure_schema()
    warehouse.dispose()
    per = INTERACTIONS // len(ids)
    sql = f"""
    INSERT INTO cx_interactions (integration_id, interaction_id, provider, channel, status, provider_status,
        started_at, ended_at, updated_at, agent_id, customer_id, message_count, loaded_at, content_hash, raw)
    SELECT i.id, 'c-' || n, 'liveperson', 'messaging', CASE WHEN n % 10 = 0 THEN 'open' ELSE 'closed' END,
        'CLOSE', now() - (n % {DAYS}) * interval '1 day' - (n % 1440) * interval '1 minute',
        now() - (n % {DAYS}) * interval '1 day', now() - (n % {DAYS}) * interval '1 day',
        'agent-' || (n % 40), 'cust-' || n, 5 + n % 20, now(), repeat('0', 64), '{{"info":{{}}}}'
    FROM unnest(:ids) AS i(id), generate_series(1, {per}) AS n;
    INSERT INTO cx_agents (integration_id, agent_id, display_name, email, is_deleted, first_seen_at, last_synced_at)
    SELECT i.id, 'agent-' || n, 'Agent ' || n, 'agent' || n || '@example.com', false, now(), now()
    FROM unnest(:ids) AS i(id), generate_series(0, 39) AS n;
    INSERT INTO cx_rejected_records (integration_id, stream, record_key, reason, raw, rejected_at, record_hash)
    SELECT i.id, 'interactions', 'bad-' || n, 'no start time', '{{}}', now() - n * interval '1 hour', md5(i.id || n)
    FROM unnest(:ids) AS i(id), generate_series(1, 200) AS n;
    INSERT INTO cx_sync_state (integration_id, stream, watermark, updated_at)
    SELECT i.id, 'interactions', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), now()
    FROM unnest(:ids) AS i(id);
    INSERT INTO cx_retention_log (integration_id, run_at, cutoff, dry_run, interactions_deleted, messages_deleted,
        rejected_deleted)
    SELECT i.id, now() - n * interval '1 day', now() - interval '90 days', false, 10, 100, 0
    FROM unnest(:ids) AS i(id), generate_series(1, 30) AS n;
    """
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(sa.text(statement), {"ids": ids})
    engine.dispose()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # the visibility map that index-only scans need, as autovacuum leaves it
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def run() -> str:
    if not pg_available():
        return "PostgreSQL was not reachable at 127.0.0.1:5432: the status page was not measured."
    ids = [f"int_{n:03d}" for n in range(INTEGRATIONS)]
    with pg_database() as url, tempfile.TemporaryDirectory(prefix="cxsync-bench-ui-") as tmp:
        started = time.perf_counter()
        load_rows(url, ids)
        load_seconds = time.perf_counter() - started
        home = Path(tmp)
        integrations = home / "integrations.yaml"
        integrations.write_text(
            yaml.safe_dump(
                {
                    "integrations": [
                        {"id": i, "provider": "liveperson", "label": f"Brand {i}", "conn_id": f"lp_{i}"} for i in ids
                    ]
                }
            )
        )
        pg = sa.make_url(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        env.update(
            AIRFLOW_HOME=str(home / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            CXSYNC_INTEGRATIONS_FILE=str(integrations),
            AIRFLOW_CONN_CXSYNC_WAREHOUSE=json.dumps(
                {
                    "conn_type": "postgres",
                    "host": pg.host,
                    "port": pg.port,
                    "login": pg.username,
                    "schema": pg.database,
                }
            ),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), env.get("PYTHONPATH")])),
        )
        for i in ids[: len(ids) // 2]:  # half the connections exist: the other half make warnings
            env[f"AIRFLOW_CONN_LP_{i.upper()}"] = json.dumps({"conn_type": "liveperson", "extra": {"account_id": "1"}})
        done = subprocess.run(
            [sys.executable, "-m", "bench._status_page_child", str(RUNS_PER_DAG), str(CALLS)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"status page child failed: {done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    page = sorted(result["page_seconds"])
    api = sorted(result["api_seconds"])
    median, worst = page[len(page) // 2], page[-1]
    cpu = sorted(result["page_cpu_seconds"])[CALLS // 2]
    return f"""
Target: the status page of a 50-integration warehouse holding 1,000,000 interactions renders in under
{TARGET_SECONDS:.0f} s. No request counts the tables: interaction totals come from `cx_status_totals`, recounted for
an integration only after it was loaded or trimmed (one index lookup each tells), and the chart's days from
`cx_status_days`, counted at the same time; the other tables read are small.

| measure | value |
|---|---|
| integrations / interactions / DAG runs in Airflow | {len(ids)} / {INTERACTIONS:,} / {result["dag_runs"]:,} |
| rows loaded (INSERT ... SELECT, then VACUUM ANALYZE) | {load_seconds:.0f} s |
| first page after start (counts every integration once, compiles the template) | {result["first_seconds"]:.2f} s |
| page after one integration was loaded (it alone is recounted) | {result["after_load_seconds"]:.2f} s |
| page, median of {CALLS} | **{median:.2f} s** {verdict(median < TARGET_SECONDS)} |
| page, slowest of {CALLS} | {worst:.2f} s {verdict(worst < TARGET_SECONDS)} |
| page, CPU time of the process (median; the rest is waiting for a CPU and for PostgreSQL) | {cpu:.2f} s |
| `/cxsync/api/status` collection, median | {api[len(api) // 2]:.2f} s |
| page size | {result["page_bytes"]:,} bytes, {result["warnings"]} warnings |
| plan of the "newest load" lookup per integration | {result["plan"]} |
"""
