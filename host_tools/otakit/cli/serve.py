"""otakit CLI: ``serve`` (serve a release repository read-only over HTTP/1.1)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from otakit import server
from otakit.connguard import HEADER_TIMEOUT, PER_CLIENT, SEND_TIMEOUT, ConnectionLimits
from otakit.errors import OtakitError, RepoError
from otakit.fleet import Fleet
from otakit.guard import RateLimiter, load_or_create_token
from otakit.telemetry import open_store


@click.command()
@click.option("--repo", required=True, type=click.Path(file_okay=False),
              help="Release repository directory to serve (read-only).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; loopback unless you say otherwise (0.0.0.0 = all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port; 0 picks a free one (printed at start).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True),
              help="PEM certificate (chain) to serve https; needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True),
              help="PEM private key of --tls-cert.")
@click.option("--access-log", default="-", show_default=True,
              help="Access log file (appended), or - for stdout.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="The admin token for /admin/ endpoints and the fleet dashboard "
              "(/.otakit/dashboard), created (mode 0600) at first start [default with "
              "--telemetry: ~/.config/otakit/admin-token; without either, no token and the "
              "admin endpoints answer 401].")
@click.option("--rate-limit", default=20.0, show_default=True, type=click.FloatRange(0),
              help="Requests per second per client address (bursts of twice that; over it: "
              "429); 0: no limit.")
@click.option("--max-client-connections", default=PER_CLIENT, show_default=True,
              type=click.IntRange(0), help="Open connections per client address; more are "
              "closed at once (raise it for a fleet behind one NAT); 0: no cap.")
@click.option("--header-timeout", default=HEADER_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1, 3600),
              help="Seconds a connection has to send a complete request head (from opening, or "
              "from its last response); then it is closed.")
@click.option("--send-timeout", default=SEND_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1, 3600),
              help="Seconds a client has to take each 64 KB of a response body; one that stops "
              "reading is closed (it sees a short body and resumes with a Range).")
@click.option("--telemetry", "telemetry_db", metavar="DB",
              help="Take device reports into DB: a SQLite file, or a postgresql:// URL "
              "(needs psycopg). Without it, reports are refused (404).")
@click.option("--retention-days", default=90, show_default=True, type=click.IntRange(1, 3650),
              help="Delete telemetry older than this.")
@click.option("--flag-threshold", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Flag a release when this share of the devices offered it failed or rolled "
              "back.")
@click.option("--flag-min-devices", default=5, show_default=True, type=click.IntRange(1),
              help="...once at least this many devices were offered it.")
@click.option("--flag-min-failed", default=3, show_default=True, type=click.IntRange(1),
              help="...and at least this many distinct devices failed or rolled back.")
@click.option("--flag-min-sources", default=2, show_default=True, type=click.IntRange(1),
              help="...reporting from at least this many networks (/24, /48).")
def serve(repo: str, host: str, port: int, tls_cert: str | None, tls_key: str | None,
          access_log: str, token_file: str | None, rate_limit: float,
          max_client_connections: int, header_timeout: float, send_timeout: float,
          **fleet_opts: object) -> None:
    """Serve a release repository over HTTP/1.1 until Ctrl-C or SIGTERM.

    GET and HEAD with exact Content-Length, Range (206/416) and ETag/If-None-Match (304).
    Prints `serving DIR on URL` once listening. With --telemetry it takes device reports at
    /.otakit/events; the admin token (--token-file) opens /admin/ and the fleet dashboard at
    /.otakit/dashboard. Without --telemetry or --token-file no token is read or written.
    With --telemetry, a channel given a withhold threshold (`otakit rollout threshold`) whose
    release crosses it is served as the previous release's manifest, or 503, from the next
    request on (recorded in REPO/.otakit/withheld.json).
    """
    if (tls_cert is None) != (tls_key is None):
        raise OtakitError("--tls-cert and --tls-key go together", reason="BAD_ARGUMENT")
    ctx = server.tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    token_path = Path(token_file) if token_file else (
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "otakit"
        / "admin-token") if fleet_opts["telemetry_db"] else None
    if not Path(repo).is_dir():
        raise RepoError(f"not a directory: {repo}", reason="NO_REPO")
    token, created = load_or_create_token(token_path) if token_path else (None, False)

    def announce(url: str) -> None:
        click.echo(f"serving {repo} on {url}")
        if token_path is not None:
            click.echo(f"admin token {'created in' if created else 'in'} {token_path} (for "
                       f"{url}admin/ and {url}.otakit/dashboard)")
        sys.stdout.flush()  # tests and the demo read the port from this line

    with ExitStack() as stack:
        log = sys.stdout if access_log == "-" else stack.enter_context(
            open(access_log, "a", encoding="utf-8"))  # noqa: SIM115
        fleet = _fleet(stack, fleet_opts)
        server.run(repo, host=host, port=port, ssl_context=ctx, access_log=log,
                   on_start=announce, admin_token=token, fleet=fleet,
                   rate=RateLimiter(rate=rate_limit, burst=max(1, round(2 * rate_limit))),
                   limits=ConnectionLimits(max_client_connections, send_timeout=send_timeout),
                   header_timeout=header_timeout)


def _fleet(stack: ExitStack, o: dict[str, object]) -> Fleet:
    store = None
    if o["telemetry_db"]:
        days = int(o["retention_days"])  # type: ignore[call-overload]
        store = open_store(str(o["telemetry_db"]), days)
        stack.callback(store.close)
    return Fleet(store=store, threshold=float(o["flag_threshold"]),  # type: ignore[arg-type]
                 min_devices=int(o["flag_min_devices"]),  # type: ignore[call-overload]
                 min_failed=int(o["flag_min_failed"]),  # type: ignore[call-overload]
                 min_sources=int(o["flag_min_sources"]))  # type: ignore[call-overload]


COMMANDS = [serve]
