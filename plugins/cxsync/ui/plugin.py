"""The Airflow plugin `cxsync`, registered through the package's `airflow.plugins` entry point: its FastAPI
app under /cxsync/ and an entry of its own in Airflow's left-hand navigation (not one of many under Browse)
that opens the integrations page."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cxsync.ui.app import app


class CxsyncPlugin(AirflowPlugin):
    name = "cxsync"
    fastapi_apps = [{"app": app, "url_prefix": "/cxsync", "name": "cxsync"}]
    external_views = [
        {
            "name": "cxsync",
            "href": "/cxsync/",
            "destination": "nav",
            "url_route": "cxsync",
            # a top-level entry: the pages a QA team lives in, one click away
            "nav_top_level": True,
        }
    ]
