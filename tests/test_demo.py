"""`make demo` (`cxsync_dev.demo`): the orchestration, its failure and interrupt paths, and the HelpDesk OAuth step.

The full demo (twenty `airflow dags test` runs) is too slow for the suite. The orchestration tests run every
step for real (warehouse, DAG parsing, sandbox, clock, counts) except the `airflow` CLI, whose stand-in
runs each DAG's task bodies (`cxsync.tasks`) in this process with exactly the environment the demo gives
its subprocesses. The OAuth step runs for real: `airflow db migrate`, pools, the connection import and the
connect command, with the demo playing the browser on the sandbox's authorize page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from cxsync import registry, settings, tasks
from cxsync.config import load_integrations
from cxsync.hooks.helpdesk import HelpDeskHook
from cxsync.qa import tasks as qa_tasks
from cxsync.warehouse import schema as t
from cxsync_dev import demo

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "lp_agents": 4,
    "lp_bots": 1,
    "lp_deleted_agents": 1,
    "lp_conversations_per_day": 8,
    "lp_days": 8,
    "lp_messages": "2:6",
    "hd_agents": 4,
    "hd_teams": 2,
    "hd_tickets_per_day": 5,
    "hd_days": 10,
    "hd_messages_mean": 3,
    "hd_archive_idle_days": 4,
}
INTEGRATIONS = """
warehouse_conn_id: cxsync_warehouse
integrations:
  - {id: lp_one, provider: liveperson, conn_id: sandbox_liveperson_main, label: LP One,
     retention: {value: 30, unit: days}}
  - {id: hd_one, provider: helpdesk, conn_id: sandbox_helpdesk_main, label: HD One, pii_redaction: true}
  - {id: lp_real, provider: liveperson, conn_id: liveperson_prod, label: not a sandbox connection}
"""

QA_LISTS = """
lists:
  - {id: elsewhere, type: all, integrations: [lp_main], period: {last: 7, unit: days}}
  - {id: demo_week, type: random, per_agent: 2, integrations: [lp_one, hd_one], period: {last: 8, unit: days},
     evaluators: [s-900, s-200]}
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text(INTEGRATIONS)
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    lists = tmp_path / "qa_lists.yaml"
    lists.write_text(QA_LISTS)
    monkeypatch.setenv("CXSYNC_QA_LISTS_FILE", str(lists))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CXSYNC_WAREHOUSE_PATH", raising=False)
    # Connections in the shell must not reach the demo's runs: a real warehouse, a real LivePerson key.
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", "postgresql://someone:secret@db.example.com/prod")
    monkeypatch.setenv("AIRFLOW_CONN_SANDBOX_LIVEPERSON_MAIN", '{"conn_type": "liveperson", "login": "real-key"}')
    return tmp_path


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class InProcessAirflow:
    """Stands in for the `airflow` CLI. `dags test` runs the DAG's task bodies in this process, in the
    environment the demo passes, and writes the line Airflow ends a run with; `fail` makes a DAG fail like
    an AirflowFailException; every call is recorded with the sandbox clock at that moment."""

    def __init__(self, fail: Mapping[str, str] | None = None, interrupt: str | None = None) -> None:
        self.fail = dict(fail or {})
        self.interrupt = interrupt
        self.calls: list[tuple[list[str], dict[str, str], datetime | None]] = []

    def __call__(self, args: Sequence[str], log: Path, env: Mapping[str, str]) -> int:
        args = list(args)
        self.calls.append((args, dict(env), sandbox_clock(env)))
        if args[:2] != ["dags", "test"]:
            log.write_text(f"airflow {' '.join(args)}: done\n")
            return 0
        dag_id = args[2]
        if dag_id == self.interrupt:
            raise KeyboardInterrupt
        if dag_id in self.fail:
            log.write_text(
                f"Traceback ...\nairflow.sdk.exceptions.AirflowFailException: {self.fail[dag_id]}\n"
                f"DagRun Finished: dag_id={dag_id}, state=failed, run_type=manual\n"
            )
            return 1
        conf = json.loads(args[args.index("-c") + 1]) if "-c" in args else {}
        with environment(env):
            if dag_id == settings.AGENT_MATCHING_DAG_ID:
                qa_tasks.agent_matching()
                kind = "qa"
            elif dag_id.startswith("cxsync_qa_list_"):
                qa_tasks.qa_list(dag_id.removeprefix("cxsync_qa_list_"), datetime.now(UTC))
                kind = "qa"
            else:
                integration_id, kind = split_dag_id(dag_id)
            if kind == "qa":
                pass
            elif kind == "roster_sync":
                tasks.roster_sync(integration_id)
            elif kind == "backfill":
                windows = tasks.plan_backfill(integration_id, conf["weeks"])
                for window in windows:
                    tasks.backfill_window(integration_id, window)
                tasks.finish_backfill(integration_id, windows)
            elif kind == "incremental":
                tasks.incremental(integration_id)
            else:
                tasks.retention(integration_id, conf["dry_run"])
        log.write_text(f"DagRun Finished: dag_id={dag_id}, logical_date=..., state=success, run_type=manual\n")
        return 0

    def dag_runs(self) -> list[tuple[str, dict, datetime | None]]:
        out = []
        for args, _, clock in self.calls:
            if args[:2] == ["dags", "test"]:
                out.append((args[2], json.loads(args[args.index("-c") + 1]) if "-c" in args else {}, clock))
        return out

    def dag_env(self) -> dict[str, str]:
        return next(env for args, env, _ in self.calls if args[:2] == ["dags", "test"])


