"""The power-cut campaign's oracle, outside the agent (criteria (a)-(h) in `otakit.sim.campaign`).

`Judge` watches each boot as it ends (the simulated bootloader's record: the SHA-256 of the
booted image, hashed before the firmware ran) and reads the flash image after it: otadata, NVS
and, through `vfs_files`, the user's files on the vfs of a copy of the image; and the requests
the server saw during that boot (the payload's Range, recorded by the campaign's server).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from otakit.mpy import run_micropython
from otakit.sim.build import sim_module_dir
from otakit.sim.inspect import NEW, PENDING, VALID, FlashState, read_state
from otakit.sim.runner import Boot, RunResult

if TYPE_CHECKING:
    from otakit.sim.lab import Lab
    from otakit.sim.lane import Stage

# What one interruption may cost in payload bytes fetched again: ota.download saves its resume
# point (a progress mark in the slot's last sector, or NVS d_off) every 64 KB once those bytes
# are in flash, plus the block in flight, plus the response headers (counted as payload here:
# the bound is on what the link carries).
REFETCH_BOUND = 64 * 1024 + 4096 + 1024
_BLOCK = 4096
MARK_SPAN = 64 * 1024  # image bytes per progress mark (ota/slot.py)
_MARK, _MARKS = 32, 128
_NORMAL_BOOT = re.compile(r"^(?:BOOT|app: boot) normal", re.M)

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


def stored_keyring(nvs: dict) -> int:
    """The version of the keyring document the agent accepted (NVS ``kr_v``), 0 if none."""
    raw = nvs.get("kr_v", b"")
    return int.from_bytes(raw[:4], "little") if isinstance(raw, bytes) and len(raw) >= 8 else 0


def slot_entry_state(st: FlashState, label: str | None) -> int | None:
    """The otadata state of the newest valid entry selecting slot ``label`` (None if none)."""
    slots = sorted((p for p in st.partitions if p.type == 0 and 0x10 <= p.subtype < 0x20),
                   key=lambda p: p.subtype)
    best = None
    for e in st.otadata:
        if e.valid and slots and slots[(e.seq - 1) % len(slots)].label == label and \
                (best is None or e.seq > best.seq):
            best = e
    return best.state if best is not None else None


def intact_prefix(data: bytes, offset: int, image: bytes) -> int:
    """How many leading bytes of ``image`` the flash holds at ``offset``, in whole blocks (the
    last one up to the image's end)."""
    n = 0
    while n < len(image) and data[offset + n:offset + min(n + _BLOCK, len(image))] == \
            image[n:n + _BLOCK]:
        n += _BLOCK
    return min(n, len(image))


def progress_record(tag: bytes, a: int, b: int, magic: bytes = b"otakit") -> bytes:
    """A 32-byte progress record (ota/slot.py ``_fill``): mark ``i`` is (tag, i, 255 - i,
    b"otakit"), a stop at ``k`` 4 KB blocks (tag, k & 255, k >> 8, b"otstop")."""
    half = tag + bytes((a, b)) + magic
    return half + half


def kept_progress(data: bytes, slot_offset: int, slot_size: int, nvs: dict, tag: bytes,
                  size: int) -> int:
    """The resume point the device keeps in flash for the payload named by ``tag`` (the first 8
    bytes of its SHA-256) of a ``size``-byte image, read as ota/state.py reads it: 0 unless NVS
    ``d_id`` names it; then, when the image ends before the slot's last 4 KB sector, the
    furthest its progress records there give (the run of its valid marks from mark 0, 64 KB of
    the image each, the last one to its end; any valid stop, at the places above the marks) or
    NVS ``d_off``; else ``d_off``."""
    if nvs.get("d_id") != tag:
        return 0
    kept = int(nvs.get("d_off", 0))
    last = slot_size - _BLOCK
    if size > last or size > _MARKS * MARK_SPAN:
        return kept
    sector = data[slot_offset + last:slot_offset + slot_size]
    marks = -(-size // MARK_SPAN)
    n = 0
    while n < marks and sector[n * _MARK:(n + 1) * _MARK] == progress_record(tag, n, 255 - n):
        n += 1
    kept = max(kept, min(n * MARK_SPAN, size))
    for place in range(marks, _MARKS):
        rec = sector[place * _MARK:(place + 1) * _MARK]
        k = rec[8] | rec[9] << 8
        if rec == progress_record(tag, rec[8], rec[9], b"otstop") and k * _BLOCK <= size:
            kept = max(kept, k * _BLOCK)
    return kept


def lab_kept_progress(lab: Lab, tag: bytes, size: int, slot: str = "ota_1") -> int:
    """`kept_progress` on the board of ``lab`` (its spare slot ``slot``)."""
    p = lab.board.partition(slot)
    return kept_progress(lab.flash_path.read_bytes(), p.offset, p.size, lab.nvs(), tag, size)


def payload_requests(seen: list[tuple[str, str | None]]) -> list[tuple[str, int]]:
    """(path, first byte) of each payload request in ``seen``."""
    out = []
    for path, rng in seen:
        if path.startswith("/blobs/"):
            m = re.match(r"bytes=(\d+)-", rng or "")
            out.append((path, int(m[1]) if m else 0))
    return out


def encoded_refetch(stage_chunk: int, chunks: tuple[int, ...], start: int,
                    intact: int) -> tuple[int, str | None]:
    """(at most how many encoded bytes a resumed download of a chunked representation fetches
    again, or a problem): it must resume at a chunk's start (``start``, an encoded offset) whose
    image offset is not past the ``intact`` image bytes in the slot; the bytes fetched again are
    at most the encoded chunks from there up to the one that holds the last intact byte."""
    offsets = [sum(chunks[:i]) for i in range(len(chunks))]
    if start not in offsets:
        return 0, f"the download resumed at encoded byte {start}, not at a chunk's start"
    k = offsets.index(start)
    if k * stage_chunk > intact:
        return 0, (f"the download resumed at chunk {k} (image byte {k * stage_chunk}), past the "
                   f"{intact} bytes intact in the slot")
    if intact == k * stage_chunk:
        return 0, None
    return sum(chunks[k:(intact - 1) // stage_chunk + 1]), None


class Judge:
    """The oracle: watches each boot as it ends, the flash image and the server after it."""

    def __init__(self, bench: Stage, flash: Path, cuts: int = 0) -> None:  # noqa: D107
        self.bench = bench
        self.flash = flash
        self.cuts = cuts  # power cuts in this run (each may cost REFETCH_BOUND bytes)
        self.problems: list[str] = []
        self.floor = 0
        self.seq = 0
        self.rev = 0
        self.kr = 0
        self.new_recorded = False
        self.confirmed = False  # the new release was confirmed (its slot VALID or seq recorded)
        self.mark = len(bench.seen)  # requests the server saw before this run
        self.prefix: int | None = None  # bytes of the new image intact in its slot at a cut
        self.fetches = 0  # payload requests
        self.refetched = 0  # payload bytes fetched again after interruptions

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
        self._boot_more(b, which)
        new_seq = self.bench.new_seq
        if which == "old" and self.new_recorded:
            self.fail(f"(d) boot {b.index}: the old image runs after sequence {new_seq} was "
                      "recorded as installed")
        # (d) floor and installed sequence never decrease
        nvs = self.st.nvs.get("otakit", {})
        floor, seq = int(nvs.get("floor", 0)), int(nvs.get("seq", 0))
        if floor < self.floor:
            self.fail(f"(d) boot {b.index}: the floor went down from {self.floor} to {floor}")
        if seq < self.seq and not (self.bench.scenario.revert and seq == new_seq):
            self.fail(f"(d) boot {b.index}: the installed sequence went down from {self.seq} "
                      f"to {seq}")
        if seq == new_seq and which != "new":
            self.fail(f"(d) boot {b.index}: sequence {seq} recorded while {which} runs")
        kr = stored_keyring(nvs)
        if kr < self.kr:
            self.fail(f"(d) boot {b.index}: the accepted keyring went down from {self.kr} to {kr}")
        self.kr = max(kr, self.kr)
        rev = stored_revision(nvs, self.bench.channel)
        if rev < self.rev:
            self.fail(f"(d) boot {b.index}: the accepted revision went down from {self.rev} "
                      f"to {rev}")
        self.floor, self.seq = max(floor, self.floor), max(seq, self.seq)
        self.rev = max(rev, self.rev)
        self.new_recorded = self.new_recorded or seq == new_seq

    def _boot_more(self, b: Boot, which: str | None) -> None:
        # (f) the last confirmed image stays intact until the new one is confirmed; (g) every
        # boot of a new image is a trial the agent knows about; (h) payload bytes per cut.
        bench = self.bench
        self.st = st = read_state(self.flash)
        data = self.flash.read_bytes()
        nvs = st.nvs.get("otakit", {})
        new_state = slot_entry_state(st, bench.new_slot)
        # (a revert writes no slot: the image it leaves stays intact throughout)
        self.confirmed = self.confirmed or (not bench.scenario.rejects and
                                            not bench.scenario.revert and (
            nvs.get("seq") == bench.new_seq or new_state == VALID))
        if not self.confirmed and \
                data[bench.old_offset:bench.old_offset + len(bench.old)] != bench.old:
            self.fail(f"(f) boot {b.index}: the last confirmed image in {bench.old_slot} was "
                      "overwritten before the new one was confirmed")
        state = slot_entry_state(st, b.slot)
        if state in (NEW, PENDING) and _NORMAL_BOOT.search(b.log):
            self.fail(f"(g) boot {b.index}: {b.slot} ran unconfirmed (otadata state {state}) "
                      "while ota.boot() reported a normal boot")
        requests = payload_requests(bench.seen[self.mark:])
        self.mark = len(bench.seen)
        self.fetches += len(requests)
        if len(requests) > 1:
            self.fail(f"(h) boot {b.index} requested the payload {len(requests)} times")
        if requests and self.prefix is not None:
            (path, s), w = requests[0], self.prefix
            if bench.chunks and path == bench.rep_path:  # a chunked representation
                again, problem = encoded_refetch(bench.chunk, bench.chunks, s, w)
            else:  # the raw payload: resume points are image offsets
                again, problem = max(0, w - s), None
                if s > w:
                    problem = f"the download resumed at byte {s}, past the {w} bytes intact " \
                        "in the slot"
            if problem:
                self.fail(f"(h) boot {b.index}: {problem}")
            elif again > REFETCH_BOUND:
                self.fail(f"(h) boot {b.index}: {again} payload bytes fetched again after an "
                          f"interruption (bound {REFETCH_BOUND})")
            self.refetched += again
            self.prefix = None
        # a boot that ended otherwise starts no interruption (a cut in the bootloader has no
        # app boot, so it does not come here)
        self.prefix = intact_prefix(data, bench.new_offset, bench.new) \
            if b.ended == "cut" and (bench.raw or bench.chunks) else None
        if self.prefix is not None:  # the resume point kept in flash never runs ahead
            slot = next(s for s in st.slots if s.label == bench.new_slot)
            tag = hashlib.sha256(bench.new).digest()[:8] if bench.raw else bench.rep_tag
            kept = kept_progress(data, slot.offset, slot.size, nvs, tag, len(bench.new))
            if kept > self.prefix:
                self.fail(f"(h) boot {b.index}: the resume point kept in flash is byte {kept}, "
                          f"past the {self.prefix} bytes intact in the slot")

    def final(self, result: RunResult) -> None:
        if result.ended != "finished":
            self.fail(f"(b) the run ended {result.ended} after {len(result.boots)} boots")
        if result.error:
            self.fail("the device script raised:\n" + result.last.log[-600:])
        st = read_state(self.flash)
        crash = self.bench.scenario.rejects
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
            if nvs.get("floor", 0) != bench.floor0:
                self.fail(f"(d) the floor is {nvs.get('floor', 0)} after the release was refused, "
                          f"not {bench.floor0}")
        else:
            if nvs.get("seq") != bench.new_seq or nvs.get("floor") != bench.new_sv:
                self.fail(f"(d) installed sequence/floor {nvs.get('seq')}/{nvs.get('floor')} "
                          f"while {want} runs")
            if status.get("state") != "up_to_date":
                self.fail(f"(c) the last check says {status.get('state')} "
                          f"({status.get('reason')})")
        if stored_revision(nvs, bench.channel) != bench.new_rev:
            self.fail(f"(d) the accepted revision is {stored_revision(nvs, bench.channel)}, "
                      f"not the published manifest's {bench.new_rev}")
        if "t_seq" in nvs:
            self.fail("(c) a trial is still recorded in NVS")
        if stored_keyring(nvs) != bench.keyring:
            self.fail(f"(d) the accepted keyring is version {stored_keyring(nvs)}, not the "
                      f"published {bench.keyring}")
        # (h) payload bytes: the golden run fetches it once, whole; a cut costs at most the bound
        offline = bench.scenario.revert or bench.scenario.bundle  # nothing to download
        if not self.cuts and (self.fetches != 1 or self.refetched) and not offline:
            self.fail(f"(h) the uncut run requested the payload {self.fetches} times")
        if bench.scenario.revert and self.fetches:  # the image is in the slot already
            self.fail(f"(h) the revert requested the payload {self.fetches} times")
        if bench.scenario.bundle and self.fetches:  # an offline install reads only its file
            self.fail(f"(h) the offline install requested the payload {self.fetches} times")
        if self.refetched > self.cuts * REFETCH_BOUND:
            self.fail(f"(h) {self.refetched} payload bytes fetched again for {self.cuts} cut(s)")
        # (e) the user's files: unchanged, and the bare script's own state file parses
        kept = self.bench.user_files
        files = vfs_files(self.flash, [*kept, "lock.json"])
        for name, data in kept.items():
            if files.get(name) != data and not _same_json(files.get(name),
                                                          bench.changed.get(name, ())):
                self.fail(f"(e) {name} changed: {files.get(name)!r}")
        if not self.bench.scenario.app:
            try:
                if json.loads(files.get("lock.json") or b"")["boots"] < 1:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                self.fail(f"(e) lock.json is damaged: {files.get('lock.json')!r}")


def _same_json(data: bytes | None, allowed: tuple[bytes | None, ...]) -> bool:
    # A file the device rewrites (the settings change): the same JSON document as one allowed
    # (a rewrite may order the keys differently).
    try:
        doc = json.loads(data or b"")
        return any(doc == json.loads(a or b"") for a in allowed)
    except ValueError:
        return False


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
