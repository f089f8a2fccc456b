"""The Airflow pools cxsync's provider tasks run in, and their creation where Airflow has its database.

Every provider task runs in its provider's pool (`cxsync_<provider>`), so one Airflow never runs more of
one provider's tasks at once than the pool allows. A task whose pool does not exist is never scheduled and
Airflow says so only in the scheduler log, so cxsync creates missing pools itself when the api-server starts
(the plugin's lifespan, `cxsync.ui.app`). Existing pools are left as they are: a resized pool keeps its size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def wanted_pools() -> list[PoolSpec]:
    from cxsync.registry import PROVIDERS

    return [
        PoolSpec(
            spec.pool, spec.pool_slots, f"cxsync: {spec.display_name} tasks at once (created by cxsync; resize freely)"
        )
        for spec in PROVIDERS.values()
    ]


def missing_pools(existing: set[str]) -> list[PoolSpec]:
    return [pool for pool in wanted_pools() if pool.name not in existing]


def ensure_pools() -> list[str]:
    """Create the cxsync pools that do not exist yet; needs Airflow's metadata database. Returns the names
    created."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        existing = {pool.pool for pool in Pool.get_pools(session=session)}
        created = []
        for pool in missing_pools(existing):
            session.add(Pool(pool=pool.name, slots=pool.slots, description=pool.description, include_deferred=False))
            created.append(pool.name)
    for name in created:
        log.info("cxsync: created the Airflow pool %s", name)
    return created
