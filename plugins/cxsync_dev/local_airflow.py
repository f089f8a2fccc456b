"""`make airflow` (`python -m cxsync_dev.local_airflow`): the demo's Airflow, in a browser, until Ctrl-C.

After `make demo`, this starts a local Airflow on the demo's state: its Airflow home (`$AIRFLOW_HOME`, the
metadata database with the demo's runs), its SQLite warehouse, the sandbox providers (the same seed, the clock
where the demo left it) and the demo's connections, then the real `api-server`, `scheduler`, `dag-processor`
and `triggerer` with the LocalExecutor, one after the other, each healthy (by Airflow's own health report)
before the next starts. The pools exist (the cxsync plugin creates missing ones when the
api-server starts). It prints the URL and the login, and on Ctrl-C (or SIGTERM) stops every process it started.

The components run with the settings every cxsync deployment shares (`docker/airflow.env`, read by
docker-compose.yaml too), with the LocalExecutor instead of Celery; their logs go to
`$AIRFLOW_HOME/airflow-logs/`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cxsync.airflow_components import COMPONENTS, ComponentDied, Components, free_port, shared_environment
from cxsync.config import ConfigError, load_integrations
from cxsync_dev import demo as demo_steps

LOCAL_COMPONENTS = tuple(name for name in COMPONENTS if name != "airflow-worker")
DEFAULT_PORT = 8080
USERNAME = "admin"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json"
LOG_DIR_NAME = "airflow-logs"
STARTUP_TIMEOUT_SECONDS = 300.0
CONN_PREFIX = "AIRFLOW_CONN_"


def connections_to_metadata_db(state: demo_steps.Demo) -> None:
    """The demo's connections, which its DAG runs read from AIRFLOW_CONN_<ID> variables, into Airflow's
    metadata database instead: Admin > Connections then lists every one (secrets masked, the Test button works,
    an edit takes effect), and no variable shadows them in the components' environment."""
    from cxsync_dev.demo.helpers import airflow

    found = {k[len(CONN_PREFIX) :].lower(): json.loads(v) for k, v in state.env.items() if k.startswith(CONN_PREFIX)}
    if not found:
        return
    with tempfile.TemporaryDirectory(prefix="cxsync-airflow-") as tmp:  # the file holds secrets: 0600, removed
        path = Path(tmp) / "connections.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(found))
        airflow(state, ["connections", "import", "--overwrite", str(path)], "airflow-connections-import",
                "adding the demo's connections to the metadata database")  # fmt: skip
    state.env = {k: v for k, v in state.env.items() if not k.startswith(CONN_PREFIX)}
    state.out(f"connections {', '.join(sorted(found))}: in the metadata database (Admin > Connections, secrets masked)")


SETUP_STEPS = (
    demo_steps.open_warehouse,
    demo_steps.start_sandbox,
    demo_steps.prepare_airflow,
    connections_to_metadata_db,
    demo_steps.connect_helpdesk_oauth,
)


def login_password(home: Path) -> tuple[Path, str]:
    """The simple auth manager's passwords file in the Airflow home: kept across runs, created once."""
    path = home / PASSWORDS_FILE_NAME
    known: dict[str, str] = json.loads(path.read_text() or "{}") if path.exists() else {}
    if not known.get(USERNAME):
        known[USERNAME] = secrets.token_urlsafe(12)
        path.touch(mode=0o600)
        path.write_text(json.dumps(known))
    return path, known[USERNAME]


def port_to_use(wanted: int) -> int:
    """`wanted`, or a free port when it is 0 or taken (another Airflow on 8080, say)."""
    if wanted:
        try:
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            print(f"port {wanted} is taken: using a free one instead")
    return free_port()


def component_environment(state: demo_steps.Demo, port: int, passwords_file: Path) -> dict[str, str]:
    """The demo's environment (home, DAG folder, integrations file, sandbox and warehouse connections), the
    shared deployment settings, and what is particular to one local machine."""
    env = {**state.env, **shared_environment()}
    env.update(
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        # the HelpDesk connect flow builds its redirect URI from it
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USERNAME}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords_file),
        # Free ports rather than Airflow's fixed defaults, which another Airflow on this machine may hold.
        AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST="127.0.0.1",
        AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )
    return env


# What the api-server's /api/v2/monitor/health reports for each component, in the order they start. The
# api-server comes first: the scheduler's tasks talk to it (the execution API), so a scheduler started before
# it listens fails each DAG's first task with "Connection refused".
HEALTH_KEYS = {
    "airflow-apiserver": ("metadatabase", None),
    "airflow-scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "airflow-dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
    "airflow-triggerer": ("triggerer", "latest_triggerer_heartbeat"),
}


