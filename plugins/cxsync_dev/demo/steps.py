"""The demo's steps, in order (`STEPS`): each takes the shared `Demo` and prints one short block."""

from __future__ import annotations

import json
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cxsync import registry, settings
from cxsync.config import IntegrationsConfig, load_integrations
from cxsync_dev.demo.browser import play_browser
from cxsync_dev.demo.helpers import _read_lines, airflow, child_environment, clock_text, sandbox_admin, uses_oauth
from cxsync_dev.demo.qa_step import match_and_list
from cxsync_dev.demo.reads import agent_figures, count_rows, last_watermark, redaction_totals
from cxsync_dev.demo.runs import run_dag
from cxsync_dev.demo.state import (
    ANALYTICS_AGENTS_SHOWN,
    BACKFILL_CONF,
    CLOCK_STEP,
    CONNECTION_TUNABLES,
    KINDS,
    OAUTH_CONN_ID,
    OAUTH_TIMEOUT_SECONDS,
    PROJECT_ROOT,
    Demo,
    StepFailed,
    stop_process_group,
)

if TYPE_CHECKING:
    pass


def open_warehouse(demo: Demo) -> None:
    """The embedded SQLite file, whatever warehouse connection is configured: the demo loads sandbox data
    and must never write it into a real warehouse."""
    from cxsync.warehouse import Warehouse

    demo.heading("Warehouse")
    existed = demo.warehouse_file.exists()
    demo.warehouse_file.parent.mkdir(parents=True, exist_ok=True)
    warehouse = Warehouse.from_url(f"sqlite:///{demo.warehouse_file}")
    version = warehouse.ensure_schema()
    demo.warehouse = warehouse
    rows = warehouse.table_counts()["cx_interactions"]
    state = f"reused, {rows} interaction(s) already there" if existed else "created"
    demo.out(f"SQLite file {demo.show(demo.warehouse_file)} ({state}; schema version {version})")


def show_dags(demo: Demo) -> None:
    """Parse the DAG folder as Airflow does and list the DAGs of every integration."""
    from airflow.dag_processing.dagbag import DagBag

    demo.heading(f"DAGs from {demo.show(demo.config.path)}")
    bag = DagBag(dag_folder=str(demo.dags_folder))
    demo.dag_ids = sorted(bag.dag_ids)
    problems: list[str] = []
    for integration in demo.config.integrations:
        provider = registry.PROVIDERS[integration.provider].display_name
        missing = [k for k in KINDS if settings.dag_id(integration.id, k) not in bag.dag_ids]
        mark = f"   <- MISSING: {', '.join(missing)}" if missing else ""
        demo.out(
            f"{integration.id:<12} {provider:<10} connection {integration.conn_id!r:<20} "
            f"{settings.dag_id(integration.id, '{' + ','.join(KINDS) + '}')}{mark}"
        )
        problems += [f"DAG {settings.dag_id(integration.id, k)} is missing" for k in missing]
        try:
            registry.source_class(integration.provider)
        except Exception as exc:  # a source that does not import cannot run any DAG of its provider
            spec = registry.PROVIDERS[integration.provider]
            demo.out(f"    the {provider} source {spec.source} does not import: {exc.__class__.__name__}: {exc}")
            problems.append(f"the {provider} source does not import")
    for error in demo.config.errors:
        demo.out(f"integrations file problem: {error}")
        problems.append(error)
    for path, error in bag.import_errors.items():
        demo.out(f"import error in {path}: {error}")
        problems.append(f"import error in {path}")
    if problems:
        demo.problems += problems
        raise StepFailed(f"fix {demo.show(demo.config.path)} or the DAG folder first (see above)")


