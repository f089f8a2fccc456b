"""`make demo` turns analytics on for one integration (in a copy of the file), runs its DAG and prints agent figures."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from transcripts import WORKED_EXAMPLE, conversation

from cxsync.config import load_integrations
from cxsync.warehouse import Warehouse
from cxsync_dev import demo

INTEGRATIONS = """\
integrations:
  - {id: hd_one, provider: helpdesk, conn_id: helpdesk_main}
  - {id: lp_one, provider: liveperson, conn_id: liveperson_main}
  - {id: lp_two, provider: liveperson, conn_id: liveperson_oauth2}
"""


def test_the_demo_copy_of_the_file_turns_analytics_on_for_the_first_liveperson_integration(tmp_path):
    path = tmp_path / "integrations.yaml"
    path.write_text(INTEGRATIONS)
    config = demo.with_analytics_on(load_integrations(path), tmp_path / "home")
    assert config.path == tmp_path / "home" / "demo-integrations.yaml"
    assert {i.id: i.conversation_analytics for i in config.integrations} == {
        "hd_one": False,
        "lp_one": True,
        "lp_two": False,
    }
    assert path.read_text() == INTEGRATIONS  # the user's file is not touched
    assert demo.with_analytics_on(config, tmp_path / "other") is config  # already on: nothing to do


class AnalyticsRunner:
    """Stands in for `airflow dags test cxsync_<id>_analytics`: runs the DAG's task body in this process."""

    def __init__(self) -> None:
        self.dag_ids: list[str] = []

    def __call__(self, args: Sequence[str], log: Path, env: Mapping[str, str]) -> int:
        from cxsync.analytics.task import compute_metrics

        dag_id = args[2]
        self.dag_ids.append(dag_id)
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            compute_metrics(dag_id.removeprefix("cxsync_").removesuffix("_analytics"), full=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        log.write_text(f"DagRun Finished: dag_id={dag_id}, logical_date=..., state=success, run_type=manual\n")
        return 0


def test_the_analytics_step_runs_the_dag_and_prints_figures_per_agent(tmp_path):
    path = tmp_path / "integrations.yaml"
    path.write_text(INTEGRATIONS)
    config = demo.with_analytics_on(load_integrations(path), tmp_path / "home")
    wh_file = tmp_path / "home" / "cxsync.db"
    warehouse = Warehouse.from_url(f"sqlite:///{wh_file}")
    warehouse.ensure_schema()
    second = replace(
        conversation("two", [(0, "customer", "c", "hi"), (30, "agent", "a1", "hello")], ended_after=600),
        csat_score=4.0,
        sentiment_score=65.0,
    )
    warehouse.write_interactions("lp_one", [WORKED_EXAMPLE, second])
    lines: list[str] = []
    runner = AnalyticsRunner()
    state = demo.Demo(
        config=config,
        home=tmp_path / "home",
        warehouse_file=wh_file,
        runner=runner,
        out=lambda *a, **k: lines.append(" ".join(map(str, a))),
        warehouse=warehouse,
        integrations=list(config.integrations),
        env={
            "CXSYNC_INTEGRATIONS_FILE": str(config.path),
            "CXSYNC_WAREHOUSE_PATH": str(wh_file),
        },
    )
    state.logs.mkdir(parents=True)
    demo.analytics(state)
    warehouse.dispose()
    out = "\n".join(lines)
    assert runner.dag_ids == ["cxsync_lp_one_analytics"]
    assert "metrics of 2 conversations with an agent, 1 agents" in out
    # a1: 2 conversations; first responses 120 s and 30 s: median 75 s, p90 111 s; handle 1200 s and 600 s; one
    # flagged; CSAT 4 over the one rated conversation, MCS 65 over the one with a score.
    assert [line.split() for line in lines if line.strip().startswith("a1 ")] == [
        ["a1", "2", "1m15s", "1m51s", "15m00s", "1", "4.00", "1", "65.0"]
    ]
    assert state.problems == []
