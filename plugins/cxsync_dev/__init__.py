"""cxsync's development tools, apart from the runtime package `cxsync`: the sandbox (local stand-ins of the
provider APIs, `python -m cxsync_dev.sandbox`), the demo (`make demo`, `python -m cxsync_dev.demo`) and the demo's
local Airflow (`make airflow`, `python -m cxsync_dev.local_airflow`). Installed with the `dev` extra
(`pip install -e .[dev]`); a production image needs none of it.
"""
