"""What the benchmarks share: the sandbox in its own process, Airflow connections at it, a scratch PostgreSQL
database, and a few measuring helpers.

The sandbox runs in a subprocess so that it never competes with the code under test for the GIL: on a
2-core machine the client then has one core to itself, as it would against a real provider.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_NOW = "2025-03-14T09:30:00+00:00"
PG_ADMIN_URL = os.environ.get("CXSYNC_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

# Benchmarks measure the load path, not waiting: no client-side pacing unless a benchmark asks for it,
# retries quick (the sandbox injects no faults unless told).
BENCH_EXTRAS: dict[str, Any] = {
    "requests_per_second": 0,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 1,
    "timeout": 60,
}

_EXPORT = re.compile(r"^export (AIRFLOW_CONN_[A-Z0-9_]+)='(.*)'$")


def _scale() -> float:
    """`CXSYNC_BENCH_SCALE` (default 1) shrinks every benchmark's volumes, e.g. 0.01 for a smoke test."""
    return float(os.environ.get("CXSYNC_BENCH_SCALE", "1"))


def scaled(n: int, minimum: int = 1) -> int:
    return max(minimum, round(n * _scale()))


def is_smoke() -> bool:
    return _scale() < 1


class SandboxProcess:
    """`python -m cxsync_dev.sandbox` on a free loopback port, in its own process; stopped with SIGTERM."""

    def __init__(
        self,
        *,
        seed: int = 1,
        now: str = SANDBOX_NOW,
        options: Mapping[str, Any] | None = None,
        args: list[str] | None = None,
    ):
        cmd = [sys.executable, "-u", "-m", "cxsync_dev.sandbox", "--port", "0", "--seed", str(seed), "--now", now]
        for key, value in (options or {}).items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        cmd += args or []
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.connections: dict[str, dict[str, Any]] = {}
        self.session = requests.Session()

    def start(self, timeout: float = 60.0) -> SandboxProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while not {"sandbox_liveperson_main", "sandbox_helpdesk_main"} <= set(self.connections):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:  # timed out, or the process ended
                self.stop()
                raise RuntimeError("the sandbox did not start:\n" + "".join(seen))
            seen.append(line)
            match = re.search(r"sandbox on (http://\S+)", line)
            if match:
                self.base_url = match.group(1)
            export = _EXPORT.match(line.strip())
            if export:
                self.connections[export.group(1).removeprefix("AIRFLOW_CONN_").lower()] = json.loads(export.group(2))
        return self

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        """Read the sandbox's output to its end (a full pipe would block it); lines until started matter."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.session.close()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- admin API --------------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, f"{self.base_url}/_sandbox{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict[str, Any]:
        return self.admin("GET", "/counters")

    def reset_counters(self) -> None:
        self.admin("DELETE", "/counters")

    def requests_served(self, provider: str, status: int | None = None) -> int:
        served = self.counters()["requests"].get(provider, {})
        return served.get("total", 0) if status is None else served.get("by_status", {}).get(str(status), 0)

    def faults(self, provider: str, **settings: Any) -> dict[str, Any]:
        return self.admin("PUT", f"/faults/{provider}", settings)

    def advance(self, duration: str) -> str:
        return self.admin("POST", "/clock", {"advance": duration})["now"]

    def export(self, **extra: Any) -> None:
        """Publish the sandbox's connections as `AIRFLOW_CONN_*` in this process, with `BENCH_EXTRAS` and `extra`."""
        for conn_id, conn in self.connections.items():
            conn = {**conn, "extra": {**conn.get("extra", {}), **BENCH_EXTRAS, **extra}}
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)


@contextlib.contextmanager
def pg_database(prefix: str = "cxsync_bench") -> Iterator[str]:
    """A scratch PostgreSQL database on 127.0.0.1:5432, dropped afterwards; yields its URL."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_available() -> bool:
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_logs() -> None:
    """Progress logs at INFO cost time on every page; benchmarks keep warnings only."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for name in ("cxsync", "airflow", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"
