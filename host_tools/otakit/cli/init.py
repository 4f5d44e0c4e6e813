"""otakit CLI: ``init`` (write the project file ``otakit.toml``, `otakit.project`)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import project
from otakit.boards import available_boards
from otakit.errors import OtakitError


@click.command()
@click.option("--product", default="doorlock", show_default=True,
              help="The product name (the example app's is doorlock).")
@click.option("--board", "boards", multiple=True, type=click.Choice(available_boards()),
              help="A board of the product (repeatable; the first is the default --board) "
                   "[default: esp32].")
@click.option("--channel", default="stable", show_default=True, help="The release channel.")
@click.option("--repo", default="repo", show_default=True,
              help="The release repository directory.")
@click.option("--key", default="keys/release.pem", show_default=True,
              help="The signing key: a private key file (`otakit keygen --out keys` writes "
                   "keys/release.pem) or a pkcs11: URI (a key in an HSM).")
@click.option("--keyring", default="ota_keys.py", show_default=True,
              help="The device keyring module (`otakit key export` writes it).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True,
              help="The update URL devices fetch from (`otakit serve` listens on "
                   "127.0.0.1:8080 by default).")
@click.option("--ca", default="", help="The CA certificate (PEM) devices trust for an https URL.")
@click.option("--force", is_flag=True, help="Overwrite an existing project file.")
@click.pass_context
def init(ctx: click.Context, product: str, boards: tuple[str, ...], channel: str, repo: str,
         key: str, keyring: str, url: str, ca: str, force: bool) -> None:
    """Write the project file otakit.toml in this directory (or --project FILE).

    Every otakit command then takes --product, --board, --channel, --repo, --key, --keyring
    and --url from it; a flag overrides the file, an OTAKIT_* environment variable too.
    """
    where = ctx.obj.path if ctx.obj is not None and ctx.obj.path else Path(project.FILE_NAME)
    if where.exists() and not force:
        raise OtakitError(f"{where} exists; edit it, or pass --force to overwrite it",
                          reason="EXISTS")
    if not url.startswith(("http://", "https://")):
        raise OtakitError(f"--url {url!r} is not an http:// or https:// URL",
                          reason="BAD_ARGUMENT")
    if url.startswith("https://") and not ca:
        click.echo("otakit: warning: an https URL needs --ca (the CA certificate devices "
                   "trust)", err=True)
    settings = {"product": product, "boards": list(boards or ("esp32",)), "channel": channel,
                "repository": repo, "key": key, "keyring": keyring, "url": url, "ca": ca}
    try:
        where.write_text(project.render(settings))
    except OSError as e:
        raise OtakitError(f"cannot write {where}: {e.strerror or e}",
                          reason="BAD_PROJECT") from None
    click.echo(f"wrote {where}: product {product}, board {settings['boards'][0]}, channel "
               f"{channel}, repository {repo}, key {key}, update URL {url}")


COMMANDS = [init]