def split_dag_id(dag_id: str) -> tuple[str, str]:
    for kind in demo.KINDS:
        if dag_id.endswith(f"_{kind}"):
            return dag_id.removeprefix("cxsync_").removesuffix(f"_{kind}"), kind
    raise AssertionError(f"not a cxsync DAG id: {dag_id}")


def sandbox_clock(env: Mapping[str, str]) -> datetime | None:
    text = env.get("AIRFLOW_CONN_SANDBOX_HELPDESK_MAIN")
    if not text:
        return None
    conn = json.loads(text)
    answer = requests.get(f"http://{conn['host']}:{conn['port']}/_sandbox/clock", timeout=10)
    return datetime.fromisoformat(answer.json()["now"])


def new_demo(runner: Any, **kwargs: Any) -> demo.Demo:
    return demo.Demo(config=load_integrations(), runner=runner, sandbox_options=dict(SMALL), **kwargs)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def sandbox_port(out: str) -> int:
    return int(re.search(r"stand-ins on http://127\.0\.0\.1:(\d+)", out).group(1))


def table_row(out: str, label: str) -> list[int]:
    line = next(line for line in out.splitlines() if line.startswith(label + "  "))
    return [int(n) for n in line[len(label) :].split()]


# ---- orchestration -------------------------------------------------------------------------------------------


