"""The Airflow plugin `cxsync`, registered through the package's `airflow.plugins` entry point."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cxsync.ui.app import app


class CxsyncPlugin(AirflowPlugin):
    name = "cxsync"
    fastapi_apps = [{"app": app, "url_prefix": "/cxsync", "name": "cxsync"}]
