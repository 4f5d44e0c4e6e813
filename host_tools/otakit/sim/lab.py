"""One update scenario on the simulated board: keys, a release repository served on loopback, and
a flashed board running the real agent.

`make demo`, the agent's end-to-end tests and the benchmarks all build their scenarios from this,
so there is one way to stand up a signed release and a device that updates from it.

Invariants: everything lives under one work directory; the server runs only inside the `Lab`
context (``with Lab(...) as lab``) and is stopped on exit. The board's app directory
``lab.device_dir`` holds what a real board would have: the agent, the example app (``doorlock``) and
the lab's own keyring module ``ota_keys`` compiled to .mpy (as if frozen), and boot.py and main.py
(links to ``firmware/``). With ``frozen=True`` the board runs those .mpy modules in place from a
ROMFS image (the simulator's frozen-code mode), as a product board runs frozen code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import ssl
from pathlib import Path
from types import TracebackType

from otakit.boards import Board, load_board
from otakit.errors import OtakitError
from otakit.fleet import Fleet
from otakit.keys import RSA_PSS, PrivateKey, export_keyring, generate_key
from otakit.manifest import sign_manifest
from otakit.manifest_body import ManifestBody
from otakit.mpy import compile_to_mpy
from otakit.paths import FIRMWARE_DIR
from otakit.repo import PublishResult, ReleaseRequest, Repository
from otakit.server import serve_in_thread
from otakit.sim.faults import Faults
from otakit.sim.flash import create_flash
from otakit.sim.inspect import FlashState, read_state
from otakit.sim.provision import PROVISION_ENV, PROVISION_SCRIPT
from otakit.sim.runner import RunResult, run

PRODUCT = "doorlock"
SUPPORT_END = "2031-12-31"

# One check and install by the agent, no reboot into the new release (the heap measurement);
# then the interned names (qstr pools, see docs/simulator.md).
_INSTALL_ONCE = """\
import ota, json, micropython
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], **CONFIG))
print("INSTALLED" if agent.update_sync() else "FAILED " + json.dumps(agent.status()))
micropython.qstr_info()
"""


class _LogBuffer(io.StringIO):
    """The server's access log, kept for assertions on what the device asked for."""

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far."""
        out = []
        for line in self.getvalue().splitlines():
            parts = line.split()
            if len(parts) >= 5:
                out.append((parts[2], parts[3], int(parts[4])))
        return out


class Lab:
    """Keys, a repository, a server and one simulated board in ``work``.

    Args:
        work: the work directory (created).
        board: the board definition name.
        alg: the signing algorithm of the lab's key.
        channel: the release channel the device follows.
        roots: root keys to bake into the firmware (docs/format.md §7); with roots the lab's
            release key is still baked as KEYS (trusted until a keyring document is accepted).
        threshold: root signatures a keyring document needs.
        env: the firmware's environment ("production" or "development").
        ssl_context: serve the repository over https with this context.
        fleet: telemetry ingest and dashboard for the lab's server (`otakit.fleet`).
        admin_token: the lab server's admin token (`otakit.guard`: /admin/, the dashboard).
        frozen: boot the board in the simulator's frozen-code mode: the agent, the app and the
            keyring executed in place from a ROMFS image outside the heap budget, as on a
            product board with them frozen (`otakit.sim.runner.run`; docs/simulator.md).
    """

    def __init__(self, work: str | Path, *, board: str = "esp32", alg: str = RSA_PSS,
                 channel: str = "stable", roots: list[PrivateKey] | None = None,
                 threshold: int = 1, env: str = "production",
                 ssl_context: ssl.SSLContext | None = None, fleet: Fleet | None = None,
                 admin_token: str | None = None, frozen: bool = False) -> None:
        self.work = Path(work)
        self.frozen = frozen
        self.work.mkdir(parents=True, exist_ok=True)
        self.board: Board = load_board(board)
        self.channel = channel
        self.key: PrivateKey = generate_key(alg)
        self.device_dir = self.work / "device"
        self.device_dir.mkdir(exist_ok=True)
        # The agent and the keyring as a real board has them: compiled (frozen), not compiled
        # on the device heap.
        self.roots = list(roots or [])
        self.bake_keys([self.key], self.roots, threshold, env)
        compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), self.device_dir / "ota")
        compile_to_mpy([FIRMWARE_DIR / "doorlock.py", FIRMWARE_DIR / "lockui.py"],
                       self.device_dir)
        for name in ("boot.py", "main.py"):
            link = self.device_dir / name
            if not link.exists():
                link.symlink_to(FIRMWARE_DIR / name)
        self.repo = Repository(self.work / "repo")
        (self.work / "repo").mkdir(exist_ok=True)
        self.flash_path = self.work / "flash.img"
        self.faults = Faults()
        self.ssl_context = ssl_context
        self.access_log = _LogBuffer()
        self.url = ""
        self.fleet = fleet
        self.admin_token = admin_token
        self._stack = contextlib.ExitStack()
        self._revision = 0  # the highest manifest revision the lab signed

    def __enter__(self) -> Lab:
        self.url = self._stack.enter_context(
            serve_in_thread(self.repo.root, access_log=self.access_log,
                            middlewares=[self.faults.middleware],
                            ssl_context=self.ssl_context, fleet=self.fleet,
                            admin_token=self.admin_token))
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def bake_keys(self, keys: list[PrivateKey], roots: list[PrivateKey] = (),  # type: ignore[assignment]
                  threshold: int = 1, env: str = "production",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """(Re)write the board's frozen keyring module ``ota_keys`` (a firmware change)."""
        keyring = self.work / "ota_keys.py"
        keyring.write_text(export_keyring(keys, roots, threshold, env))
        compile_to_mpy([keyring], self.device_dir)

    # --- host side -------------------------------------------------------------------------
    def sign_keyring(self, keys: list[PrivateKey], version: int, *,
                     roots: list[PrivateKey] | None = None, env: str = "production",
                     expires: int | None = None, publish: bool = True) -> bytes:
        """A keyring document trusting ``keys``, signed by ``roots`` (default: the lab's)."""
        import time

        from otakit.keyring import new_body, sign_keyring
        now = int(time.time())
        body = new_body(PRODUCT, [k.public_key() for k in keys], version, now,
                        expires if expires is not None else now + 86400, env)
        doc = sign_keyring(body, self.roots if roots is None else roots)
        if publish:
            path = self.repo.keyring_path(PRODUCT)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(doc)  # by hand: tests replay old documents too
        return doc

    def publish(self, image: bytes, version: str, sequence: int, *,
                security_version: int | None = None, key: PrivateKey | None = None,
                **kw: object) -> PublishResult:
        """Sign (with ``key``, default the lab's) and publish ``image`` to the lab's channel
        (see `ReleaseRequest`)."""
        req = ReleaseRequest(product=PRODUCT, board=self.board, channel=self.channel,
                             version=version, sequence=sequence,
                             security_version=security_version,
                             support_end=kw.pop("support_end", SUPPORT_END),  # type: ignore[arg-type]
                             **kw)  # type: ignore[arg-type]
        res = self.repo.publish(req, image, key or self.key)
        rev = revision_of(res.body)
        if rev:  # the host wrote it
            self._revision = max(self._revision, rev)
            return res
        # A host that writes no revision yet: the lab adds the channel's next one and re-signs.
        body = dataclasses.replace(res.body, extra={**res.body.extra,
                                                    "revision": self.next_revision()})
        manifest = sign_manifest(body, key or self.key)
        res.manifest_path.write_bytes(manifest)
        return dataclasses.replace(res, body=body, manifest=manifest)

    def next_revision(self, channel: str | None = None) -> int:
        """The revision for the next manifest the lab signs for ``channel`` (default the lab's):
        above every one it signed and the one published (docs/format.md §2)."""
        try:
            cur = self.repo.current(PRODUCT, self.board.name, channel or self.channel)
        except OtakitError:  # a test published something unreadable there
            cur = None
        self._revision = max(self._revision, revision_of(cur)) + 1
        return self._revision

    @property
    def manifest_path(self) -> Path:
        """The channel's manifest file in the repository."""
        return self.repo.manifest_path(PRODUCT, self.board.name, self.channel)

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the server has seen."""
        return self.access_log.requests()

    # --- device side -----------------------------------------------------------------------
    def flash(self, image: bytes, *, uid: bytes | None = None,
              origin: tuple[int, int] | None = None, product: bool = False,
              **settings: object) -> RunResult:
        """Flash ``image`` as a fresh board (``uid``: its ``machine.unique_id()``, random when
        None; ``origin``: the firmware's own (sequence, security version), its frozen
        ``ota_origin``, None for a development build without one; ``product``: a product build,
        which takes only https update URLs) and provision its settings file (one boot)."""
        create_flash(self.board, image, self.flash_path, uid=uid, origin=origin, product=product)
        return self.provision(**settings)

    def provision(self, **settings: object) -> RunResult:
        """Write ota_config.json (url, product, board, channel + ``settings``) on the board.

        The example app's update policy defaults to a quick simulation: first check at once,
        checks a second apart, no wait between the restart notice and the restart.
        """
        cfg = {"url": self.url.rstrip("/"), "product": PRODUCT, "board": self.board.name,
               "channel": self.channel, "max_checks": 1, "first_s": 0, "check_s": 1,
               "notice_s": 0, **settings}
        script = self.work / "provision.py"
        script.write_text(PROVISION_SCRIPT)  # as `otakit sim flash` provisions
        # the harness's own boot, not the device's budget: a heap to spare
        result = self.boot(script=script, max_boots=1, heapsize="128K",
                           env={PROVISION_ENV: json.dumps(cfg)})
        if result.ended != "finished" or result.error:
            raise RuntimeError("provisioning failed:\n" + result.log)
        return result

    def boot(self, script: str | Path | None = None, *, max_boots: int = 8,
             **kw: object) -> RunResult:
        """Power the board on and run it (see `otakit.sim.runner.run`; ``frozen`` defaults
        to the lab's)."""
        kw.setdefault("frozen", self.frozen)
        return run(self.flash_path, script=script, app_dir=self.device_dir,
                   max_boots=max_boots, **kw)  # type: ignore[arg-type]

    def install_once(self, heapsize: str | int, **config: object) -> RunResult:
        """Boot once with a ``heapsize`` heap and let the agent (``ota.Config`` keywords
        ``config``, e.g. ``max_wbits=15``) check and install what is published, without
        rebooting into it: its log ends with ``INSTALLED`` when the whole update (manifest,
        signature, payload streamed in, read back, ``set_boot``) completed, followed by
        ``micropython.qstr_info()``."""
        script = self.work / "install_once.py"
        script.write_text(f"CONFIG = {config!r}\n" + _INSTALL_ONCE)
        return self.boot(script=script, heapsize=heapsize, max_boots=1, timeout=900)

    def state(self) -> FlashState:
        """The decoded flash image."""
        return read_state(self.flash_path, self.board.name)

    def nvs(self) -> dict[str, int | bytes]:
        """The agent's NVS namespace."""
        return self.state().nvs.get("otakit", {})


def revision_of(body: ManifestBody | None) -> int:
    """A manifest body's revision (docs/format.md §2), 0 for none (or no body), whether the
    host's `ManifestBody` names the field or keeps it among the unknown ones."""
    if body is None:
        return 0
    return getattr(body, "revision", None) or body.extra.get("revision", 0)
