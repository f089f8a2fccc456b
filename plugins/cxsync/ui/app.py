"""The FastAPI app the api-server mounts under /cxsync/.

Its lifespan runs when the api-server starts (Airflow enters the lifespan of every mounted plugin app): that
is where cxsync's pools are created, since the api-server is the one component every deployment runs that
has Airflow's database at hand.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cxsync.pools import ensure_pools

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    try:
        ensure_pools()
    except Exception:
        # The pages still serve; the status page names the missing pool and the command that creates it.
        log.exception("cxsync: could not create the Airflow pools")
    yield


app = FastAPI(title="cxsync", lifespan=lifespan)