def start_sandbox(demo: Demo) -> None:
    """The sandbox providers on a free loopback port, and the integrations they can serve."""
    from cxsync_dev.sandbox.core import Sandbox
    from cxsync_dev.sandbox.server import SandboxServer

    demo.heading("Sandbox providers")
    genesis = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    sandbox = Sandbox(seed=demo.seed, now=genesis, options=demo.sandbox_options)
    resumed = last_watermark(demo)
    if resumed is not None and resumed > genesis:
        sandbox.clock.set(resumed)
    demo.server = SandboxServer(sandbox).start()
    demo.connections = {cid: json.loads(text) for cid, text in demo.server.connection_uris().items()}
    since = "where the last demo left off" if resumed is not None and resumed > genesis else "one day before now"
    o = demo.sandbox_options
    demo.out(
        f"LivePerson and HelpDesk stand-ins on {demo.server.base_url} (seed {demo.seed}; admin API "
        f"{demo.server.base_url}/_sandbox)"
    )
    demo.out(
        f"clock {clock_text(sandbox.clock.now())} ({since}); about {o.get('lp_conversations_per_day')} "
        f"LivePerson conversations and {o.get('hd_tickets_per_day')} HelpDesk tickets a day"
    )

    for integration in demo.config.integrations:
        if integration.conn_id in demo.connections:
            demo.integrations.append(integration)
        else:
            demo.out(
                f"skipped {integration.id}: its connection {integration.conn_id!r} is not a sandbox "
                f"connection ({', '.join(sorted(demo.connections))})"
            )
    if not demo.integrations:
        raise StepFailed(f"no integration in {demo.show(demo.config.path)} uses a sandbox connection")
    demo.out("demo integrations: " + ", ".join(f"{i.id} ({i.conn_id})" for i in demo.integrations))


def prepare_airflow(demo: Demo) -> None:
    """Airflow's metadata database, the pools, and the connections the DAG runs use."""
    demo.heading(f"Airflow in {demo.show(demo.home)}")
    demo.logs.mkdir(parents=True, exist_ok=True)
    demo.env = child_environment(demo)

    airflow(demo, ["db", "migrate"], "airflow-db-migrate", "migrating the metadata database")
    demo.out(f"metadata database migrated (airflow db migrate; log {demo.show(demo.logs / 'airflow-db-migrate.log')})")

    pools = {
        spec.pool: {
            "slots": spec.pool_slots,
            "description": f"cxsync: concurrent {spec.display_name} API tasks",
            "include_deferred": False,
        }
        for spec in registry.PROVIDERS.values()
    }
    pools_file = demo.logs / "pools.json"
    pools_file.write_text(json.dumps(pools, indent=2))
    airflow(demo, ["pools", "import", str(pools_file)], "airflow-pools", "creating the pools")
    demo.out("pools: " + ", ".join(f"{name} ({p['slots']} slots)" for name, p in pools.items()))

    in_env = sorted(cid for cid in demo.connections if cid != OAUTH_CONN_ID)
    demo.out(
        f"connections {', '.join(in_env)}: AIRFLOW_CONN_<ID> environment variables of the DAG runs "
        f"(with {json.dumps(CONNECTION_TUNABLES)})"
    )
    demo.out(f"connection {demo.config.warehouse_conn_id!r}: the SQLite file above, for the DAG runs")
    if uses_oauth(demo):
        conn = {k: v for k, v in demo.connections[OAUTH_CONN_ID].items()}
        conn["extra"] = {k: v for k, v in conn["extra"].items() if k != "refresh_token"} | CONNECTION_TUNABLES
        with tempfile.TemporaryDirectory(prefix="cxsync-demo-") as tmp:  # the file holds the client secret
            path = Path(tmp) / "connection.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps({OAUTH_CONN_ID: conn}))
            airflow(
                demo,
                ["connections", "import", "--overwrite", str(path)],
                "airflow-connections",
                f"adding connection {OAUTH_CONN_ID}",
            )
        demo.out(
            f"connection {OAUTH_CONN_ID!r}: added to the metadata database (replacing any earlier one), "
            "auth_type oauth2, no refresh token yet"
        )


