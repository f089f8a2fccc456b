"""A task whose pool does not exist is never scheduled, and Airflow says so only in the scheduler log: cxsync's
plugin creates its provider pools when the api-server starts, and leaves a pool someone resized as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from cxsync import settings
from cxsync.pools import missing_pools, wanted_pools
from cxsync.registry import PROVIDERS

# Runs in its own process: Airflow binds its metadata database when first imported.
STARTUP = textwrap.dedent(
    """
    import json
    from airflow import settings
    from airflow.models.base import Base
    from airflow.models.pool import Pool
    from fastapi.testclient import TestClient

    for table in ("team", "slot_pool"):
        Base.metadata.tables[table].create(settings.engine)
    Pool.create_or_update_pool("cxsync_helpdesk", 7, "resized by a person", False)

    from cxsync.ui.app import app

    with TestClient(app):  # the api-server enters the plugin app's lifespan when it starts
        pass
    print(json.dumps({p.pool: p.slots for p in Pool.get_pools()}))
    """
)


def test_every_provider_has_a_pool_with_its_default_size():
    assert {p.name for p in wanted_pools()} == {settings.pool_name(name) for name in PROVIDERS}
    assert {p.name: p.slots for p in wanted_pools()}["cxsync_liveperson"] == PROVIDERS["liveperson"].pool_slots
    assert [p.name for p in missing_pools({"default_pool", "cxsync_helpdesk"})] == ["cxsync_liveperson"]


def test_the_api_server_start_creates_missing_pools_and_keeps_resized_ones(tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", STARTUP], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pools = json.loads(done.stdout.strip().splitlines()[-1])
    assert pools["cxsync_liveperson"] == PROVIDERS["liveperson"].pool_slots
    assert pools["cxsync_helpdesk"] == 7
