"""Airflow provider registration, read by Airflow through the `apache_airflow_provider` entry point.

One connection type per provider of the registry. Connection form fields are declared as data (`conn-fields`,
`ui-field-behaviour`, in each provider's declaration module), the Airflow 3.2+ way, so the UI shows them without
importing the hooks.
"""

from __future__ import annotations

from typing import Any

from cxsync import __version__


def connection_types() -> list[dict[str, Any]]:
    from cxsync import registry

    return [
        {
            "connection-type": spec.conn_type,
            "hook-class-name": spec.hook_class_name,
            "hook-name": spec.display_name,
            **(registry.connection_form(spec.name) or {}),
        }
        for spec in registry.PROVIDERS.values()
    ]


def get_provider_info() -> dict[str, Any]:
    from cxsync import registry

    specs = list(registry.PROVIDERS.values())
    names = " and ".join(spec.display_name for spec in specs)
    return {
        "package-name": "cxsync",
        "name": "cxsync",
        "description": f"Contact-center QA integrations: {names} conversations into a warehouse.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": spec.display_name, "external-doc-url": spec.doc_url, "tags": ["service"]}
            for spec in specs
        ],
        "hooks": [{"integration-name": spec.display_name, "python-modules": [spec.hook_module]} for spec in specs],
        "connection-types": connection_types(),
    }