def health(url: str) -> dict[str, Any] | None:
    """The api-server's health report, or None while it does not answer."""
    import requests

    try:
        answer = requests.get(f"{url}/api/v2/monitor/health", timeout=5)
    except requests.RequestException:
        return None
    return answer.json() if answer.ok else None


def api_ready(url: str) -> bool:
    return health(url) is not None


def healthy(report: dict[str, Any] | None, name: str, since: datetime) -> bool:
    """Whether `report` shows component `name` healthy, by a heartbeat of this start (`since`): the metadata
    database may still hold a recent heartbeat of the previous `make airflow`'s scheduler."""
    if report is None:
        return False
    key, heartbeat_key = HEALTH_KEYS[name]
    entry = report.get(key) or {}
    if entry.get("status") != "healthy":
        return False
    if heartbeat_key is None:
        return True
    beat = entry.get(heartbeat_key)
    if not beat:
        return False
    at = datetime.fromisoformat(beat)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) >= since


def start_in_order(
    components: Components,
    url: str,
    report: Callable[[str], dict[str, Any] | None] = health,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> None:
    """Each component in turn, the next only once Airflow's health report shows this one healthy."""
    for name in LOCAL_COMPONENTS:
        since = datetime.now(UTC) - timedelta(seconds=1)  # heartbeats are stored by the database's clock
        started = components.start(name)
        print(f"started {name} (pid {started.process.pid}); waiting until it is healthy ...", flush=True)
        components.wait_for(
            f"{name} healthy (its log: {started.log})",
            lambda name=name, since=since: healthy(report(url), name, since),
            timeout,
            interval=1.0,
        )


def serve(state: demo_steps.Demo, port: int) -> int:
    for step in SETUP_STEPS:
        step(state)
    passwords_file, password = login_password(state.home)
    env = component_environment(state, port, passwords_file)
    url = f"http://127.0.0.1:{port}"
    logs = state.home / LOG_DIR_NAME
    state.heading(f"Airflow: {', '.join(LOCAL_COMPONENTS)} (LocalExecutor); logs in {state.show(logs)}/")
    components = Components(env, logs)
    try:
        print("starting them one after the other (half a minute to a few minutes) ...", flush=True)
        start_in_order(components, url)
        print("")
        print(f"Airflow is up at {url}", flush=True)
        print(f"login: {USERNAME} / {password}   (kept in {state.show(passwords_file)})", flush=True)
        print(
            "the demo's runs are under DAGs, tag cxsync; trigger a backfill there (Trigger, weeks 1 to 4). "
            "Ctrl-C stops everything.",
            flush=True,
        )
        while True:
            components.check_running()
            time.sleep(1.0)
    finally:
        # A second Ctrl-C must not cut the stop short and leave components running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if components.started:
            print("\nstopping Airflow ...", flush=True)
        components.stop_all()


def demo_state(config: Any) -> demo_steps.Demo:
    """The demo's state on the integrations the demo ran: its copy of the file with conversation analytics on
    (under the Airflow home), so the analytics DAG and the status page's per-agent figures are here too."""
    return demo_steps.Demo(config=demo_steps.with_analytics_on(config, Path(os.environ["AIRFLOW_HOME"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxsync_dev.local_airflow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the api-server's port (default {DEFAULT_PORT}; 0: a free one)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", str(demo_steps.PROJECT_ROOT / ".airflow"))  # never ~/airflow
    try:
        config = load_integrations()
    except ConfigError as exc:
        print(f"cxsync airflow: {exc}", file=sys.stderr)
        return 2
    state = demo_state(config)
    print(f"cxsync local Airflow (AIRFLOW_HOME={state.show(state.home)})")
    if not state.warehouse_file.exists():
        print("no demo warehouse yet: `make demo` loads the sandbox's data first; starting with an empty one")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise demo_steps.Interrupted()

    previous = signal.signal(signal.SIGTERM, on_sigterm), signal.getsignal(signal.SIGINT)
    status = 0
    try:
        serve(state, port_to_use(args.port))
    except (KeyboardInterrupt, demo_steps.Interrupted):
        pass
    except demo_steps.StepFailed as exc:
        print(f"cxsync airflow: {exc}", file=sys.stderr)
        status = 1
    except (ComponentDied, TimeoutError) as exc:
        print(f"cxsync airflow: {exc}", file=sys.stderr)
        status = 1
    finally:
        if state.server is not None:
            state.server.stop()
        if state.warehouse is not None:
            state.warehouse.dispose()
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    print("stopped: Airflow and the sandbox" if status == 0 else "stopped after a problem (see above)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
