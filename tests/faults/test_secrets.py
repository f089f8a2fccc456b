"""No secret ever shows: every DAG of a LivePerson and a HelpDesk integration, with both auth types each, runs
through `airflow dags test` against a sandbox that accepts recognisable credentials (`SECRET-lp-app-secret-123`
and the like, see support/secrets.py); two roster runs with a wrong secret fail, in plain words. Then none of
the secrets, nor any access token the providers issued during the runs, appears in:
- what the runs printed (the task logs `airflow dags test` writes to the console, errors included),
- any file under the Airflow home (configuration, logs),
- any table of Airflow's metadata database (XComs, rendered fields, task instances and the rest),
- any table of the warehouse.

The 18 DAG runs go through Airflow's own CLI entry point, several in one process (`dag_batch.py`: the Airflow
imports and its in-process execution API are built once), with the secret maskers emptied before each run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer
from e2e.conftest import FAST_EXTRAS, ROOT, AirflowEnv
from faults.dag_batch import MARK
from support.providers import OPTIONS, SandboxAdmin
from support.secrets import LP_CLIENT_ID, Credentials, issued_token_prefixes, use_recognisable_credentials
from support.warehouse import text_values

pytestmark = pytest.mark.slow

INTEGRATIONS = {
    "lp_sec_oauth1": ("liveperson", "lp_secret_oauth1"),
    "lp_sec_oauth2": ("liveperson", "lp_secret_oauth2"),
    "hd_sec_token": ("helpdesk", "hd_secret_token"),
    "hd_sec_oauth": ("helpdesk", "hd_secret_oauth"),
}
WRONG = {"lp_sec_wrong": ("liveperson", "lp_secret_wrong"), "hd_sec_wrong": ("helpdesk", "hd_secret_wrong")}
DAG_CONF = {"roster_sync": None, "backfill": {"weeks": 1}, "incremental": None, "retention": {"dry_run": False}}


@dataclass
class Run:
    dag_id: str
    returncode: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and "state=success" in self.output and "state=failed" not in self.output


@dataclass
class SecretsRun:
    env: AirflowEnv
    output: str
    runs: dict[str, Run]
    credentials: Credentials
    secrets: dict[str, str] = field(default_factory=dict)

    def leaks(self, text: str) -> list[str]:
        return sorted(name for name, value in self.secrets.items() if value in text)


def failure_message(run: Run) -> str:
    """The message of the `AirflowFailException` a failed run shows, with its continuation lines (hints)."""
    lines = run.output.splitlines()
    starts = [n for n, line in enumerate(lines) if "AirflowFailException:" in line]
    assert starts, run.output[-4000:]
    message = [lines[starts[-1]].split("AirflowFailException:", 1)[1].strip()]
    for line in lines[starts[-1] + 1 :]:
        if not line.strip() or re.match(r"\d{4}-\d\d-\d\dT|\s*File |Traceback|\S+(Error|Exception)\b", line):
            break
        message.append(line.strip())
    return " ".join(message)


def split_runs(output: str) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(MARK) and line.endswith(" begin"):
            current = []
        elif line.startswith(MARK) and " end rc=" in line:
            dag_id = line[len(MARK) :].split()[0]
            runs[dag_id] = Run(dag_id, int(line.rsplit("rc=", 1)[1]), "\n".join(current or []))
            current = None
        elif current is not None:
            current.append(line)
    return runs


@pytest.fixture(scope="module")
def secrets_run(tmp_path_factory) -> Iterator[SecretsRun]:
    sandbox = Sandbox(seed=29, now=None, options=OPTIONS)
    with SandboxServer(sandbox) as server:
        use_recognisable_credentials(sandbox)
        env = AirflowEnv(tmp_path_factory.mktemp("secrets"), server)
        world = sandbox.helpdesk.world
        credentials = Credentials(
            common={"host": server.host, "schema": "http", "port": server.port},
            extra=dict(FAST_EXTRAS),
            lp_account_id=sandbox.liveperson.account_id,
            hd_account_id=world.account_id,
            hd_client_id=world.client_id,
            hd_accounts_url=server.base_url,
            hd_refresh_token=SandboxAdmin(server).helpdesk_refresh_token(),
        )
        for conn_id, conn in credentials.connections().items():
            env.set_connection(conn_id, conn)
        env.add_integrations(
            *(
                {
                    "id": iid,
                    "provider": provider,
                    "label": iid,
                    "conn_id": conn_id,
                    "retention": {"value": 3, "unit": "days"},
                }
                for iid, (provider, conn_id) in {**INTEGRATIONS, **WRONG}.items()
            )
        )
        plan = [
            {"dag_id": f"cxsync_{iid}_{kind}", "conf": conf} for iid in INTEGRATIONS for kind, conf in DAG_CONF.items()
        ]
        plan += [{"dag_id": f"cxsync_{iid}_roster_sync", "conf": None} for iid in WRONG]
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("dag_batch.py")), json.dumps(plan)],
            env=env.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )
        runs = split_runs(done.stdout)
        assert done.returncode == 0 and len(runs) == len(plan), done.stdout[-5000:]
        yield SecretsRun(
            env, done.stdout, runs, credentials, {**credentials.values(), **issued_token_prefixes(sandbox)}
        )


def test_every_dag_of_both_providers_and_auth_types_ran_and_wrong_secrets_failed_in_plain_words(secrets_run):
    for iid in INTEGRATIONS:
        for kind in DAG_CONF:
            run = secrets_run.runs[f"cxsync_{iid}_{kind}"]
            assert run.succeeded, run.output[-4000:]
    lp = secrets_run.runs["cxsync_lp_sec_wrong_roster_sync"]
    hd = secrets_run.runs["cxsync_hd_sec_wrong_roster_sync"]
    for run in (lp, hd):
        assert not run.succeeded and "AirflowFailException" in run.output, run.output[-4000:]
        assert "up_for_retry" not in run.output.lower()  # bad credentials fail at once
    # The messages a data engineer reads say what to check, and never show the secret.
    shown = {run.dag_id: failure_message(run) for run in (lp, hd)}
    print("\n".join(f"{dag_id}: {message}" for dag_id, message in shown.items()))
    assert "lp_secret_wrong" in shown[lp.dag_id] and "HTTP 401" in shown[lp.dag_id]
    assert "check the app secret and token secret" in shown[lp.dag_id]
    assert "HTTP 401" in shown[hd.dag_id] and "HelpDesk expects HTTP Basic auth" in shown[hd.dag_id]
    with secrets_run.env.warehouse().engine.connect() as conn:
        loaded = dict(
            conn.execute(sa.text("SELECT integration_id, count(*) FROM cx_interactions GROUP BY integration_id")).all()
        )
    assert all(loaded.get(iid, 0) > 10 for iid in INTEGRATIONS), loaded


def test_the_search_finds_every_secret_and_the_beginnings_of_issued_tokens(secrets_run):
    """The search is not blind: each secret is found where it is, and every access token the sandbox issues starts
    with what the search looks for. The runs did get such tokens (OAuth 2.0 connections of both providers)."""
    for name, value in secrets_run.secrets.items():
        assert secrets_run.leaks(f"... {value} ...") == [name]
    base, c = secrets_run.env.server.base_url, secrets_run.credentials
    lp = requests.post(
        f"{base}/sentinel/api/v2/account/{c.lp_account_id}/app/token",
        data={
            "grant_type": "client_credentials",
            "client_id": LP_CLIENT_ID,
            "client_secret": c.secrets["lp_client_secret"],
        },
        timeout=10,
    )
    hd = requests.post(
        f"{base}/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": c.hd_refresh_token,
            "client_id": c.hd_client_id,
            "client_secret": c.secrets["hd_client_secret"],
        },
        timeout=10,
    )
    assert lp.json()["access_token"].startswith(secrets_run.secrets["lp_access_token_issued"])
    assert hd.json()["access_token"].startswith(secrets_run.secrets["hd_access_token_issued"])
    served = SandboxAdmin(secrets_run.env.server).counters()["requests"]
    assert served["liveperson"]["by_endpoint"]["sentinel_token"]["200"] >= 4  # one per task of the OAuth 2.0 DAGs
    assert served["helpdesk"]["by_endpoint"]["helpdesk_token"]["200"] >= 4


def test_no_secret_in_what_the_runs_printed(secrets_run):
    assert secrets_run.output.count(MARK) == 2 * len(secrets_run.runs)
    for dag_id, run in secrets_run.runs.items():
        assert secrets_run.leaks(run.output) == [], dag_id
    assert secrets_run.leaks(secrets_run.output) == []


def test_no_secret_in_any_file_of_the_airflow_home(secrets_run):
    """`airflow dags test` runs tasks in-process and writes their logs to its console (checked above); whatever
    it writes to files under the Airflow home (configuration, logs/) is checked here."""
    files = [p for p in secrets_run.env.home.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert any(p.name == "airflow.cfg" for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        assert secrets_run.leaks(text) == [], path


def test_no_secret_in_xcoms_or_anywhere_in_the_metadata_database(secrets_run):
    engine = sa.create_engine(f"sqlite:///{secrets_run.env.home / 'airflow.db'}")
    try:
        with engine.connect() as conn:
            xcoms = conn.execute(sa.text("SELECT count(*) FROM xcom")).scalar_one()
        assert xcoms >= len(INTEGRATIONS) * 4  # every task returns its counts
        found = [(table, column) for table, column, text in text_values(engine) if secrets_run.leaks(text)]
    finally:
        engine.dispose()
    assert found == []


def test_no_secret_in_any_warehouse_table(secrets_run):
    warehouse = secrets_run.env.warehouse()
    try:
        values = list(text_values(warehouse.engine))
    finally:
        warehouse.dispose()
    assert len(values) > 1000
    assert [(table, column) for table, column, text in values if secrets_run.leaks(text)] == []


def test_no_secret_in_what_the_oauth_connect_command_printed(secrets_run):
    """`python -m cxsync.helpdesk_oauth` on a connection kept in Airflow's database: the sign-in completes, and
    neither the client secret nor the refresh token it stores (nor any other secret) shows in its terminal
    output."""
    from support.helpdesk import play_browser
    from test_helpdesk_oauth import READ_EXTRA, SETUP_DB, run_python, start_command

    env = {k: v for k, v in secrets_run.env.env.items() if not k.startswith("AIRFLOW_CONN_")}
    run_python(SETUP_DB, env, json.dumps(secrets_run.env.connection("hd_secret_oauth")))
    process, url, lines = start_command("hd_db_oauth", env)
    landing = play_browser(url)
    out, err = process.communicate(timeout=60)
    assert landing.status_code == 200 and process.returncode == 0, err[-2000:]
    printed = "\n".join([*lines, out, err])
    assert "stored in connection 'hd_db_oauth'" in printed
    stored = json.loads(run_python(READ_EXTRA, env))["refresh_token"]
    assert stored and stored not in printed
    assert secrets_run.leaks(printed) == []
