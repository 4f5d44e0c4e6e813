"""`make demo`: a whole signed update, and a rollback, on a simulated ESP32 board.

Development keys, three synthetic app images (1.0.0; 1.1.0; 1.2.0 whose firmware crashes at boot),
a release repository served on loopback by the real server, and a simulated board running the
real agent and example app on the MicroPython unix port:

1. 1.0.0 is flashed; 1.1.0 is published as a security update. The device tells the user (severity
   and risk in plain words, an LED pattern); the user says "later"; the postponement is honoured
   up to its bound (a few seconds here, 7 days by default), then the update downloads, the
   restart is announced, the device reboots into 1.1.0 and confirms it;
2. 1.2.0 is published; it installs, its trial boot crashes, the bootloader rolls back to 1.1.0,
   the agent reports why and refuses 1.2.0 from then on.

With ``--real`` the images are the real MicroPython v1.21.0 and v1.25.0 OTA app images from
``../shared/firmware`` (the rollback step then uses a synthetic crashing image built on top).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from otakit.appimage import make_app_image
from otakit.paths import ROOT
from otakit.sim.lab import PRODUCT, Lab
from otakit.sim.runner import RunResult

IMAGE_SIZE = 1_400_000  # about a real MicroPython ESP32 app image
DEVICE_HEAP = "112K"  # the ESP32 heap starts at 56 KB and grows on demand (not simulated). The
# agent alone completes an update in 61 KB, see docs/performance.md
REAL_DIR = ROOT.parent / "shared" / "firmware"
REAL_OLD = "ESP32_GENERIC-OTA-v1.21.0.app.bin"
REAL_NEW = "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin"
POSTPONE_MAX = 3  # seconds a security update may be postponed in the demo
RISK = "someone near the door could unlock it over Bluetooth"
_PROGRESS = re.compile(r"app: progress (\d+)/(\d+)")
_SHOWN = ("app: boot", "app: notice", "app: the user", "app: restarting", "app: update",
          "ota:")  # the device's own lines, and the bootloader's decisions:
_SHOWN_BOOT = ("is active", "PENDING", "ABORTED", "not bootable", "Loaded app", "panic")


@dataclass
class Step:
    """One row of the summary."""

    what: str
    running: str
    slot: str
    downloaded: int
    seconds: float
    outcome: str


class Demo:
    """Runs the scenario in ``work`` and prints what happens to ``console``."""

    def __init__(self, work: Path, console: Console, real: bool) -> None:
        self.work = work
        self.console = console
        self.real = real
        self.steps: list[Step] = []
        self.known: list[tuple[bytes, str]] = []

    def say(self, text: str) -> None:
        self.console.print(text)

    def images(self) -> tuple[bytes, bytes, bytes, tuple[str, str, str]]:
        if self.real:
            old = (REAL_DIR / REAL_OLD).read_bytes()
            new = (REAL_DIR / REAL_NEW).read_bytes()
            bad = make_app_image("1.25.1", size=IMAGE_SIZE, behaviour="crash")
            return old, new, bad, ("1.21.0", "1.25.0", "1.25.1")
        return (make_app_image("1.0.0", size=IMAGE_SIZE),
                make_app_image("1.1.0", size=IMAGE_SIZE),
                make_app_image("1.2.0", size=IMAGE_SIZE, behaviour="crash"),
                ("1.0.0", "1.1.0", "1.2.0"))

    def running_version(self, lab: Lab, slot: str | None, reported: str) -> str:
        """The version of the image in ``slot``: real MicroPython images carry no version in
        their app descriptor, so recognise the images the demo made or published."""
        if reported or slot is None:
            return reported or "?"
        part = lab.board.partition(slot)
        data = lab.flash_path.read_bytes()[part.offset:part.offset + part.size]
        for image, version in self.known:
            if data[:len(image)] == image:
                return version
        return "?"

    def run(self) -> int:
        old, new, bad, (v_old, v_new, v_bad) = self.images()
        self.known = [(old, v_old), (new, v_new), (bad, v_bad)]
        with Lab(self.work) as lab:
            self.say(f"[bold]1. keys[/]     a {lab.key.alg} development key, id "
                     f"{lab.key.key_id_hex}, baked into the device's keyring (ota_keys.py)")
            self.say(f"[bold]2. images[/]   {v_old} ({len(old):,} B), {v_new} ({len(new):,} B), "
                     f"{v_bad} ({len(bad):,} B, its firmware crashes at boot)")
            lab.publish(new, v_new, 2, notes=f"{v_new}: a better lock",
                        security={"severity": "high", "risk": RISK},
                        disruption={"reboot": True, "seconds": 20})
            self.say(f"[bold]3. publish[/]  {v_new} as sequence 2, a security update, to "
                     f"{PRODUCT}/{lab.board.name}/{lab.channel}; serving {lab.url}")
            lab.flash(old, user_postpone_s=3600, security_postpone_max_s=POSTPONE_MAX,
                      check_s=1, notice_s=1, max_checks=10)
            self.say(f"[bold]4. flash[/]    {v_old} into ota_0 of a fresh simulated "
                     f"{lab.board.name} ({lab.board.flash_size // (1 << 20)} MB flash), a "
                     f"development build (it takes the http URL on loopback; a product build "
                     f"takes only https); its "
                     f"user answers every update notice with 'later' (1 hour), and security "
                     f"updates may wait at most {POSTPONE_MAX} s (7 days on a real product)")
            result = self.update(lab, f"5. update to {v_new}")
            ok = self.expect(lab, v_new, "confirmed")
            ok = self.expect_postponement(lab, result) and ok
            lab.provision()
            lab.publish(bad, v_bad, 3, notes=f"{v_bad}: crashes at boot")
            self.say(f"[bold]6. publish[/]  {v_bad} as sequence 3 (its firmware crashes)")
            self.update(lab, f"7. update to {v_bad}")
            ok = self.expect(lab, v_new, "rolled back") and ok
            self.update(lab, "8. check again")
            ok = self.expect(lab, v_new, "refused") and ok
        self.summary()
        return 0 if ok else 1

    def update(self, lab: Lab, title: str) -> RunResult:
        self.say(f"[bold]{title}[/]")
        before = sum(1 for m, p, s in lab.requests() if "/blobs/" in p and s in (200, 206))
        t0 = time.monotonic()
        with Progress(TextColumn("   download"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=self.console, transient=False) as bar:
            task = bar.add_task("", total=None, visible=False)
            boots = [0]

            def on_output(line: str) -> None:
                m = _PROGRESS.search(line)
                if m:
                    bar.update(task, completed=int(m[1]), total=int(m[2]), visible=True)
                    return
                if "2nd stage bootloader" in line:
                    boots[0] += 1
                if line.startswith(_SHOWN) or any(w in line for w in _SHOWN_BOOT):
                    bar.console.print(f"   [dim]boot {boots[0]}[/] {line}")

            result = lab.boot(heapsize=DEVICE_HEAP, on_output=on_output)
        seconds = time.monotonic() - t0
        state = lab.state()
        slot = result.last.slot or "-"
        running = self.running_version(lab, result.last.slot, result.last.version)
        got = sum(1 for m, p, s in lab.requests() if "/blobs/" in p and s in (200, 206)) - before
        outcome = self.outcome(result)
        downloaded = self.downloaded(result) if got else 0
        self.steps.append(Step(title.split(" ", 1)[1], running, slot, downloaded, seconds,
                               outcome))
        otadata = ", ".join(f"[{e.index}] seq {e.seq} {e.state_name}"
                            for e in state.otadata if e.seq != 0xFFFFFFFF)
        self.say(f"   now running {running} from {slot}; otadata {otadata}; "
                 f"{len(result.boots)} boot(s), {seconds:.1f} s")
        return result

    @staticmethod
    def downloaded(result: RunResult) -> int:
        total = 0
        for m in _PROGRESS.finditer(result.log):
            total = max(total, int(m[1]))
        return total

    @staticmethod
    def outcome(result: RunResult) -> str:
        log = result.log
        m = re.search(r"ota: rolled back from sequence \d+ \((\w+)", log)
        if m:
            return f"rolled back ({m[1]}), release refused from now on"
        if "confirmed in" in log:
            return "installed and confirmed"
        m = re.search(r"app: update status: failed \((\w+):", log)
        if m:
            return f"refused ({m[1]})"
        if "up_to_date" in log:
            return "up to date"
        return result.ended

    def expect_postponement(self, lab: Lab, result: RunResult) -> bool:
        """The user was told (with the risk), postponed, and nothing downloaded before the
        bound; the restart was announced."""
        log = result.log
        told = "notice available: A security update" in log and RISK in log
        later = log.find("app: the user chose 'later'")
        first_blob = log.find("app: progress")
        stamps = [(m, p) for m, p, s in lab.requests()]
        checks_before = 0
        for _, path in stamps:
            if "/blobs/" in path:
                break
            checks_before += path.endswith("/manifest")
        good = (told and 0 <= later < first_blob and "notice postponed" in log and
                "notice disruption" in log and checks_before >= 3)
        mark = "[green]ok[/]" if good else "[red]unexpected[/]"
        self.say(f"   {mark}: notice with the risk shown, postponement honoured for "
                 f"{checks_before} checks before the download, restart announced first")
        return good

    def expect(self, lab: Lab, version: str, what: str) -> bool:
        step = self.steps[-1]
        good = step.running == version and what.split()[0] in step.outcome
        mark = "[green]ok[/]" if good else "[red]unexpected[/]"
        self.say(f"   {mark}: {step.outcome}")
        return good

    def summary(self) -> None:
        table = Table(title="otakit demo: what happened")
        for col in ("step", "running after", "slot", "downloaded", "time", "outcome"):
            table.add_column(col)
        for s in self.steps:
            table.add_row(s.what, s.running, s.slot, f"{s.downloaded:,} B" if s.downloaded
                          else "-", f"{s.seconds:.1f} s", s.outcome)
        self.console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit 0 when every step did what it should."""
    ap = argparse.ArgumentParser(prog="python -m otakit.demo", description=__doc__)
    ap.add_argument("--real", action="store_true",
                    help="use the real MicroPython v1.21.0 -> v1.25.0 images in ../shared")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir)")
    args = ap.parse_args(argv)
    console = Console()
    if args.real and not (REAL_DIR / REAL_NEW).is_file():
        console.print(f"otakit demo: --real needs {REAL_DIR} (absent here)")
        return 1
    console.print("[bold]otakit demo[/]: a signed security update (with a notice and an honoured "
                  "postponement) and a rollback, on a simulated ESP32\n")
    if args.keep:
        return Demo(Path(args.keep), console, args.real).run()
    with tempfile.TemporaryDirectory(prefix="otakit-demo-") as tmp:
        return Demo(Path(tmp), console, args.real).run()


if __name__ == "__main__":
    sys.exit(main())
