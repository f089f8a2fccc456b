"""`make demo` (`python -m cxsync.demo`): the main job, end to end on this machine, against the sandbox.

The demo is a list of steps (`STEPS`) over one shared `Demo` state:

1. the warehouse: the embedded SQLite file (`$AIRFLOW_HOME/cxsync.db`), created or reused;
2. the DAGs: the DAG folder parsed as Airflow does, four DAGs per integration;
3. the sandbox: the LivePerson and HelpDesk stand-ins on a free loopback port (fixed seed, modest volumes);
4. Airflow: `airflow db migrate`, the two pools, and the connections of the demo integrations;
5. HelpDesk OAuth: the real connect command (`python -m cxsync.helpdesk_oauth`), with the demo playing the
   browser on the sandbox's authorize page, so the refresh token lands in the connection;
6. the first loads: roster sync and a one-week backfill per integration (`airflow dags test`);
7. a day later on the sandbox clock: incremental loads, retention as a dry run, then retention for real;
   then the analytics DAG of the integration the demo turns `conversation_analytics` on for (the first
   LivePerson one, in a copy of the integrations file under the Airflow home), and a few figures per agent;
8. what landed, per table and integration, and how to query it;
9. QA: the agents matched to the sample staff file, and one QA list built, per evaluator.

Every DAG run is a subprocess whose output goes to `$AIRFLOW_HOME/demo-logs/`; the terminal gets one line
per run. The sandbox stops at the end, on failure and on Ctrl-C alike.

Re-runs reuse the warehouse and replace the connections. The sandbox clock of a re-run starts where the
last demo left the warehouse's watermarks (or one day before now, whichever is later), so a backfill never
writes an older state of a conversation over the newer one a previous incremental run loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from cxsync import registry, settings
from cxsync.config import ConfigError, Integration, IntegrationsConfig, load_integrations
from cxsync.pipeline import INTERACTIONS_STREAM
from cxsync.qa.demo_step import match_and_list

if TYPE_CHECKING:
    from cxsync.sandbox.server import SandboxServer
    from cxsync.warehouse import Warehouse

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("roster_sync", "backfill", "incremental", "retention")
LOG_DIR_NAME = "demo-logs"
SEED = 1
BACKFILL_CONF = {"weeks": 1}
CLOCK_STEP = "1d"
OAUTH_CONN_ID = "sandbox_helpdesk_oauth"
RUN_TIMEOUT_SECONDS = 600.0
OAUTH_TIMEOUT_SECONDS = 60.0
ANALYTICS_AGENTS_SHOWN = 5

# Volumes that make the whole demo take a few minutes: a week of history is a few hundred conversations.
SANDBOX_OPTIONS: dict[str, Any] = {
    "lp_agents": 8,
    "lp_bots": 1,
    "lp_deleted_agents": 2,
    "lp_conversations_per_day": 24,
    "lp_days": 10,
    "lp_messages": "4:14",
    "hd_agents": 8,
    "hd_teams": 3,
    "hd_tickets_per_day": 12,
    "hd_days": 21,
    "hd_messages_mean": 5,
    "hd_archive_idle_days": 4,  # so the week's backfill meets tickets of the archive silo
}
# Request tunables added to every sandbox connection (cxsync.http.tunables): the sandbox has no rate limit,
# so the client-side one may be higher than the production default of 5 requests per second.
CONNECTION_TUNABLES: dict[str, Any] = {"requests_per_second": 25}

# Runs `airflow <args>` with its output in `log`; returns the exit status.
Runner = Callable[[Sequence[str], Path, Mapping[str, str]], int]


class StepFailed(Exception):
    """A step the rest of the demo depends on failed; the message says what and what to do."""


class Interrupted(Exception):
    """SIGTERM: stop like Ctrl-C."""


# ---- running subprocesses ----------------------------------------------------------------------------------


class SubprocessRunner:
    """Runs a command in its own process group with stdout and stderr in a log file; on Ctrl-C, SIGTERM or
    a timeout the whole group is stopped, so no Airflow process outlives the demo."""

    def __init__(self, prefix: Sequence[str] | None = None, timeout: float = RUN_TIMEOUT_SECONDS) -> None:
        self.prefix = list(prefix) if prefix is not None else [sys.executable, "-m", "airflow"]
        self.timeout = timeout

    def __call__(self, args: Sequence[str], log: Path, env: Mapping[str, str]) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as sink:
            process = subprocess.Popen(
                [*self.prefix, *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=PROJECT_ROOT,
                start_new_session=True,
            )
            try:
                return process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                stop_process_group(process)
                sink.write(f"\ncxsync demo: stopped after {self.timeout:g} s without an answer\n")
                return 124
            except BaseException:
                stop_process_group(process)
                raise


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the group the demo started, then SIGKILL if it does not end within 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


# ---- state ---------------------------------------------------------------------------------------------------


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / ".airflow").resolve()


def dags_folder() -> Path:
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or PROJECT_ROOT / "dags")


def warehouse_path() -> Path:
    from cxsync.warehouse.connect import default_sqlite_path

    return default_sqlite_path().resolve()


@dataclass
class Snapshot:
    """An integration's interactions as the warehouse holds them: id -> (status, content hash)."""

    rows: dict[str, tuple[str, str]]


