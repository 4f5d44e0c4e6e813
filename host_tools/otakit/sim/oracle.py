"""The power-cut campaign's oracle, outside the agent (criteria (a)-(e) in `otakit.sim.campaign`).

`Judge` watches each boot as it ends (the simulated bootloader's record: the SHA-256 of the
booted image, hashed before the firmware ran) and reads the flash image after it: otadata, NVS
and, through `vfs_files`, the user's files on the vfs of a copy of the image.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from otakit.mpy import run_micropython
from otakit.sim.build import sim_module_dir
from otakit.sim.inspect import VALID, read_state
from otakit.sim.runner import Boot, RunResult

if TYPE_CHECKING:
    from otakit.sim.campaign import Bench

# Reads files from the vfs of a copy of a flash image (littlefs mounted read-only), outside the
# agent and without booting it.
_VFS_READER = """\
import binascii, esp32, vfs
p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
vfs.mount(vfs.VfsLfs2(p), "/flash", readonly=True)
for name in NAMES:
    try:
        with open("/flash/" + name, "rb") as f:
            print("FILE", name, binascii.hexlify(f.read()).decode() or "=")
    except OSError as e:
        print("FILE", name, "-")
"""


def last_status(result: RunResult) -> dict:
    """The agent status the device script printed last (``STATUS {...}``), or {}."""
    found = re.findall(r"^STATUS (.*)$", result.log, re.M)
    return json.loads(found[-1]) if found else {}


def stored_revision(nvs: dict, channel: str) -> int:
    """The manifest revision the agent accepted for ``channel`` (NVS ``rev``: i32 + channel;
    ota/state.py), 0 when none or another channel's."""
    raw = nvs.get("rev", b"")
    if not isinstance(raw, bytes) or len(raw) < 4 or raw[4:] != channel.encode():
        return 0
    return int.from_bytes(raw[:4], "little", signed=True)


