"""The demo's shared state and its constants: one `Demo` that every step reads and extends, the runner of
`airflow` subprocesses, and where things go (Airflow home, DAG folder, warehouse file)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxsync.config import Integration, IntegrationsConfig

if TYPE_CHECKING:
    from cxsync.warehouse import Warehouse
    from cxsync_dev.sandbox.server import SandboxServer

PROJECT_ROOT = Path(__file__).resolve().parents[3]


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
    "lp_days": 29,  # the 4-week backfill of `make airflow` finds a history on every day
    "lp_messages": "4:14",
    "hd_agents": 8,
    "hd_teams": 3,
    "hd_tickets_per_day": 12,
    "hd_days": 29,
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