@dataclass
class Demo:
    config: IntegrationsConfig
    dags_folder: Path = field(default_factory=dags_folder)
    home: Path = field(default_factory=airflow_home)
    warehouse_file: Path = field(default_factory=warehouse_path)
    runner: Runner = field(default_factory=SubprocessRunner)
    sandbox_options: dict[str, Any] = field(default_factory=lambda: dict(SANDBOX_OPTIONS))
    seed: int = SEED
    out: Callable[..., None] = print
    warehouse: Warehouse | None = None
    server: SandboxServer | None = None
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)  # the sandbox's, by conn_id
    env: dict[str, str] = field(default_factory=dict)  # of every Airflow subprocess
    integrations: list[Integration] = field(default_factory=list)  # the ones the sandbox serves
    dag_ids: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # integrations with a failed run: their later runs skip
    runs: list[RunResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.home / LOG_DIR_NAME

    def heading(self, text: str) -> None:
        self.out("")
        self.out(f"== {text}")

    def begin(self, text: str) -> None:
        """The start of a line finished by the next `out`: the run's name shows while it runs."""
        self.out(text, end="", flush=True)

    def show(self, path: Path) -> str:
        """A path as short as it can be said: relative to the working directory when under it (symlinks kept:
        `.venv/bin/python` must not turn into the interpreter it links to)."""
        absolute = Path(os.path.abspath(path))
        with contextlib.suppress(ValueError):
            return str(absolute.relative_to(Path.cwd()))
        return str(absolute)


@dataclass
class RunResult:
    integration_id: str
    what: str
    ok: bool
    seconds: float
    log: Path
    summary: str


# ---- steps ---------------------------------------------------------------------------------------------------


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
    from cxsync.sandbox.core import Sandbox
    from cxsync.sandbox.server import SandboxServer

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
        demo.out(f"    {header} {'flagged':>7}")
        for row in figures[:ANALYTICS_AGENTS_SHOWN]:
            demo.out(
                f"    {row['name'][:24]:<24} {row['conversations']:>5} {seconds_text(row['median']):>15} "
                f"{seconds_text(row['p90']):>12} {seconds_text(row['handle']):>10} {row['flagged']:>7}"
            )


def agent_figures(warehouse: Warehouse, integration_id: str) -> list[dict[str, Any]]:
    """Per agent, over the whole period: conversations, median and p90 first response, mean handle time and
    flagged conversations, from cx_interaction_metrics (the same figures cx_agent_daily_metrics holds per day)."""
    import pandas as pd
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    mt, ag = t.interaction_metrics, t.agents
    query = (
        sa.select(
            mt.c.agent_id,
            sa.func.coalesce(ag.c.display_name, ag.c.login_name, mt.c.agent_id).label("name"),
            mt.c.first_response_seconds,
            mt.c.handle_seconds,
            mt.c.flags,
        )
        .select_from(
            mt.outerjoin(ag, sa.and_(ag.c.integration_id == mt.c.integration_id, ag.c.agent_id == mt.c.agent_id))
        )
        .where(mt.c.integration_id == integration_id, mt.c.agent_id.is_not(None))
    )
    with warehouse.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=["agent_id", "name", "first", "handle", "flags"])
    if frame.empty:
        return []
    frame["flagged"] = frame["flags"].ne("[]")
    grouped = frame.astype({"first": "float64", "handle": "float64"}).groupby(["agent_id", "name"])
    figures = pd.DataFrame(
        {
            "conversations": grouped.size(),
            "median": grouped["first"].median(),
            "p90": grouped["first"].quantile(0.9),
            "handle": grouped["handle"].mean(),
            "flagged": grouped["flagged"].sum(),
        }
    ).reset_index()
    figures = figures.sort_values(["conversations", "agent_id"], ascending=[False, True])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in figures.to_dict("records")
    ]


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def with_analytics_on(config: IntegrationsConfig, home: Path) -> IntegrationsConfig:
    """The integrations file with `conversation_analytics: true` for its first LivePerson integration (unless one
    has it already), written under the Airflow home: the demo shows analytics without changing the user's file."""
    import yaml

    if any(i.conversation_analytics for i in config.integrations):
        return config
    document = yaml.safe_load(config.path.read_text(encoding="utf-8"))
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


