"""A local, faithful stand-in for the LivePerson and HelpDesk APIs (docs/sandbox.md).

Run it: `python -m cxsync_dev.sandbox --port 8765 --seed 1` (see `--help`). In tests: the `sandbox_server`
and `sandbox_factory` fixtures of `tests/sandbox/conftest.py`.

Layout:
- `core.py`    clock, fault settings, counters, the `Sandbox` holder, the fault/`Date` middleware;
- `app.py`     `create_app(sandbox)`: the FastAPI app with the admin API and every provider router;
- `admin.py`   `/_sandbox/...`: clock, counters, faults, switches, ground truth;
- `server.py`  `SandboxServer`: uvicorn on a loopback port in a background thread;
- `liveperson.py`, `helpdesk.py`  one module per provider.

A provider module exposes:
- `init_world(sandbox) -> None` sets `sandbox.<provider>` to its world, which has
  `ground_truth(at: datetime) -> list[dict]`;
- `build_router(sandbox) -> fastapi.APIRouter`;
- optionally `connection_uris(sandbox, host, port) -> dict[conn_id, dict]` (Airflow connection dicts),
  `add_cli_options(parser)` (its volume options; values land in `sandbox.options` by dest name) and
  `TEST_OPTIONS` (small volumes the test fixtures use by default).
"""
