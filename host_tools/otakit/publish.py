"""Lay a release repository out for a static web server, CDN or object store (docs/fleet.md).

`publish_static` copies everything a device or a user fetches: ``blobs/sha256/*`` (payloads,
encoded representations, SBOMs) first, then each product's keyring document
(``<product>/keyring``), then the ``<product>/<board>/<channel>/manifest`` files, then each
product's support statement (``<product>/support/*``), each file with an atomic replace, so a
device reading DEST while it runs never sees a manifest whose payload or keyring is not there yet.
`nginx_config` writes a server block for DEST.

A channel withheld by its threshold (`otakit.withhold`) is published as the previous release's
signed manifest, or, when the repository keeps none, its manifest is removed from DEST (404).

Invariants:
- Dot-files and dot-directories (``.otakit/`` policy and telemetry, temporary files) are never
  published.
- A blob is copied only after its content matches its name (SHA-256); a keyring document only
  after it parses; a manifest only after it parses and its payload (and SBOM) blobs are at DEST.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from otakit import withhold
from otakit.errors import ManifestError, OtakitError, RepoError
from otakit.manifest import parse_unverified
from otakit.repo import BLOB_DIR, Repository, sha256_file, write_atomic


@dataclass
class PublishReport:
    """What `publish_static` did."""

    manifests: int = 0
    keyrings: int = 0
    support_files: int = 0
    blobs_copied: int = 0
    blobs_kept: int = 0
    pruned: int = 0
    withheld: int = 0


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_static(repo: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                   prune: bool = False) -> PublishReport:
    """Copy ``repo`` to ``dest`` for static hosting.

    Raises:
        RepoError: ``repo`` is not a repository, a blob's content does not match its name
            (``HASH_MISMATCH``), or a manifest is unreadable or names a missing blob.
    """
    src = Repository(repo)
    if not src.root.is_dir():
        raise RepoError(f"no release repository at {repo}", reason="NO_REPO")
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    report = PublishReport()
    blob_dir = src.root / BLOB_DIR
    for blob in sorted(blob_dir.iterdir()) if blob_dir.is_dir() else []:
        if blob.name.startswith(".") or not blob.is_file():
            continue
        target = out / BLOB_DIR / blob.name
        if target.is_file() and target.stat().st_size == blob.stat().st_size:
            report.blobs_kept += 1
            continue
        if sha256_file(blob)[1] != blob.name:
            raise RepoError(f"{blob} does not match its name; run `otakit verify`",
                            reason="HASH_MISMATCH")
        _copy_atomic(blob, target)
        report.blobs_copied += 1
    _copy_keyrings(src, out, report)
    published = set()
    recs = withhold.records(src.root)
    for mpath in src.manifests():
        rel = mpath.relative_to(src.root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        where = withhold.where_of("/".join(rel.parts[:3]))
        if withhold.active(src.root, where, recs) is not None:  # withheld (otakit.withhold)
            prev = withhold.previous_manifest(src.root, where)
            if prev is None:  # nothing to offer: the static host answers 404
                (out / rel).unlink(missing_ok=True)
                report.withheld += 1
                continue
            mpath = prev
            report.withheld += 1
        data = mpath.read_bytes()
        try:
            body = parse_unverified(data).body
        except ManifestError as e:
            raise RepoError(f"{mpath} is unreadable ({e}); run `otakit verify`",
                            reason="BAD_REPO") from e
        for needed in [body.payload.path] + ([body.sbom["path"]] if body.sbom else []):
            if not (out / needed).is_file():
                raise RepoError(f"{rel} names {needed}, which is not in {repo}",
                                reason="MISSING_PAYLOAD")
        write_atomic(out / rel, data)
        published.add(rel)
        report.manifests += 1
    _copy_support(src, out, report)
    if prune:
        for old in Repository(out).manifests():
            if old.relative_to(out) not in published:
                old.unlink()
                report.pruned += 1
    return report


def _products(src: Repository) -> list[Path]:
    return sorted(d for d in src.root.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and d.name != BLOB_DIR.split("/")[0])


def _copy_keyrings(src: Repository, out: Path, report: PublishReport) -> None:
    from otakit.keyring import parse_unverified as parse_keyring  # noqa: PLC0415

    for product in _products(src):
        path = src.keyring_path(product.name)
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            parse_keyring(data)
        except OtakitError as e:
            raise RepoError(f"{path} is unreadable ({e}); run `otakit verify`",
                            reason="BAD_REPO") from e
        write_atomic(out / path.relative_to(src.root), data)
        report.keyrings += 1


def _copy_support(src: Repository, out: Path, report: PublishReport) -> None:
    for product in _products(src):
        d = product / "support"
        for f in sorted(d.iterdir()) if d.is_dir() else []:
            if f.name.startswith(".") or not f.is_file():
                continue
            _copy_atomic(f, out / f.relative_to(src.root))
            report.support_files += 1


def nginx_config(root: str | os.PathLike[str], port: int, *, host: str = "127.0.0.1",
                 run_dir: str | os.PathLike[str] | None = None) -> str:
    """A complete nginx.conf serving ``root`` on ``host:port`` as devices need it.

    ``run_dir`` (for tests and benchmarks) puts the pid file, logs and temp paths there and runs
    in the foreground, so an unprivileged nginx can run it: ``nginx -c FILE -p RUN_DIR``.
    """
    rd = Path(run_dir) if run_dir else None
    head = ""
    if rd is not None:
        head = (f"daemon off;\npid {rd}/nginx.pid;\nerror_log {rd}/error.log warn;\n"
                "worker_processes 1;\nworker_rlimit_nofile 8192;\n")
        if os.geteuid() == 0:  # workers would drop to "nobody", who cannot read a private tmp
            head += "user root root;\n"
    temps = "".join(f"    {name}_temp_path {rd}/{name};\n" for name in (
        "client_body", "proxy", "fastcgi", "uwsgi", "scgi")) if rd else ""
    log = f"    access_log {rd}/access.log;\n" if rd else ""
    return f"""{head}events {{ worker_connections 4096; }}
http {{
{temps}{log}    default_type application/octet-stream;
    sendfile on;
    gzip off;
    keepalive_timeout 30;
    server {{
        listen {host}:{port} backlog=4096;
        root {Path(root).resolve()};
        location ~ /\\. {{ deny all; }}
        location /blobs/ {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
        location ~ /manifest$ {{ add_header Cache-Control "max-age=60"; }}
    }}
}}
"""


__all__ = ["PublishReport", "nginx_config", "publish_static"]
