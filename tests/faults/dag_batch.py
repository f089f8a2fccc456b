"""Run several `airflow dags test` commands in one Python process: `python dag_batch.py '<json list>'`, each item
`{"dag_id": ..., "conf": {...} or null}`.

Each command goes through Airflow's own CLI entry point (`airflow.__main__.main`) exactly as `airflow dags test`
does from a shell; only the interpreter start, Airflow's imports and its in-process execution API are shared,
which saves seconds per DAG. Airflow's secret maskers are emptied before each command, so a secret one run
registered cannot hide another run's leak. Each command's output sits between two marker lines:
`=== cxsync-dag-run <dag_id> begin` and `=== cxsync-dag-run <dag_id> end rc=<exit code>`.
"""

from __future__ import annotations

import json
import sys
import traceback

MARK = "=== cxsync-dag-run"


def reset_secret_maskers() -> None:
    from airflow._shared.secrets_masker import secrets_masker as core_masker
    from airflow.sdk._shared.secrets_masker import secrets_masker as sdk_masker

    for module in (core_masker, sdk_masker):
        module._secrets_masker().reset_masker()


def run(dag_id: str, conf: dict | None) -> int:
    from airflow.__main__ import main

    sys.argv = ["airflow", "dags", "test", dag_id, *(["-c", json.dumps(conf)] if conf else [])]
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    for item in json.loads(sys.argv[1]):
        print(f"{MARK} {item['dag_id']} begin", flush=True)
        reset_secret_maskers()
        code = run(item["dag_id"], item.get("conf"))
        sys.stderr.flush()
        print(f"{MARK} {item['dag_id']} end rc={code}", flush=True)
