"""LivePerson hook (connection type `liveperson`). Thin until the LivePerson pipeline issue lands."""

from __future__ import annotations

from airflow.sdk import BaseHook


class LivePersonHook(BaseHook):
    conn_name_attr = "liveperson_conn_id"
    default_conn_name = "liveperson_default"
    conn_type = "liveperson"
    hook_name = "LivePerson"

    def __init__(self, liveperson_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.liveperson_conn_id = liveperson_conn_id

    def test_connection(self) -> tuple[bool, str]:
        return False, "not implemented yet for liveperson: the LivePerson hook has no connection test yet"
