"""`python -m cxsync_dev.sandbox`: serve the sandbox LivePerson and HelpDesk on one loopback port.

Prints the Airflow connections to use (as `export AIRFLOW_CONN_...='...'` lines), serves until SIGTERM or
SIGINT (Ctrl-C), then stops cleanly. `--help` lists every option.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from cxsync_dev.sandbox.core import FaultSettings, Sandbox, parse_instant


def fault_prefixes() -> dict[str, str]:
    """provider -> the prefix of its fault flags (`--lp-p-429`): `ProviderSpec.sandbox_prefix`."""
    from cxsync.registry import PROVIDERS

    return {name: spec.sandbox_prefix for name, spec in PROVIDERS.items() if spec.sandbox and spec.sandbox_prefix}


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _latency(text: str) -> tuple[float, float]:
    """`300`, `300±100` or `300+-100` (milliseconds): a base answer delay and its jitter."""
    base, _, jitter = text.replace("+-", "±").partition("±")
    try:
        values = (float(base), float(jitter) if jitter.strip() else 0.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use MS or MS±JITTER (or MS+-JITTER), e.g. 300±100") from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text}: the delay and its jitter must be >= 0 ms")
    return values


def _instant(text: str) -> str:
    try:
        parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2025-03-14T09:30:00Z") from None
    return text


def _switch(text: str) -> tuple[str, str, str, Any]:
    try:
        target, value = text.split("=", 1)
        provider, credential, name = target.split(":", 2)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use PROVIDER:CREDENTIAL:NAME=VALUE, e.g. liveperson:my-app-key:users_permission=false"
        ) from None
    lowered = value.strip().lower()
    parsed: Any = {"true": True, "false": False}.get(lowered, value)
    return provider, credential, name, parsed


def build_parser() -> argparse.ArgumentParser:
    from cxsync_dev.sandbox.app import provider_modules

    parser = argparse.ArgumentParser(
        prog="python -m cxsync_dev.sandbox",
        description="Local stand-ins for the LivePerson and HelpDesk APIs on one loopback port, with seeded data, "
        "a frozen clock you move with POST /_sandbox/clock, and injectable faults. Prints the Airflow "
        "connections to use; stops cleanly on SIGTERM or Ctrl-C.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; a non-loopback address needs --allow-non-loopback (the sandbox's credentials "
        "are public test values and its admin API mints tokens)",
    )
    server.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="listen on the non-loopback --host given, e.g. inside a container; never on a shared network",
    )
    server.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    server.add_argument("--seed", default="1", help="data seed: the same seed gives the same data")
    server.add_argument(
        "--now",
        type=_instant,
        default=None,
        help="the sandbox clock's start (ISO 8601); default: the real UTC time floored to the minute. The clock is "
        "frozen: it moves only with POST /_sandbox/clock {'advance': '1d'}",
    )
    server.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])

    for module in provider_modules().values():
        add = getattr(module, "add_cli_options", None)
        if add is not None:
            add(parser)

    for provider, p in fault_prefixes().items():
        group = parser.add_argument_group(
            f"{provider} faults and limits", "probabilities are 0..1, drawn from a generator seeded by --seed"
        )
        group.add_argument(
            f"--{p}-rate-limit",
            type=_positive,
            default=None,
            metavar="RPS",
            help="requests per second before answering 429 (default: unlimited)",
        )
        group.add_argument(
            f"--{p}-latency",
            type=_latency,
            default=(0.0, 0.0),
            metavar="MS[±JITTER]",
            help="delay every answer by MS milliseconds, plus or minus a uniform JITTER (e.g. 300±100, or 300+-100), "
            "without holding other answers up",
        )
        group.add_argument(f"--{p}-no-retry-after", action="store_true", help="answer 429 without a Retry-After header")
        group.add_argument(
            f"--{p}-p-429", type=_probability, default=0.0, help="probability of a 429 whatever the request rate"
        )
        group.add_argument(f"--{p}-p-5xx", type=_probability, default=0.0, help="probability of a 500/503 answer")
        group.add_argument(
            f"--{p}-p-reset", type=_probability, default=0.0, help="probability of resetting the TCP connection"
        )
        group.add_argument(
            f"--{p}-p-slow", type=_probability, default=0.0, help="probability of answering after --slow-seconds"
        )
        group.add_argument(
            f"--{p}-slow-seconds", type=float, default=5.0, help="delay of a slow answer (above the client's timeout)"
        )
        group.add_argument(
            f"--{p}-p-truncate", type=_probability, default=0.0, help="probability of a JSON body cut in half"
        )
        group.add_argument(
            f"--{p}-visibility-lag",
            type=float,
            default=0.0,
            metavar="MINUTES",
            help="records become listable (and readable by id) this many minutes after their update time",
        )
        group.add_argument(
            f"--{p}-backlog-from",
            type=_instant,
            default=None,
            metavar="ISO",
            help="one-off backlog: records created from this time (to --backlog-until) appear late",
        )
        group.add_argument(
            f"--{p}-backlog-until", type=_instant, default=None, metavar="ISO", help="end of the one-off backlog"
        )
        group.add_argument(
            f"--{p}-backlog-hours",
            type=float,
            default=0.0,
            help="the backlog's records appear this many hours after --backlog-until, all at once",
        )
        if provider == "liveperson":
            group.add_argument(
                "--lp-p-partial",
                type=_probability,
                default=0.0,
                help="probability of a msgHist page with shardsStatusResult.partialResult true (records missing)",
            )
            group.add_argument(
                "--lp-p-is-partial",
                type=_probability,
                default=0.0,
                help="probability, per record, of info.isPartial true with messageRecords cut (by-id is always whole)",
            )

    switches = parser.add_argument_group("switches")
    switches.add_argument(
        "--lp-revoke-users",
        action="append",
        default=[],
        metavar="APP_KEY_OR_CLIENT_ID",
        help="remove the Users permission from this LivePerson credential (403 on Users, groups, skills); the "
        "built-in sandbox_liveperson_nousers key never has it. Repeatable",
    )
    switches.add_argument(
        "--switch",
        action="append",
        default=[],
        type=_switch,
        metavar="PROVIDER:CREDENTIAL:NAME=VALUE",
        help="any per-credential switch, e.g. liveperson:sandbox-lp-app-key:msghist_permission=false. Repeatable; "
        "also settable at runtime with PUT /_sandbox/switches/{provider}/{credential}",
    )
    return parser


def faults_from_args(args: argparse.Namespace) -> dict[str, FaultSettings]:
    out: dict[str, FaultSettings] = {}
    for provider, p in fault_prefixes().items():
        values = vars(args)
        settings = FaultSettings(
            rate_limit_rps=values[f"{p}_rate_limit"],
            retry_after=not values[f"{p}_no_retry_after"],
            p_429=values[f"{p}_p_429"],
            p_5xx=values[f"{p}_p_5xx"],
            p_reset=values[f"{p}_p_reset"],
            p_slow=values[f"{p}_p_slow"],
            slow_seconds=values[f"{p}_slow_seconds"],
            p_truncate=values[f"{p}_p_truncate"],
            p_partial=values.get(f"{p}_p_partial", 0.0),
            p_is_partial=values.get(f"{p}_p_is_partial", 0.0),
            visibility_lag_minutes=values.get(f"{p}_visibility_lag", 0.0),
            backlog_from=values.get(f"{p}_backlog_from"),
            backlog_until=values.get(f"{p}_backlog_until"),
            backlog_hours=values.get(f"{p}_backlog_hours", 0.0),
            latency_ms=values[f"{p}_latency"][0],
            latency_jitter_ms=values[f"{p}_latency"][1],
        )
        settings.validate()
        out[provider] = settings
    return out


def sandbox_from_args(args: argparse.Namespace) -> Sandbox:
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    sandbox = Sandbox(seed=seed, now=args.now, options=dict(vars(args)), faults=faults_from_args(args))
    return sandbox


class QuietExitServer(uvicorn.Server):
    """uvicorn's server, except that a stop signal ends it with exit status 0 (uvicorn re-raises the signal
    after its graceful shutdown, which would kill the process with it instead of returning)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C stops at once
        self.should_exit = True