def test_demo_runs_every_dag_of_each_sandbox_integration_around_one_sandbox_day(home, capsys):
    airflow = InProcessAirflow()
    assert demo.run(new_demo(airflow)) == 0
    out = capsys.readouterr().out
    warehouse_file = home / "home" / "cxsync.db"

    # Order: roster sync and a one-week backfill each; the clock moves a day; incremental, retention dry, real.
    runs = airflow.dag_runs()
    assert [(dag_id, conf) for dag_id, conf, _ in runs] == [
        ("cxsync_lp_one_roster_sync", {}),
        ("cxsync_lp_one_backfill", {"weeks": 1}),
        ("cxsync_hd_one_roster_sync", {}),
        ("cxsync_hd_one_backfill", {"weeks": 1}),
        ("cxsync_lp_one_incremental", {}),
        ("cxsync_lp_one_retention", {"dry_run": True}),
        ("cxsync_lp_one_retention", {"dry_run": False}),
        ("cxsync_hd_one_incremental", {}),
        ("cxsync_hd_one_retention", {"dry_run": True}),
        ("cxsync_hd_one_retention", {"dry_run": False}),
        ("cxsync_agent_matching", {}),
        ("cxsync_qa_list_demo_week", {}),  # the first list that needs only the demo's integrations
    ]
    first_day = {clock for _, _, clock in runs[:4]}
    later = {clock for _, _, clock in runs[4:10]}
    assert len(first_day) == 1 and later == {first_day.pop() + timedelta(days=1)}
    assert "skipped lp_real: its connection 'liveperson_prod' is not a sandbox connection" in out

    # Airflow is prepared before any run: metadata database, both pools; no OAuth integration, no import.
    others = [args for args, _, _ in airflow.calls if args[:2] != ["dags", "test"]]
    assert others[0] == ["db", "migrate"] and others[1][:2] == ["pools", "import"] and len(others) == 2
    pools = json.loads(Path(others[1][2]).read_text())
    assert {name: p["slots"] for name, p in pools.items()} == {
        spec.pool: spec.pool_slots for spec in registry.PROVIDERS.values()
    }

    # The runs' environment: sandbox connections only, the warehouse connection on the embedded file.
    env = airflow.dag_env()
    assert json.loads(env["AIRFLOW_CONN_CXSYNC_WAREHOUSE"]) == {"conn_type": "sqlite", "host": str(warehouse_file)}
    lp = json.loads(env["AIRFLOW_CONN_SANDBOX_LIVEPERSON_MAIN"])
    assert lp["host"] == "127.0.0.1" and lp["login"] != "real-key" and lp["extra"]["requests_per_second"] == 25
    assert "AIRFLOW_CONN_SANDBOX_HELPDESK_MAIN" in env and "AIRFLOW_CONN_SANDBOX_HELPDESK_OAUTH" not in env
    assert env["AIRFLOW_HOME"] == str(home / "home") and env["CXSYNC_INTEGRATIONS_FILE"] == str(
        home / "integrations.yaml"
    )

    # One line per run, read from the warehouse; the incremental run picked up new and closed conversations.
    engine = sa.create_engine(f"sqlite:///{warehouse_file}")
    with engine.connect() as conn:
        held = dict(
            conn.execute(
                sa.select(t.interactions.c.integration_id, sa.func.count()).group_by(t.interactions.c.integration_id)
            ).all()
        )
        messages = conn.execute(sa.select(sa.func.count()).select_from(t.messages)).scalar_one()
        retention_runs = conn.execute(
            sa.select(t.retention_log.c.integration_id, t.retention_log.c.dry_run).order_by(t.retention_log.c.id)
        ).all()
    engine.dispose()
    for integration_id in ("lp_one", "hd_one"):
        backfill = re.search(rf"{integration_id} +backfill +ok .* (\d+) interactions in the warehouse \((\d+) new", out)
        incremental = re.search(rf"{integration_id} +incremental +ok .* (\d+) changed: (\d+) new, (\d+) closed", out)
        assert backfill and incremental, out
        assert int(backfill[1]) == int(backfill[2]) > 0
        assert int(incremental[2]) + int(incremental[3]) > 0
        assert held[integration_id] == int(backfill[1]) + int(incremental[2])
        assert re.search(rf"{integration_id} +retention dry run +ok .* would delete 0 interactions", out)
        assert re.search(rf"{integration_id} +retention +ok .* deleted 0 interactions", out)
    assert retention_runs == [("lp_one", True), ("lp_one", False), ("hd_one", True), ("hd_one", False)]
    assert "retention 30 days" in out and "retention 13 months" in out

    # The table of what landed agrees with the warehouse; where it is and how to query it.
    assert table_row(out, "messages")[0] == messages
    assert table_row(out, "interactions open")[0] + table_row(out, "interactions closed")[0] == sum(held.values())
    assert table_row(out, "retention log rows") == [4, 2, 2, 0]
    assert f'sqlite3 {warehouse_file} "SELECT' in out
    assert "sandbox stopped" in out and "all succeeded" in out
    assert not port_open(sandbox_port(out))

    # hd_one redacts PII: the summary says how much, and the requesters' e-mails (its customer ids) are not stored.
    redaction = re.search(r"PII redaction of hd_one: ([\d,]+) messages scanned, ([\d,]+) with PII; replaced (.*)", out)
    assert redaction, out
    assert int(redaction[1].replace(",", "")) > 0 and "<EMAIL>" in redaction[3] and "<NAME>" in redaction[3]
    assert "PII redaction of lp_one" not in out
    with engine.connect() as conn:
        customers = conn.execute(
            sa.select(t.interactions.c.customer_id).where(t.interactions.c.integration_id == "hd_one")
        ).scalars()
        assert {c for c in customers if c and "@" in c} == set()
    engine.dispose()

    # The QA step: every agent matched (or not) against the sample staff file, the list per evaluator.
    with engine.connect() as conn:
        matches = conn.execute(sa.select(sa.func.count()).select_from(t.agent_matches)).scalar_one()
        agents = conn.execute(sa.select(sa.func.count()).select_from(t.agents)).scalar_one()
        items = conn.execute(sa.select(t.qa_list_items.c.evaluator_id, t.qa_list_items.c.staff_id)).all()
    engine.dispose()
    assert matches == agents > 0 and f"{agents} provider agents:" in out
    assert re.search(r"    bot +Virtual Assistant 1 \(lp_one:\d+\)", out)
    assert items and all(evaluator != staff for evaluator, staff in items)
    assert re.search(r"demo_week-\d{8}T\d{6}Z: \d+ of \d+ eligible interactions \(seed \d+", out)
    assert "  evaluator s-900 Quinn Avery: " in out and "exported for QA tools: " in out


