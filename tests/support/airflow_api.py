"""Airflow's public REST API (`/api/v2`) as the UI uses it: a JWT from `/auth/token`, then DAGs, runs, task
instances and pools. For the tests that drive a running Airflow (the cluster tier, `make airflow`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

FINISHED = {"success", "failed"}
TIMEOUT = 60
POLL_SECONDS = 2.0


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, check: Callable[[], None] = lambda: None):
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.check = check  # called while waiting, e.g. to fail early when a component died
        self.session = requests.Session()

    def login(self) -> str:
        answer = self.session.post(
            f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=TIMEOUT
        )
        answer.raise_for_status()
        token = answer.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        url = f"{self.base_url}/api/v2{path}"
        for attempt in range(3):
            try:
                answer = self.session.request(method, url, json=body, params=params, timeout=TIMEOUT)
                break
            except requests.Timeout:
                # A busy machine (the tier shares two cores with the components it drives): ask again, but
                # never repeat a request that changes something.
                if method != "GET" or attempt == 2:
                    raise
        if not answer.ok:
            raise AssertionError(f"{method} /api/v2{path} answered {answer.status_code}: {answer.text[:2000]}")
        return answer.json() if answer.content else None

    # ---- DAGs and runs --------------------------------------------------------------------------------------

    def dag_ids(self, tag: str) -> set[str]:
        return {d["dag_id"] for d in self.call("GET", "/dags", tags=tag, limit=1000)["dags"]}

    def unpause(self, dag_id: str) -> None:
        assert self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """What the trigger dialog posts: no logical date, the form's conf; returns the run id."""
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def pools(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.call("GET", "/pools", limit=1000)["pools"]}

    def wait_finished(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                states = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in self.task_instances(dag_id, run_id)}
                raise AssertionError(f"{dag_id} {run_id} still {run['state']} after {timeout:g} s; tasks: {states}")
            time.sleep(POLL_SECONDS)

    def wait_all_finished(self, dag_id: str, timeout: float) -> list[dict[str, Any]]:
        """Every run of the DAG (scheduled ones too) once none is queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            runs = self.runs(dag_id)
            if runs and all(r["state"] in FINISHED for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"runs of {dag_id} not finished after {timeout:g} s: {runs}")
            time.sleep(POLL_SECONDS)