# ---- one DAG run ---------------------------------------------------------------------------------------------


def run_dag(
    demo: Demo, integration: Integration, kind: str, conf: Mapping[str, Any] | None = None, what: str | None = None
) -> RunResult | None:
    what = what or kind
    demo.begin(f"  {integration.id:<12} {what:<19}")
    if integration.id in demo.failed:
        demo.out("skipped: an earlier run of this integration failed")
        return None
    assert demo.warehouse is not None
    dag_id = settings.dag_id(integration.id, kind)
    args = ["dags", "test", dag_id] + (["-c", json.dumps(dict(conf))] if conf else [])
    log = demo.logs / f"{integration.id}.{what.replace(' ', '_')}.log"
    before = snapshot(demo.warehouse, integration.id)
    started = time.monotonic()
    code = demo.runner(args, log, demo.env)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace") if log.exists() else ""
    ok = code == 0 and dag_run_succeeded(text, dag_id)
    if ok:
        summary, problem = summarize(demo, integration, kind, conf or {}, before)
        demo.out(f"ok {seconds:5.1f} s  {summary}")
        if problem:
            demo.out(f"      {problem}")
            demo.problems.append(f"{integration.id} {what}: {problem}")
    else:
        summary = failure_reason(text) or f"exit status {code}"
        demo.out(f"FAILED after {seconds:.1f} s: {summary}")
        demo.out(f"      log: {demo.show(log)}")
        demo.problems.append(f"{integration.id} {what} failed (log: {demo.show(log)})")
        demo.failed.add(integration.id)
    result = RunResult(integration.id, what, ok, seconds, log, summary)
    demo.runs.append(result)
    return result


def dag_run_succeeded(text: str, dag_id: str) -> bool:
    finished = [line for line in text.splitlines() if f"DagRun Finished: dag_id={dag_id}," in line]
    return bool(finished) and "state=success" in finished[-1]


_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(\w*(?:Error|Exception|Exit)): (.+)$")


def failure_reason(text: str) -> str | None:
    """The last exception message in a run's log, e.g. the plain words of an AirflowFailException."""
    for line in reversed(text.splitlines()):
        match = _ERROR_LINE.match(line.strip())
        if match:
            kind, message = match.groups()
            message = message if kind == "AirflowFailException" else f"{kind}: {message}"
            return message if len(message) <= 400 else message[:397] + "..."
    return None


