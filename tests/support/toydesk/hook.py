"""ToyDesk's hook: the connection to its API (base URL and token) and one call per endpoint."""

from __future__ import annotations

from typing import Any

import requests
from airflow.sdk import BaseHook


class ToyDeskHook(BaseHook):
    conn_name_attr = "toydesk_conn_id"
    conn_type = "toydesk"
    hook_name = "ToyDesk"

    def __init__(self, conn_id: str) -> None:
        super().__init__()
        conn = self.get_connection(conn_id)
        self.base_url = f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {conn.password}"

    def get(self, path: str, **params: Any) -> Any:
        answer = self.session.get(self.base_url + path, params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def close(self) -> None:
        self.session.close()