def test_a_rerun_reuses_the_warehouse_and_continues_the_sandbox_clock(home, capsys):
    first = InProcessAirflow()
    assert demo.run(new_demo(first)) == 0
    capsys.readouterr()
    end_of_first = first.dag_runs()[-1][2]

    second = InProcessAirflow()
    assert demo.run(new_demo(second)) == 0
    out = capsys.readouterr().out
    runs = second.dag_runs()
    # The clock starts where the last demo's watermarks are, never earlier: a backfill cannot write an older
    # state of a conversation over the newer one the last incremental run loaded.
    assert runs[0][2] == end_of_first and "where the last demo left off" in out
    assert "reused," in out
    for integration_id in ("lp_one", "hd_one"):
        assert re.search(rf"{integration_id} +backfill +ok .* \(0 new, 0 updated\)", out), out
        assert re.search(rf"{integration_id} +incremental +ok .* (\d+) changed: [1-9]", out), out
    assert table_row(out, "retention log rows") == [8, 4, 4, 0]


def test_a_failed_run_is_reported_with_its_reason_and_log_and_fails_the_demo(home, capsys):
    airflow = InProcessAirflow(fail={"cxsync_lp_one_backfill": "LivePerson refused the OAuth 1.0 signature"})
    assert demo.run(new_demo(airflow)) == 1
    captured = capsys.readouterr()
    log = home / "home" / "demo-logs" / "lp_one.backfill.log"
    assert re.search(
        r"lp_one +backfill +FAILED after [\d.]+ s: LivePerson refused the OAuth 1.0 signature\n", captured.out
    )
    assert f"log: {log}" in captured.out and log.is_file()
    # The integration's later runs are skipped; the other integration goes on.
    assert re.search(r"lp_one +incremental +skipped: an earlier run of this integration failed", captured.out)
    assert [d for d, _, _ in airflow.dag_runs() if d.startswith("cxsync_lp_one")] == [
        "cxsync_lp_one_roster_sync",
        "cxsync_lp_one_backfill",
    ]
    assert re.search(r"hd_one +retention +ok", captured.out)
    assert "cxsync demo FAILED (1 problem(s))" in captured.err
    assert f"lp_one backfill failed (log: {log})" in captured.err
    assert not port_open(sandbox_port(captured.out))


def test_ctrl_c_stops_the_demo_and_the_sandbox(home, capsys):
    airflow = InProcessAirflow(interrupt="cxsync_hd_one_backfill")
    assert demo.run(new_demo(airflow)) == 130
    out = capsys.readouterr().out
    assert "interrupted; stopping the sandbox" in out and "sandbox stopped" in out
    assert not port_open(sandbox_port(out))
    assert airflow.dag_runs()[-1][0] == "cxsync_hd_one_backfill"