def summarize(
    demo: Demo, integration: Integration, kind: str, conf: Mapping[str, Any], before: Snapshot
) -> tuple[str, str | None]:
    """One plain phrase about what the run did, read from the warehouse; and a problem, if the run did not
    do what the demo expects of it."""
    assert demo.warehouse is not None
    warehouse = demo.warehouse
    if kind == "roster_sync":
        counts = {label: per.get(integration.id, 0) for label, per in count_rows(warehouse, [integration.id])}
        agents, deleted = counts["agents"], counts["agents deleted"]
        groups, skills = counts["agent groups / teams"], counts["skills"]
        problem = None if agents else "the roster sync loaded no agent"
        return f"{agents} agents ({deleted} deleted), {groups} groups/teams, {skills} skills", problem
    if kind in ("backfill", "incremental"):
        after = snapshot(warehouse, integration.id)
        new, closed, changed = diff(before, after)
        if kind == "backfill":
            return (
                f"{len(after.rows)} interactions in the warehouse ({new} new, {closed + changed} updated)",
                None if after.rows else "the backfill loaded no interaction",
            )
        mark = warehouse.get_watermark(integration.id, INTERACTIONS_STREAM)
        summary = (
            f"{new + closed + changed} changed: {new} new, {closed} closed since the last run, "
            f"{changed} otherwise updated (new messages, reassigned); watermark {clock_text(mark)}"
        )
        problem = None if new or closed else "a sandbox day later the incremental run found nothing new or closed"
        summary, problem = _with_reconciliation(warehouse, integration, summary, problem)
        return summary, problem
    if kind == "analytics":
        figures = agent_figures(warehouse, integration.id)
        computed = sum(row["conversations"] for row in figures)
        return (
            f"metrics of {computed} conversations with an agent, {len(figures)} agents",
            None if figures else "the analytics run computed no agent figures",
        )
    # retention: the run's own row in cx_retention_log
    row = latest_retention(warehouse, integration.id)
    if row is None or bool(row["dry_run"]) != bool(conf.get("dry_run")):
        return "no row in cx_retention_log", "the retention run logged nothing"
    verb = "would delete" if row["dry_run"] else "deleted"
    return (
        f"{verb} {row['interactions_deleted']} interactions, {row['messages_deleted']} messages, "
        f"{row['rejected_deleted']} rejected records that started before {clock_text(row['cutoff'])} "
        f"(retention {retention_text(integration)})"
    ), None


def _with_reconciliation(
    warehouse: Warehouse, integration: Integration, summary: str, problem: str | None
) -> tuple[str, str | None]:
    """The incremental DAG's reconcile task: what its cx_reconciliation rows say."""
    from cxsync.reconcile import last_check

    check = last_check(warehouse, integration.id)
    if check is None:
        return summary, problem
    summary += (
        f"; reconciled {check['days']} days: {check['provider_count']} listed, {check['missing']} missing, "
        f"{check['stale']} stale, {check['repaired']} repaired"
    )
    if check["differing"]:
        problem = problem or f"reconciliation: days still differing {check['differing']}"
    return summary, problem


# ---- reading the warehouse -----------------------------------------------------------------------------------


def snapshot(warehouse: Warehouse, integration_id: str) -> Snapshot:
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    it = t.interactions
    query = sa.select(it.c.interaction_id, it.c.status, it.c.content_hash).where(it.c.integration_id == integration_id)
    with warehouse.engine.connect() as conn:
        return Snapshot({iid: (status, digest) for iid, status, digest in conn.execute(query)})


def diff(before: Snapshot, after: Snapshot) -> tuple[int, int, int]:
    """(new, closed since, otherwise changed) interactions between two snapshots."""
    new = closed = changed = 0
    for iid, (status, digest) in after.rows.items():
        old = before.rows.get(iid)
        if old is None:
            new += 1
        elif old[0] == "open" and status == "closed":
            closed += 1
        elif old[1] != digest:
            changed += 1
    return new, closed, changed