def main(argv: list[str] | None = None) -> int:
    from cxsync.http.endpoints import is_loopback
    from cxsync_dev.sandbox.app import create_app
    from cxsync_dev.sandbox.server import build_connection_uris, uvicorn_config

    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.allow_non_loopback:
        parser.error(
            f"--host {args.host} is not a loopback address: the sandbox serves public test credentials and an "
            "admin API that mints tokens to anyone who reaches it. Keep the default 127.0.0.1, or add "
            "--allow-non-loopback if you really mean it (a container, never a shared network)"
        )
    try:
        sandbox = sandbox_from_args(args)
        app = create_app(sandbox)
    except ValueError as exc:
        parser.error(str(exc))
    for credential in args.lp_revoke_users:
        sandbox.set_switch("liveperson", credential, "users_permission", False)
    for provider, credential, name, value in args.switch:
        sandbox.set_switch(provider, credential, name, value)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another --port", file=sys.stderr)
        return 2
    # Listening before the connections are printed: a client that reads them and connects at once is queued in
    # the backlog while the server starts, never refused.
    sock.listen(2048)
    port = sock.getsockname()[1]
    print(
        f"# cxsync sandbox on http://{args.host}:{port} (seed {sandbox.seed}, clock {sandbox.clock.now().isoformat()})"
    )
    print(f"# admin API: http://{args.host}:{port}/_sandbox (docs: /_sandbox/docs)")
    print(
        "# SANDBOX ONLY: the credentials below are public test values of this local stand-in, not LivePerson's "
        "or HelpDesk's; its connection ids start with `sandbox_`. Never use them for production."
    )
    print("# Airflow connections:")
    for conn_id, conn in build_connection_uris(sandbox, args.host, port).items():
        print(f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn, sort_keys=True))}")
    sys.stdout.flush()

    server = QuietExitServer(uvicorn_config(app, log_level=args.log_level))
    stop_on = (signal.SIGTERM, signal.SIGINT)
    for sig in stop_on:
        signal.signal(sig, server.request_exit)
    # On SIGTERM/SIGINT the server stops accepting, finishes open requests (a few seconds at most), returns.
    server.run(sockets=[sock])
    sock.close()
    print("# cxsync sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