def test_the_runner_stops_the_whole_process_group_of_a_run(tmp_path):
    """A run that hangs (here: past its timeout) is stopped with every process it started."""
    script = (
        "import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); print(child.pid, flush=True); time.sleep(60)"
    )
    runner = demo.SubprocessRunner(prefix=[sys.executable, "-c", script], timeout=3)
    log = tmp_path / "run.log"
    started = time.monotonic()
    assert runner([], log, dict(os.environ)) == 124
    assert time.monotonic() - started < 20
    text = log.read_text()
    assert "stopped after 3 s without an answer" in text
    grandchild = int(text.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process_alive(grandchild):
        time.sleep(0.1)
    assert not process_alive(grandchild)


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_demo_stops_at_a_bad_integrations_entry_before_starting_anything(home, capsys):
    (home / "integrations.yaml").write_text(INTEGRATIONS + "  - {id: bad, provider: zendesk, conn_id: x}\n")
    airflow = InProcessAirflow()
    assert demo.run(new_demo(airflow)) == 1
    captured = capsys.readouterr()
    assert "`provider`" in captured.out and "problem(s)" in captured.err
    assert "cxsync_lp_one_{roster_sync,backfill,incremental,retention}" in captured.out  # the good entries show
    assert airflow.calls == [] and "Sandbox providers" not in captured.out


def test_demo_reports_an_unusable_integrations_file(home, capsys):
    (home / "integrations.yaml").write_text("integrations: [")
    assert demo.main([]) == 2
    assert "not valid YAML" in capsys.readouterr().err


# ---- the HelpDesk OAuth step, for real -----------------------------------------------------------------------

OAUTH_INTEGRATIONS = """
integrations:
  - {id: hd_o, provider: helpdesk, conn_id: sandbox_helpdesk_oauth, label: HD OAuth}
"""
READ_METADATA = """
import json
from airflow.models.connection import Connection
from airflow.models.pool import Pool
from airflow.utils.session import create_session
with create_session() as session:
    conn = session.query(Connection).filter(Connection.conn_id == "sandbox_helpdesk_oauth").one()
    pools = {p.pool: p.slots for p in session.query(Pool)}
    print(json.dumps({"port": conn.port, "login": conn.login, "extra": conn.extra_dejson, "pools": pools}))
"""


def read_metadata(env: Mapping[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", READ_METADATA], env=dict(env), capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_oauth_step_connects_through_the_authorize_page_and_a_rerun_replaces_the_connection(home, capsys, monkeypatch):
    (home / "integrations.yaml").write_text(OAUTH_INTEGRATIONS)
    seen: list[dict[str, Any]] = []

    def check_while_the_sandbox_runs(d: demo.Demo) -> None:
        stored = read_metadata(d.env)
        seen.append(stored)
        conn = {**d.connections["sandbox_helpdesk_oauth"], "extra": stored["extra"]}
        monkeypatch.setenv("AIRFLOW_CONN_HD_DEMO_CHECK", json.dumps(conn))
        assert HelpDeskHook("hd_demo_check").test_connection()[0]  # the stored refresh token gets access tokens

    steps = [
        demo.open_warehouse,
        demo.start_sandbox,
        demo.prepare_airflow,
        demo.connect_helpdesk_oauth,
        check_while_the_sandbox_runs,
    ]
    outputs = []
    for _ in range(2):  # the second time, as a re-run of `make demo`: the connection is replaced
        assert demo.run(new_demo(demo.SubprocessRunner()), steps) == 0
        outputs.append(capsys.readouterr().out)

    for out, stored in zip(outputs, seen, strict=True):
        assert "added to the metadata database (replacing any earlier one), auth_type oauth2, no refresh token" in out
        assert "$ python -m cxsync.helpdesk_oauth --conn-id sandbox_helpdesk_oauth --port 0 --no-browser" in out
        assert "pressed Approve; the page sent the browser on to http://127.0.0.1:" in out
        assert "the command's loopback listener answered 200: 'cxsync: HelpDesk authorized." in out
        assert "the refresh token is stored in connection 'sandbox_helpdesk_oauth' (metadata database)" in out
        token = stored["extra"]["refresh_token"]
        assert token.startswith("dal:") and token not in out  # never printed
        assert stored["extra"]["auth_type"] == "oauth2" and stored["extra"]["requests_per_second"] == 25
        assert stored["port"] == sandbox_port(out)  # the re-run's connection points at the re-run's sandbox
        assert stored["pools"]["cxsync_liveperson"] == 4 and stored["pools"]["cxsync_helpdesk"] == 2
    assert seen[0]["port"] != seen[1]["port"]
    assert seen[0]["extra"]["refresh_token"] != seen[1]["extra"]["refresh_token"]
    log = home / "home" / "demo-logs" / "helpdesk-oauth-connect.log"
    assert "Connected account" in log.read_text()


def test_warehouse_file_and_query_hint_name_the_embedded_sqlite_file(home, capsys):
    d = new_demo(InProcessAirflow())
    assert demo.run(d, [demo.open_warehouse, demo.show_counts, demo.show_where]) == 0
    out = capsys.readouterr().out
    path = home / "home" / "cxsync.db"
    assert f"SQLite file {path} (created; schema version" in out
    assert table_row(out, "agents") == [0, 0, 0, 0]
    line = next(line for line in out.splitlines() if " -c " in line)
    _, flag, code = shlex.split(line)
    done = subprocess.run([sys.executable, flag, code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
