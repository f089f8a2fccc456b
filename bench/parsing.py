"""DAG parsing: the DAG folder with 50 integrations (200 DAGs) parses in under 2 s.

Each repeat is a fresh Python process (no warm module cache): it imports Airflow's DagBag (not counted:
the DAG processor has Airflow loaded before it parses any file), then fills a DagBag from `dags/` with a
generated integrations file of 50 entries (`CXSYNC_INTEGRATIONS_FILE`). The figure is the median parse time.
The whole cold process (`python dags/cxsync_dags.py`, interpreter and Airflow start-up included) is shown too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._support import ROOT, is_smoke, verdict

TITLE = "DAG parsing: 50 integrations"

INTEGRATIONS = 50 if not is_smoke() else 4
REPEATS = 5 if not is_smoke() else 1
TARGET_SECONDS = 2.0

_PARSE = """
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parsed = time.perf_counter()
print("RESULT " + json.dumps({"import": imported - started, "parse": parsed - imported, "dags": len(bag.dags),
                               "errors": {str(k): str(v)[:300] for k, v in bag.import_errors.items()}}))
"""


def integrations_yaml(count: int) -> str:
    units = ["days", "weeks", "months", "quarters", "years"]
    lines = ["warehouse_conn_id: cxsync_warehouse", "integrations:"]
    for n in range(count):
        provider = "liveperson" if n % 2 == 0 else "helpdesk"
        lines += [
            f"  - id: {provider[:2]}_brand_{n:02d}",
            f"    provider: {provider}",
            f"    label: Brand {n} ({provider})",
            f"    description: Generated integration {n} for the parsing benchmark",
            f"    conn_id: {provider}_brand_{n:02d}",
            f"    backfill_weeks: {1 + n % 4}",
            f"    retention: {{value: {1 + n % 12}, unit: {units[n % len(units)]}}}",
            f'    schedule: "{n % 60} {n % 24} * * *"',
        ]
    return "\n".join(lines) + "\n"


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "integrations.yaml"
        path.write_text(integrations_yaml(INTEGRATIONS))
        env = {
            **os.environ,
            "CXSYNC_INTEGRATIONS_FILE": str(path),
            "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        parses: list[float] = []
        colds: list[float] = []
        baselines: list[float] = []
        dags = 0
        for _ in range(REPEATS):
            out = subprocess.run(
                [sys.executable, "-c", _PARSE, str(ROOT / "dags")],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                timeout=300,
            )
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
            result = json.loads(line.removeprefix("RESULT "))
            if result["errors"]:
                raise RuntimeError(f"the DAG folder has import errors: {result['errors']}")
            parses.append(result["parse"])
            dags = result["dags"]
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "dags" / "cxsync_dags.py")],
                env=env,
                capture_output=True,
                check=True,
                cwd=ROOT,
                timeout=300,
            )
            colds.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "import airflow.sdk"],
                env=env,
                capture_output=True,
                check=True,
                cwd=ROOT,
                timeout=300,
            )
            baselines.append(time.perf_counter() - started)
    expected = INTEGRATIONS * 4
    if dags < expected:
        raise RuntimeError(f"parsed {dags} DAGs, expected at least {expected}")
    median = statistics.median(parses)

    def cells(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s | {min(values):.2f}..{max(values):.2f} s"

    met = verdict(median < TARGET_SECONDS)
    cold = "whole cold process `python dags/cxsync_dags.py` (interpreter + Airflow start-up)"
    return f"""
Target: the DAG folder with {INTEGRATIONS} integrations parses in < {TARGET_SECONDS:.0f} s.

| measure | median of {REPEATS} fresh processes | range |
|---|---|---|
| DagBag fill of `dags/` ({dags} DAGs) | **{median:.2f} s** {met} | {min(parses):.2f}..{max(parses):.2f} s |
| {cold} | {cells(colds)} |
| of which a bare `python -c "import airflow.sdk"` | {cells(baselines)} |

The integrations file is generated: {INTEGRATIONS} entries, LivePerson and HelpDesk alternating, every retention unit,
backfill 1-4 weeks, distinct schedules. Parsing reads only that file: no provider code, network or database.
"""