def connect_helpdesk_oauth(demo: Demo) -> None:
    """The product's OAuth connect command, with the demo as the person at the browser."""
    if not uses_oauth(demo):
        return
    demo.heading(f"HelpDesk OAuth: connecting {OAUTH_CONN_ID!r} as you would with a real account")
    command = [
        "-m",
        "cxsync.helpdesk_oauth",
        "--conn-id",
        OAUTH_CONN_ID,
        "--port",
        "0",
        "--no-browser",
        "--timeout",
        f"{OAUTH_TIMEOUT_SECONDS:g}",
    ]
    demo.out(f"$ python {shlex.join(command)}")
    log = demo.logs / "helpdesk-oauth-connect.log"
    process = subprocess.Popen(
        [sys.executable, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**demo.env, "PYTHONUNBUFFERED": "1"},
        cwd=PROJECT_ROOT,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    printed: list[str] = []

    def echo_until(stop: Callable[[str], bool], deadline: float) -> str | None:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            shown = "(connection JSON with secrets, not shown)" if "refresh_token" in line else line
            printed.append(shown)
            demo.out(f"  | {shown}")
            if stop(line):
                return line

    try:
        url = echo_until(lambda line: line.startswith("http"), time.monotonic() + OAUTH_TIMEOUT_SECONDS)
        if url is None:
            raise StepFailed("the connect command printed no authorize URL (see its output above)")
        echo_until(lambda line: line.startswith("Waiting"), time.monotonic() + 3)  # its last line before waiting
        demo.out("the demo plays the browser:")
        for step in play_browser(url.strip()):
            demo.out(f"  - {step}")
        echo_until(lambda line: False, time.monotonic() + OAUTH_TIMEOUT_SECONDS)
        code = process.wait(OAUTH_TIMEOUT_SECONDS)
    except BaseException:
        stop_process_group(process)
        raise
    finally:
        log.write_text("\n".join(printed) + "\n")
    if code != 0:
        raise StepFailed(
            f"the HelpDesk OAuth connect command failed (exit status {code}); its output is above "
            f"and in {demo.show(log)}"
        )
    demo.out(f"connection {OAUTH_CONN_ID!r} now holds a refresh token (in the metadata database; not shown)")


def first_loads(demo: Demo) -> None:
    demo.heading("First loads: roster sync and a one-week backfill per integration (airflow dags test)")
    demo.out(f"each run takes 10 to 30 s; logs in {demo.show(demo.logs)}/")
    for integration in demo.integrations:
        run_dag(demo, integration, "roster_sync")
        run_dag(demo, integration, "backfill", BACKFILL_CONF)


def advance_clock(demo: Demo) -> None:
    assert demo.server is not None
    demo.heading("A day later")
    before = sandbox_admin(demo, "GET", "/clock")["now"]
    after = sandbox_admin(demo, "POST", "/clock", {"advance": CLOCK_STEP})["now"]
    demo.out(
        f"sandbox clock {clock_text(before)} -> {clock_text(after)} (POST /_sandbox/clock "
        f'{{"advance": "{CLOCK_STEP}"}}): conversations closed and new ones arrived'
    )


def later_loads(demo: Demo) -> None:
    demo.heading("Incremental loads, then retention (a dry run first)")
    for integration in demo.integrations:
        run_dag(demo, integration, "incremental")
        run_dag(demo, integration, "retention", {"dry_run": True}, what="retention dry run")
        run_dag(demo, integration, "retention", {"dry_run": False})


def show_counts(demo: Demo) -> None:
    """What landed, per table and integration."""
    demo.heading("What the warehouse holds")
    assert demo.warehouse is not None
    ids = [i.id for i in demo.config.integrations]
    rows = count_rows(demo.warehouse, ids)
    width = max(len(label) for label, _ in rows)
    col = max(10, *(len(i) for i in ids))
    demo.out(f"{'':<{width}}  {'total':>{col}}" + "".join(f"  {i:>{col}}" for i in ids))
    for label, per in rows:
        demo.out(f"{label:<{width}}  {sum(per.values()):>{col}}" + "".join(f"  {per.get(i, 0):>{col}}" for i in ids))
    redacted = redaction_totals(demo.warehouse, ids)
    for integration in demo.config.integrations:
        policy = integration.pii_redaction
        if policy is None:
            continue
        figures = redacted.get(integration.id)
        if figures is None:
            demo.out(f"PII redaction of {integration.id} ({policy.describe()}): nothing loaded yet")
            continue
        replaced = ", ".join(f"{n:,} <{entity}>" for entity, n in sorted(figures["by_entity"].items())) or "nothing"
        demo.out(
            f"PII redaction of {integration.id}: {figures['scanned']:,} messages scanned, {figures['redacted']:,} "
            f"with PII; replaced {replaced} (raw JSON and subjects included)"
        )


def show_where(demo: Demo) -> None:
    demo.heading("Where the data is")
    db = demo.show(demo.warehouse_file)
    query = "SELECT integration_id, status, COUNT(*) FROM cx_interactions GROUP BY 1, 2"
    python = demo.show(Path(sys.executable))
    demo.out(f"the warehouse is the SQLite file {db}; query it with")
    demo.out(f'  sqlite3 {db} "{query}"')
    demo.out(f"  {python} -c \"import sqlite3; print(sqlite3.connect('{db}').execute('{query}').fetchall())\"")
    demo.out(
        f"the log of every run is in {demo.show(demo.logs)}/; the DAGs run the same way in the Airflow UI "
        "(airflow standalone) once the connections exist there (README.md, docs/sandbox.md)"
    )


def analytics(demo: Demo) -> None:
    """The analytics DAG of each integration with `conversation_analytics: true`, then a few figures per agent."""
    chosen = [i for i in demo.integrations if i.conversation_analytics]
    if not chosen:
        return
    demo.heading("Conversation analytics (docs/metrics.md)")
    for integration in chosen:
        if run_dag(demo, integration, "analytics") is None or integration.id in demo.failed:
            continue
        assert demo.warehouse is not None
        figures = agent_figures(demo.warehouse, integration.id)
        header = f"{'agent':<24} {'convs':>5} {'median 1st resp':>15} {'p90 1st resp':>12} {'avg handle':>10}"
        demo.out(f"    {header} {'flagged':>7} {'CSAT':>5} {'rated':>5} {'MCS':>5}")
        for row in figures[:ANALYTICS_AGENTS_SHOWN]:
            demo.out(
                f"    {row['name'][:24]:<24} {row['conversations']:>5} {seconds_text(row['median']):>15} "
                f"{seconds_text(row['p90']):>12} {seconds_text(row['handle']):>10} {row['flagged']:>7} "
                f"{score_text(row['csat'], 2):>5} {row['rated']:>5} {score_text(row['mcs'], 1):>5}"
            )


def score_text(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def with_analytics_on(config: IntegrationsConfig, home: Path) -> IntegrationsConfig:
    """The integrations file with `conversation_analytics: true` for its first LivePerson integration (unless one
    has it already), written under the Airflow home: the demo shows analytics without changing the user's file."""
    import yaml

    from cxsync import safe_yaml

    if any(i.conversation_analytics for i in config.integrations):
        return config
    document = safe_yaml.load_file(config.path)
    for entry in document.get("integrations") or []:
        if isinstance(entry, dict) and entry.get("provider") == "liveperson":
            entry["conversation_analytics"] = True
            break
    else:
        return config
    home.mkdir(parents=True, exist_ok=True)
    path = home / "demo-integrations.yaml"
    path.write_text(
        f"# {config.path} with conversation analytics on for one integration: written by the demo\n"
        + yaml.safe_dump(document, sort_keys=False),
        encoding="utf-8",
    )
    return load_integrations(path)


STEPS: list[Callable[[Demo], None]] = [
    open_warehouse,
    show_dags,
    start_sandbox,
    prepare_airflow,
    connect_helpdesk_oauth,
    first_loads,
    advance_clock,
    later_loads,
    analytics,
    show_counts,
    show_where,
    match_and_list,
]