class Judge:
    """The oracle: watches each boot as it ends and the flash image after it."""

    def __init__(self, bench: Bench, flash: Path) -> None:  # noqa: D107
        self.bench = bench
        self.flash = flash
        self.problems: list[str] = []
        self.floor = 0
        self.seq = 0
        self.rev = 0
        self.new_recorded = False

    def fail(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def note_power_on(self) -> None:
        pass

    def boot(self, b: Boot) -> None:
        # (a) the booted image is a signed release, byte for byte
        which = self.bench.shas.get(b.image_sha256)
        if b.ended == "nobootable" or (b.slot is None and b.ended != "cut"):
            self.fail(f"(b) boot {b.index}: nothing bootable")
        elif b.slot is None:
            return  # the power was cut inside the bootloader, before any app ran
        elif which is None:
            self.fail(f"(a) boot {b.index}: {b.slot} ran an image that is no signed release "
                      f"(sha256 {b.image_sha256[:16] or 'none'})")
        elif which == "older":
            self.fail(f"(d) boot {b.index}: {b.slot} ran 1.0.0, older than the installed release")
        new_seq = self.bench.new_seq
        if which == "old" and self.new_recorded:
            self.fail(f"(d) boot {b.index}: the old image runs after sequence {new_seq} was "
                      "recorded as installed")
        # (d) floor and installed sequence never decrease
        nvs = read_state(self.flash).nvs.get("otakit", {})
        floor, seq = int(nvs.get("floor", 0)), int(nvs.get("seq", 0))
        if floor < self.floor:
            self.fail(f"(d) boot {b.index}: the floor went down from {self.floor} to {floor}")
        if seq < self.seq:
            self.fail(f"(d) boot {b.index}: the installed sequence went down from {self.seq} "
                      f"to {seq}")
        if seq == new_seq and which != "new":
            self.fail(f"(d) boot {b.index}: sequence {seq} recorded while {which} runs")
        rev = stored_revision(nvs, self.bench.lab.channel)
        if rev < self.rev:
            self.fail(f"(d) boot {b.index}: the accepted revision went down from {self.rev} "
                      f"to {rev}")
        self.floor, self.seq = max(floor, self.floor), max(seq, self.seq)
        self.rev = max(rev, self.rev)
        self.new_recorded = self.new_recorded or seq == new_seq

    def final(self, result: RunResult) -> None:
        if result.ended != "finished":
            self.fail(f"(b) the run ended {result.ended} after {len(result.boots)} boots")
        if result.error:
            self.fail("the device script raised:\n" + result.last.log[-600:])
        st = read_state(self.flash)
        crash = self.bench.scenario.crash
        want = "old" if crash else "new"
        image = self.bench.old if crash else self.bench.new
        slot = next((s for s in st.slots if s.label == st.next_boot), None)
        data = self.flash.read_bytes()
        # (b) the slot the next reset boots holds a signed release
        if slot is None or data[slot.offset:slot.offset + len(image)] != image:
            self.fail(f"(b)/(c) the next reset boots {st.next_boot}, which does not hold the "
                      f"{want} image")
        last = result.boots[-1] if result.boots else None
        if last is None or self.bench.shas.get(last.image_sha256) != want:
            self.fail(f"(c) the board ends on the {'new' if want == 'old' else 'old'} image")
        if st.active < 0 or st.otadata[st.active].state != VALID:
            self.fail(f"(c) the active otadata entry is not VALID: {st.otadata}")
        nvs = st.nvs.get("otakit", {})
        status = last_status(result)
        bench = self.bench
        if crash:
            if bench.new_seq not in status.get("bad_sequences", []) or \
                    nvs.get("seq", 0) != bench.old_seq:
                self.fail(f"(c) the crashing release is not refused: {status}")
        else:
            if nvs.get("seq") != bench.new_seq or nvs.get("floor") != bench.new_sv:
                self.fail(f"(d) installed sequence/floor {nvs.get('seq')}/{nvs.get('floor')} "
                          f"while {want} runs")
            if status.get("state") != "up_to_date":
                self.fail(f"(c) the last check says {status.get('state')} "
                          f"({status.get('reason')})")
        if stored_revision(nvs, bench.lab.channel) != bench.new_rev:
            self.fail(f"(d) the accepted revision is {stored_revision(nvs, bench.lab.channel)}, "
                      f"not the published manifest's {bench.new_rev}")
        if "t_seq" in nvs:
            self.fail("(c) a trial is still recorded in NVS")
        # (e) the user's files: unchanged, and the bare script's own state file parses
        kept = self.bench.user_files
        files = vfs_files(self.flash, [*kept, "lock.json"])
        for name, data in kept.items():
            if files.get(name) != data:
                self.fail(f"(e) {name} changed: {files.get(name)!r}")
        if not self.bench.scenario.app:
            try:
                if json.loads(files.get("lock.json") or b"")["boots"] < 1:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                self.fail(f"(e) lock.json is damaged: {files.get('lock.json')!r}")


def vfs_files(flash: Path, names: list[str]) -> dict[str, bytes | None]:
    """The named files on the vfs of ``flash`` (None if missing), read from a copy."""
    with tempfile.TemporaryDirectory(prefix="otakit-vfs-") as tmp:
        copy = Path(tmp) / "flash.img"
        shutil.copyfile(flash, copy)
        script = Path(tmp) / "read.py"
        script.write_text(f"NAMES = {names!r}\n" + _VFS_READER)
        proc = run_micropython([str(script)], path=[sim_module_dir()],
                               env={"OTAKIT_SIM_FLASH": str(copy), "OTAKIT_SIM_STATE": tmp},
                               timeout=60)
    out: dict[str, bytes | None] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "FILE":
            out[parts[1]] = None if parts[2] == "-" else (
                b"" if parts[2] == "=" else bytes.fromhex(parts[2]))
    return out
