"""HelpDesk hook (connection type `helpdesk`). Thin until the HelpDesk pipeline issue lands."""

from __future__ import annotations

from airflow.sdk import BaseHook


class HelpDeskHook(BaseHook):
    conn_name_attr = "helpdesk_conn_id"
    default_conn_name = "helpdesk_default"
    conn_type = "helpdesk"
    hook_name = "HelpDesk"

    def __init__(self, helpdesk_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.helpdesk_conn_id = helpdesk_conn_id

    def test_connection(self) -> tuple[bool, str]:
        return False, "not implemented yet for helpdesk: the HelpDesk hook has no connection test yet"
