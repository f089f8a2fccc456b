"""Airflow's long-running components as local processes, with the settings every deployment of them shares.

- `COMPONENTS`: the `airflow` sub-command of each component, keyed by its service name in docker-compose.yaml.
- `shared_environment()`: `docker/airflow.env`, the settings docker-compose.yaml gives every component
  (`env_file`); the local runs (the cluster test tier, `make airflow`) start from the same file.
- `Components`: starts components as subprocesses, each in its own process group with its output in a log
  file, and stops them (SIGTERM to each group, SIGKILL after a grace period), so nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_ENV_FILE = PROJECT_ROOT / "docker" / "airflow.env"

COMPONENTS: dict[str, tuple[str, ...]] = {
    "airflow-apiserver": ("api-server",),
    "airflow-scheduler": ("scheduler",),
    "airflow-dag-processor": ("dag-processor",),
    "airflow-triggerer": ("triggerer",),
    "airflow-worker": ("celery", "worker"),
}
STOP_GRACE_SECONDS = 15.0

T = TypeVar("T")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose's env_file format without quoting or interpolation); `#` starts a comment line."""
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}, line {number}: expected KEY=VALUE, got {raw!r}")
        out[key.strip()] = value.strip()
    return out


def shared_environment() -> dict[str, str]:
    return read_env_file(SHARED_ENV_FILE)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ComponentDied(RuntimeError):
    """A component exited while it should be running; the message holds the end of its log."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def group_alive(self) -> bool:
        """Whether any process of the component's group is left (a task a worker forked, say)."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a recycled group id of another user
            return False
        return True

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


@dataclass
class Components:
    """Airflow components started with one environment; `stop_all()` (or the context manager) ends them."""

    env: Mapping[str, str]
    logs: Path
    cwd: Path = PROJECT_ROOT
    prefix: Sequence[str] = (sys.executable, "-m", "airflow")
    started: list[Component] = field(default_factory=list)

    def __enter__(self) -> Components:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, args: Sequence[str] | None = None) -> Component:
        """Start `airflow <COMPONENTS[name]>`; a restart of a name writes a new numbered log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        runs = sum(1 for c in self.started if c.name == name)
        log = self.logs / (f"{name}.log" if not runs else f"{name}.{runs + 1}.log")
        command = [*self.prefix, *(args if args is not None else COMPONENTS[name])]
        with log.open("w") as sink:
            process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,  # its own process group: stopping it stops what it forked
            )
        component = Component(name, process, log)
        self.started.append(component)
        return component

    def current(self, name: str) -> Component:
        return [c for c in self.started if c.name == name][-1]

    def kill(self, name: str) -> None:
        """SIGKILL the component's whole process group, as when its machine dies."""
        component = self.current(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGKILL)
        component.process.wait(30)
        deadline = time.monotonic() + 10.0  # the group's other members are reaped by init, a moment later
        while component.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def check_running(self) -> None:
        for component in self.started:
            if component is self.current(component.name) and not component.running:
                raise ComponentDied(
                    f"{component.name} exited with status {component.process.returncode}; "
                    f"the end of {component.log}:\n{component.tail()}"
                )

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every group at once, then SIGKILL what is left after `grace` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            alive = [c for c in self.started if c.group_alive()]
            for component in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.process.pid, sig)
            deadline = time.monotonic() + wait
            while alive and time.monotonic() < deadline:
                for component in alive:
                    component.process.poll()  # reap the leader, or its group never empties
                alive = [c for c in alive if c.group_alive()]
                time.sleep(0.1)

    def all_gone(self) -> bool:
        for component in self.started:
            component.process.poll()
        return not any(c.group_alive() for c in self.started)

    def logs_text(self, chars: int = 3000) -> str:
        return "\n".join(f"===== {c.log.name} (last {chars} chars)\n{c.tail(chars)}" for c in self.started)

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
        """Poll `probe` until it returns something other than None/False; fail early if a component died."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            result = probe()
            if result is not None and result is not False:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not after {timeout:g} s")
            time.sleep(interval)
