"""otakit CLI: ``release`` (check an app image, sign its manifest, publish both; or, with
``--digest-out`` / ``--signature-in``, sign it detached: `otakit.cli._detached`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit import rollout
from otakit.boards import load_board
from otakit.cli._detached import detached_options, digest_out_given
from otakit.cli._keyfile import load_signing_key, passphrase_file_option
from otakit.contentkey import load_key_file
from otakit.errors import OtakitError
from otakit.repo import DEFAULT_EXPIRY, ReleaseRequest, Repository, parse_expiry

SEVERITIES = ("low", "medium", "high", "critical")
# --risk is shown to the user as the reason to update (ETSI EN 303 645 5.3-11): a sentence,
# at least RISK_MIN_WORDS words with a letter and RISK_MIN_CHARS characters (docs/release.md).
RISK_MIN_WORDS = 3
RISK_MIN_CHARS = 20


def check_risk(risk: str) -> str:
    """``risk`` stripped, if it reads as a sentence a user can act on.

    Raises:
        OtakitError: fewer than `RISK_MIN_WORDS` words or `RISK_MIN_CHARS` characters
            (``BAD_RISK``).
    """
    text = " ".join(risk.split())
    words = [w for w in text.split(" ") if any(c.isalpha() for c in w)]
    if len(words) < RISK_MIN_WORDS or len(text) < RISK_MIN_CHARS:
        raise OtakitError(f"--risk {text!r}: say in a sentence what the update fixes, for the "
                          f"user (at least {RISK_MIN_WORDS} words and {RISK_MIN_CHARS} "
                          "characters, e.g. 'someone nearby could unlock the door')",
                          reason="BAD_RISK")
    return text


def _expiry(o: dict, now: int) -> int | None:
    if o["no_expiry"]:
        if o["expires"]:
            raise OtakitError("--expires and --no-expiry contradict each other",
                              reason="BAD_ARGUMENT")
        click.echo("otakit: warning: --no-expiry: this manifest never expires, so a replay of it "
                   "stays valid forever; prefer --expires and `otakit refresh`", err=True)
        return None
    return parse_expiry(o["expires"], now) if o["expires"] else now + DEFAULT_EXPIRY


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"[0-9]+", version.split("+")[0].split("-")[0]))


def _warn_version_down(repo: Repository, req: ReleaseRequest) -> None:
    cur = repo.current(req.product, req.board.name, req.channel)
    if cur is None or req.sequence <= cur.sequence:
        return
    new, old = _version_key(req.version), _version_key(cur.version)
    if new and old and new < old:
        click.echo(f"otakit: warning: version {req.version} is below the published "
                   f"{cur.version} while sequence {req.sequence} is above {cur.sequence}: "
                   "devices will install it as the newer release", err=True)


def _request(o: dict, now: int) -> ReleaseRequest:
    given = (bool(o["security"]), bool(o["severity"]), bool(o["risk"] and o["risk"].strip()))
    if any(given) and not all(given):
        raise OtakitError("a security update needs --security, --severity and --risk (what it "
                          "fixes, in plain words); they go together", reason="BAD_ARGUMENT")
    security = ({"severity": o["severity"], "risk": check_risk(str(o["risk"]))}
                if o["security"] else None)
    disruption = ({"reboot": True, "seconds": o["disruption_seconds"]}
                  if o["disruption_seconds"] is not None else None)
    staged = rollout.initial_rollout(Path(str(o["repo"])),
                                     (o["product"], o["board"], o["channel"]), o["sequence"],
                                     o["rollout"], bool(o["security"]), bool(o["skip_staging"]))
    return ReleaseRequest(
        product=o["product"], board=load_board(o["board"]), channel=o["channel"],
        version=o["version"], sequence=o["sequence"], security_version=o["security_version"],
        expires=_expiry(o, now), notes=o["notes"],
        support_end=o["support_end"], security=security, disruption=disruption, rollout=staged,
        deflate="deflate" in o["encoding"], wbits=o["wbits"],  # type: ignore[arg-type]
        delta_bases=tuple(Path(str(p)).read_bytes() for p in o["delta_base"]),
        encrypt_key=load_key_file(str(o["encrypt_key"])) if o["encrypt_key"] else None)


@click.command()
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="Private signing key (PEM); passphrase from $OTAKIT_KEY_PASSPHRASE or prompt. "
              "With --digest-out/--signature-in: the public key will do.")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True, help="Product name, [a-z0-9._-]{1,32}.")
@click.option("--board", required=True, help="Board definition name (boards/<BOARD>).")
@click.option("--version", "version", help="Human version, e.g. 1.2.0.  [required]")
@click.option("--sequence", type=click.IntRange(1, 2**31 - 1),
              help="Monotonic release number; must exceed the channel's current one.  "
              "[required]")
@click.option("--security-version", type=click.IntRange(0, 2**31 - 1),
              help="Anti-rollback floor [default: the channel's current, or 0].")
@click.option("--channel", default="stable", show_default=True)
@click.option("--expires", help="Duration (90d, 12h, 2w), ISO date/datetime, or Unix seconds "
              "[default: 90 days after signing; keep the channel fresh with `otakit refresh`].")
@click.option("--no-expiry", is_flag=True,
              help="Write no expiry (a replay of the manifest then stays valid forever).")
@click.option("--notes", help="Release notes shown to the user (≤ 1024 characters).")
@click.option("--support-end", help="End of the support period, YYYY-MM-DD (required on a "
              "channel's first release, inherited after, never shortened).")
@click.option("--security", is_flag=True, help="Mark as a security update.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Security update severity.")
@click.option("--risk", help="What the security update fixes, in plain words for the user "
              "(≤ 512 characters); required with --security.")
@click.option("--disruption-seconds", type=click.IntRange(0, 86400),
              help="Expected downtime, announced to the user.")
@click.option("--encoding", multiple=True, type=click.Choice(["raw", "deflate"]),
              default=("raw",), show_default=True,
              help="Also offer the image DEFLATE-compressed (repeatable; raw is always offered).")
@click.option("--wbits", type=click.IntRange(9, 15), default=12, show_default=True,
              help="DEFLATE window of encoded payloads: the device needs 2**WBITS bytes of RAM.")
@click.option("--delta-base", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An app image devices may be running: also offer a patch from it "
                   "(repeatable; devices running anything else take the full image).")
@click.option("--encrypt-key", type=click.Path(dir_okay=False),
              help="A content key file (`otakit key content`): publish the payload (and its "
              "representations) encrypted with it, not in the clear (docs/security.md).")
@click.option("--rollout", type=click.IntRange(0, 100),
              help="Stage the release: offer it to this percentage of devices first "
              "[default: the channel's policy, see `otakit rollout policy`].")
@click.option("--skip-staging", is_flag=True,
              help="A security release (--security) goes to every device at once, whatever "
              "the channel's staging policy.")
@click.option("--sbom", is_flag=True,
              help="Attach a CycloneDX SBOM (stored beside the payload, bound by hash).")
@click.option("--frozen", "frozen_dir", type=click.Path(file_okay=False, exists=True),
              help="With --sbom: the directory of the modules frozen into the image (hashed "
              "into the SBOM) [default: the agent shipped with otakit].")
@click.argument("app_image", required=False, type=click.Path(exists=True, dir_okay=False))
@passphrase_file_option
@json_option
@detached_options
def release(**o: object) -> None:
    """Check APP_IMAGE, sign a manifest and publish both into the repository.

    APP_IMAGE is the app image (.app-bin / micropython.bin), never a full firmware.bin.

    Detached signing: --digest-out FILE (with --key the public key) writes the 32 bytes to sign
    and keeps the release pending; `otakit release --signature-in SIG --key PUB --repo R
    --product P --board B [--channel C]` publishes it (docs/release.md).
    """
    for name, flag in (("version", "--version"), ("sequence", "--sequence"),
                       ("app_image", "APP_IMAGE")):
        if o[name] is None:
            raise click.UsageError(f"Missing {'argument' if name == 'app_image' else 'option'} "
                                   f"'{flag}'.")
    now = int(time.time())
    req = _request(o, now)
    key = load_signing_key(str(o["key_file"]))
    image = Path(str(o["app_image"])).read_bytes()
    sbom = None
    if o["sbom"]:
        from otakit.sbom import make_sbom  # noqa: PLC0415

        sbom = make_sbom(image, req.board, req.product, req.version,
                         Path(str(o["frozen_dir"])) if o["frozen_dir"] else None, now)
    repo = Repository(str(o["repo"]))
    _warn_version_down(repo, req)
    res = repo.publish(req, image, key, now, sbom=sbom)
    b = res.body
    pending = digest_out_given()
    if o["as_json"]:
        echo_json({"product": b.product, "board": b.board, "channel": b.channel,
                   "version": b.version, "sequence": b.sequence,
                   "security_version": b.security_version, "revision": b.revision,
                   "min_keyring": b.required_keyring, "expires": b.expires,
                   "key_id": key.key_id_hex, "manifest": str(res.manifest_path),
                   "manifest_size": len(res.manifest), "payload": str(res.payload_path),
                   "payload_size": b.payload.size,
                   "sbom": str(res.sbom_path) if res.sbom_path is not None else None,
                   "rollout": b.rollout,
                   "payloads": [{"encoding": r.encoding, "path": str(res.blobs[r.sha256]),
                                 "size": r.size, "base_sha256": r.base_sha256}
                                for r in b.payloads],
                   "pending": pending})
        return
    click.echo(f"{'prepared' if pending else 'released'} {b.product}/{b.board}/{b.channel} "
               f"version {b.version} sequence {b.sequence} (security version "
               f"{b.security_version}), " + ("to be signed by " if pending else "signed by ")
               + key.key_id_hex)
    expiry = ("never (--no-expiry)" if b.expires is None else
              time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(b.expires)))
    click.echo(f"  revision: {b.revision} (min_keyring {b.required_keyring}), expires {expiry}")
    if pending:
        return
    click.echo(f"  manifest: {res.manifest_path} ({len(res.manifest)} bytes)")
    click.echo(f"  payload:  {res.payload_path} ({b.payload.size} bytes)")
    if res.sbom_path is not None:
        click.echo(f"  sbom:     {res.sbom_path} (CycloneDX JSON)")
    if b.rollout is not None:
        click.echo(f"  rollout:  staged at {b.rollout['percent']}% (salt {b.rollout['salt']})")
    for r in b.payloads:
        what = r.encoding if r.encoding != "delta" else f"delta from {(r.base_sha256 or '')[:12]}"
        click.echo(f"  {what}: {res.blobs[r.sha256]} ({r.size} bytes, "
                   f"{r.size / b.payload.size:.3f} of the image)")


COMMANDS = [release]