def count_rows(warehouse: Warehouse, integration_ids: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
    """(label, {integration_id: rows}) for every figure of the demo's table."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    def per(table: sa.Table, *where: Any) -> dict[str, int]:
        query = (
            sa.select(table.c.integration_id, sa.func.count())
            .where(table.c.integration_id.in_(integration_ids), *where)
            .group_by(table.c.integration_id)
        )
        with warehouse.engine.connect() as conn:
            return {iid: n for iid, n in conn.execute(query)}

    return [
        ("agents", per(t.agents)),
        ("agents deleted", per(t.agents, t.agents.c.is_deleted.is_(True))),
        ("agent groups / teams", per(t.agent_groups)),
        ("skills", per(t.skills)),
        ("interactions open", per(t.interactions, t.interactions.c.status == "open")),
        ("interactions closed", per(t.interactions, t.interactions.c.status == "closed")),
        ("messages", per(t.messages)),
        ("private messages", per(t.messages, t.messages.c.is_private.is_(True))),
        ("rejected records", per(t.rejected_records)),
        ("retention log rows", per(t.retention_log)),
    ]


def latest_retention(warehouse: Warehouse, integration_id: str) -> Mapping[str, Any] | None:
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    rl = t.retention_log
    query = sa.select(rl).where(rl.c.integration_id == integration_id).order_by(rl.c.id.desc()).limit(1)
    with warehouse.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def last_watermark(demo: Demo) -> datetime | None:
    """The latest incremental watermark of the integrations: the provider time the last demo reached."""
    from cxsync.warehouse import parse_watermark

    if demo.warehouse is None:
        return None
    marks = [demo.warehouse.get_watermark(i.id, INTERACTIONS_STREAM) for i in demo.config.integrations]
    return max((parse_watermark(m) for m in marks if m), default=None)


# ---- small helpers -------------------------------------------------------------------------------------------


def uses_oauth(demo: Demo) -> bool:
    return any(i.conn_id == OAUTH_CONN_ID for i in demo.integrations)


def child_environment(demo: Demo) -> dict[str, str]:
    """The environment of every Airflow subprocess: this Airflow home and DAG folder, the integrations file,
    the sandbox's connections (none inherited from the shell, so a real one never shadows a sandbox one),
    and the warehouse connection pointed at the embedded SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(demo.home),
        AIRFLOW__CORE__DAGS_FOLDER=str(demo.dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        CXSYNC_INTEGRATIONS_FILE=str(demo.config.path.resolve()),
        CXSYNC_WAREHOUSE_PATH=str(demo.warehouse_file),
    )
    warehouse_conn = {"conn_type": "sqlite", "host": str(demo.warehouse_file)}
    env[f"AIRFLOW_CONN_{demo.config.warehouse_conn_id.upper()}"] = json.dumps(warehouse_conn)
    for conn_id, conn in demo.connections.items():
        if conn_id == OAUTH_CONN_ID:
            continue  # lives in the metadata database, where the connect command stores its refresh token
        conn = {**conn, "extra": {**conn.get("extra", {}), **CONNECTION_TUNABLES}}
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def airflow(demo: Demo, args: list[str], log_name: str, doing: str) -> None:
    log = demo.logs / f"{log_name}.log"
    code = demo.runner(args, log, demo.env)
    if code != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        reason = failure_reason(text) or f"exit status {code}"
        raise StepFailed(f"{doing} failed (airflow {' '.join(args[:2])}): {reason}; log: {demo.show(log)}")


def sandbox_admin(demo: Demo, method: str, path: str, body: Any = None) -> Any:
    import requests

    assert demo.server is not None
    answer = requests.request(method, f"{demo.server.base_url}/_sandbox{path}", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def retention_text(integration: Integration) -> str:
    value, unit = integration.retention.value, integration.retention.unit
    return f"{value} {unit[:-1] if value == 1 else unit}"


def clock_text(value: datetime | str | None) -> str:
    if value is None:
        return "(none)"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _read_lines(process: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


class _AuthorizeForm(HTMLParser):
    """An HTML page as a browser needs it here: title, visible text, and the first form's action, hidden
    fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # lower-case value -> (name, value)
        self.labels: dict[str, str] = {}  # lower-case value -> the button's text
        self.words: list[str] = []
        self._in_title = False
        self._button: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self._button = a.get("value", "").lower()
            self.buttons[self._button] = (a["name"], a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif self._button is not None:
            self.labels[self._button] = self.labels.get(self._button, "") + data.strip()
        elif data.strip():
            self.words.append(data.strip())

    @classmethod
    def parse(cls, html_text: str) -> _AuthorizeForm:
        page = cls()
        page.feed(html_text)
        return page


def play_browser(authorize_url: str, decision: str = "approve") -> Iterator[str]:
    """What a person's browser does with the authorize URL: open the page, press the button, follow the
    redirect to the command's loopback listener. Yields a plain sentence per step."""
    import requests

    with requests.Session() as browser:
        page = browser.get(authorize_url, timeout=30)
        page.raise_for_status()
        form = _AuthorizeForm.parse(page.text)
        if form.action is None or decision not in form.buttons:
            raise StepFailed(
                f"the authorize page at {authorize_url.split('?')[0]} has no form with a {decision!r} button"
            )
        labels = [form.labels.get(key) or value for key, (_, value) in form.buttons.items()]
        yield f"opened the authorize URL: a page titled {form.title!r} with the buttons {' and '.join(labels)}"
        name, value = form.buttons[decision]
        label = form.labels.get(decision) or value
        answer = browser.post(
            urljoin(authorize_url, form.action), data={**form.fields, name: value}, timeout=30, allow_redirects=False
        )
        target = answer.headers.get("Location", "")
        if answer.status_code not in (301, 302, 303, 307) or not target:
            raise StepFailed(
                f"pressing {label!r} on the authorize page answered {answer.status_code} without a redirect"
            )
        yield f"pressed {label}; the page sent the browser on to {target.split('?')[0]} with a code and the state"
        landing = browser.get(target, timeout=30)
        words = " ".join(_AuthorizeForm.parse(landing.text).words)
        yield f"the command's loopback listener answered {landing.status_code}: {words!r}"


# ---- main ----------------------------------------------------------------------------------------------------


def run(demo: Demo, steps: Sequence[Callable[[Demo], None]] | None = None) -> int:
    """Run the steps; stop the sandbox whatever happens. 0: every step succeeded; 1: a problem; 130: stopped."""
    started = time.monotonic()
    status = 0
    step: Callable[[Demo], None] | None = None
    try:
        for step in steps if steps is not None else STEPS:
            step(demo)
    except StepFailed as exc:
        demo.problems.append(str(exc))
    except (KeyboardInterrupt, Interrupted):
        demo.out("")
        demo.out("cxsync demo: interrupted; stopping the sandbox")
        status = 130
    except Exception as exc:  # a bug or an environment problem: say where, keep the traceback for the curious
        traceback.print_exc()
        name = step.__name__ if step is not None else "?"
        demo.problems.append(f"step {name} stopped with {exc.__class__.__name__}: {exc}")
    finally:
        if demo.server is not None:
            demo.server.stop()
            demo.server = None
            demo.out("")
            demo.out("sandbox stopped")
        if demo.warehouse is not None:
            demo.warehouse.dispose()
    if status:
        return status
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    if demo.problems:
        demo.out("")
        print(f"cxsync demo FAILED ({len(demo.problems)} problem(s)):", file=sys.stderr)
        for problem in demo.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    runs, integrations = sum(1 for r in demo.runs if r.ok), len(demo.integrations)
    demo.out(
        f"cxsync demo: done in {minutes}m{seconds:02d}s; {runs} DAG run(s) of {integrations} integration(s), "
        "all succeeded"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxsync.demo", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow"))  # never ~/airflow
    try:
        config = load_integrations()
    except ConfigError as exc:
        print(f"cxsync demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(config=with_analytics_on(config, airflow_home()))
    print(f"cxsync demo (AIRFLOW_HOME={demo.show(demo.home)})")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(demo)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
