"""otakit CLI: ``serve`` (serve a release repository read-only over HTTP/1.1)."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import click

from otakit import server
from otakit.errors import OtakitError


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
def serve(repo: str, host: str, port: int, tls_cert: str | None, tls_key: str | None,
          access_log: str) -> None:
    """Serve a release repository over HTTP/1.1 until Ctrl-C or SIGTERM.

    GET and HEAD with exact Content-Length, Range (206/416) and ETag/If-None-Match (304).
    Prints `serving DIR on URL` once listening.
    """
    if (tls_cert is None) != (tls_key is None):
        raise OtakitError("--tls-cert and --tls-key go together", reason="BAD_ARGUMENT")
    ctx = server.tls_context(tls_cert, tls_key) if tls_cert and tls_key else None

    def announce(url: str) -> None:
        click.echo(f"serving {repo} on {url}")
        sys.stdout.flush()  # tests and the demo read the port from this line

    with ExitStack() as stack:
        log = sys.stdout if access_log == "-" else stack.enter_context(
            open(access_log, "a", encoding="utf-8"))  # noqa: SIM115
        server.run(repo, host=host, port=port, ssl_context=ctx, access_log=log,
                   on_start=announce)


COMMANDS = [serve]
