"""`cxsync.airflow_components`: the shared settings file, and local components started and stopped as process
groups (with `bash` standing in for `airflow`, so the tests take a second)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cxsync.airflow_components import (
    COMPONENTS,
    ComponentDied,
    Components,
    read_env_file,
    shared_environment,
)

BASH = ("bash", "-c")
# A component that ignores SIGTERM and has forked a child, like a worker with a running task.
STUBBORN = "trap '' TERM; sleep 300 & echo started; wait"


def test_the_shared_settings_file_is_plain_key_value_lines(tmp_path):
    assert shared_environment()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    bad = tmp_path / "airflow.env"
    bad.write_text("# comment\nA=1\n\nno equals sign\n")
    with pytest.raises(ValueError, match=r"airflow\.env, line 4: expected KEY=VALUE"):
        read_env_file(bad)


def test_every_component_is_an_airflow_command():
    assert COMPONENTS["airflow-worker"] == ("celery", "worker")
    assert set(COMPONENTS) == {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    }


def test_stop_all_ends_every_process_group_even_one_that_ignores_sigterm(tmp_path):
    components = Components(dict(os.environ), tmp_path, prefix=BASH)
    polite = components.start("airflow-scheduler", ["sleep 300"])
    stubborn = components.start("airflow-worker", [STUBBORN])
    components.wait_for("the stubborn one", lambda: "started" in stubborn.tail(), 10, interval=0.05)
    began = time.monotonic()
    components.stop_all(grace=1.0)
    assert components.all_gone() and not polite.running and not stubborn.running
    assert time.monotonic() - began < 10


def test_kill_takes_the_whole_group_and_a_restart_writes_a_new_log(tmp_path):
    with Components(dict(os.environ), tmp_path, prefix=BASH) as components:
        first = components.start("airflow-worker", [STUBBORN])
        components.wait_for("the worker", lambda: "started" in first.tail(), 10, interval=0.05)
        components.kill("airflow-worker")
        assert not first.group_alive() and first.process.returncode == -signal.SIGKILL
        second = components.start("airflow-worker", ["echo second; sleep 300"])
        assert second.log.name == "airflow-worker.2.log" and components.current("airflow-worker") is second
        components.check_running()  # the killed one was replaced: nothing to report
    assert components.all_gone()


def test_a_component_that_dies_is_reported_with_the_end_of_its_log(tmp_path):
    with Components(dict(os.environ), tmp_path, prefix=BASH) as components:
        components.start("airflow-scheduler", ["echo 'cannot reach the database'; exit 3"])
        with pytest.raises(ComponentDied, match=r"(?s)airflow-scheduler exited with status 3.*cannot reach"):
            components.wait_for("something that never comes", lambda: None, 10, interval=0.05)
