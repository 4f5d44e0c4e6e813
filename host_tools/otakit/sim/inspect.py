"""Read a simulated board's state out of its flash image, without running it.

The same rules as the device side (boards/unix/_simota.py, _simnvs.py), re-read in CPython:
partitions from the binary table at 0x8000 (plus the runtime "vfs"), both otadata entries with
their validity, the slot the bootloader will try first on the next hard reset, what each app
slot holds, and the NVS keys. Nothing here writes to the image.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from otakit.boards import PT_ADDR, PT_SIZE, PartitionEntry, parse_partition_table
from otakit.sim.flash import read_board_record

STATE_NAMES = {0: "NEW", 1: "PENDING_VERIFY", 2: "VALID", 3: "INVALID", 4: "ABORTED",
               0xFFFFFFFF: "UNDEFINED"}
NEW, PENDING, VALID, INVALID, ABORTED = 0, 1, 2, 3, 4
BLANK = 0xFFFFFFFF
_SECTOR = 4096


def ota_crc(seq: int) -> int:
    """The otadata CRC of a sequence number: ``crc32_le(UINT32_MAX, &seq, 4)``."""
    return zlib.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


def otadata_entry(seq: int, state: int) -> bytes:
    """A 32-byte otadata entry as ESP-IDF writes it (label left 0xFF)."""
    return struct.pack("<I20sII", seq, b"\xff" * 20, state, ota_crc(seq))


@dataclass(frozen=True)
class OtaEntry:
    """One otadata entry; ``valid`` is the bootloader's test (seq, state, CRC)."""

    index: int
    seq: int
    state: int
    state_name: str
    crc_ok: bool
    valid: bool

    @property
    def blank(self) -> bool:
        """Erased (all 0xFF, as esptool leaves it): no entry at all, rather than a bad CRC."""
        return self.seq == BLANK and self.state == BLANK


@dataclass(frozen=True)
class SlotInfo:
    """What an app partition holds (from its header and app descriptor only)."""

    label: str
    offset: int
    size: int
    image: bool
    version: str
    behaviour: str


@dataclass
class FlashState:
    """The decoded state of a flash image (see `read_state`)."""

    board: str
    partitions: list[PartitionEntry]
    table_md5_ok: bool
    otadata: list[OtaEntry]
    active: int
    next_boot: str | None
    slots: list[SlotInfo]
    nvs: dict[str, dict[str, int | bytes]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict (blobs as hex)."""
        d = asdict(self)
        d["nvs"] = {ns: {k: (v.hex() if isinstance(v, bytes) else v) for k, v in keys.items()}
                    for ns, keys in self.nvs.items()}
        return d


def _entries(data: bytes, od: PartitionEntry | None) -> list[OtaEntry]:
    out = []
    if od is None:
        return out
    for i in (0, 1):
        seq, _, state, crc = struct.unpack_from("<I20sII", data, od.offset + i * _SECTOR)
        crc_ok = crc == ota_crc(seq)
        valid = seq != BLANK and state not in (INVALID, ABORTED) and crc_ok
        out.append(OtaEntry(i, seq, state, STATE_NAMES.get(state, hex(state)), crc_ok, valid))
    return out


def _active(entries: list[OtaEntry]) -> int:
    v = [e for e in entries if e.valid]
    if len(v) == 2:
        return 0 if entries[0].seq >= entries[1].seq else 1
    return v[0].index if v else -1


def _next_boot(parts: list[PartitionEntry], entries: list[OtaEntry]) -> str | None:
    # The bootloader's first choice on a hard reset: PENDING entries are aborted first.
    slots = sorted((p for p in parts if p.type == 0 and 0x10 <= p.subtype < 0x20),
                   key=lambda p: p.subtype)
    factory = next((p for p in parts if p.type == 0 and p.subtype == 0), None)
    after = [OtaEntry(e.index, e.seq, e.state, e.state_name, e.crc_ok,
                      e.valid and e.state != PENDING) for e in entries]
    a = _active(after) if after else -1
    if a >= 0 and slots:
        return slots[(after[a].seq - 1) % len(slots)].label
    if factory:
        return factory.label
    return slots[0].label if slots else None


_BANNER = re.compile(rb"MicroPython (v[0-9]+\.[0-9]+\.[0-9]+[-.0-9A-Za-z]*) on ([0-9]{4}-[0-9]{2}-[0-9]{2})")


def micropython_version(image: bytes) -> str:
    """``v1.25.0 (2025-04-15)`` from MicroPython's banner inside an app image; "" if none."""
    m = _BANNER.search(image)
    return f"{m[1].decode()} ({m[2].decode()})" if m else ""


def _slot(data: bytes, p: PartitionEntry) -> SlotInfo:
    img = data[p.offset] == 0xE9
    version = behaviour = ""
    if img and data[p.offset + 0x20:p.offset + 0x24] == b"\x32\x54\xcd\xab":
        version = data[p.offset + 0x30:p.offset + 0x50].split(b"\0")[0].decode(errors="replace")
        project = data[p.offset + 0x50:p.offset + 0x70].split(b"\0")[0].decode(errors="replace")
        behaviour = project.removeprefix("otakit-sim:") if project.startswith("otakit-sim:") \
            else ""
        if not version:  # MicroPython's own builds leave it empty: its banner says which
            version = micropython_version(data[p.offset:p.offset + p.size])
    return SlotInfo(p.label, p.offset, p.size, img, version, behaviour)


def read_nvs(data: bytes, part: PartitionEntry) -> dict[str, dict[str, int | bytes]]:
    """Decode the simulator's NVS log (docs/simulator.md) from the nvs partition."""
    half = (part.size // 2) // _SECTOR * _SECTOR
    gens = []
    for h in (0, 1):
        base = part.offset + h * half
        hdr = data[base:base + 16]
        ok = hdr[:4] == b"OSNV" and struct.unpack("<I", hdr[8:12])[0] == zlib.crc32(hdr[:8])
        gens.append(struct.unpack("<I", hdr[4:8])[0] if ok else -1)
    if max(gens) < 0:
        return {}
    base = part.offset + (0 if gens[0] >= gens[1] else 1) * half
    items: dict[tuple[str, str], int | bytes] = {}
    pos = 16
    while pos + 8 <= half:
        magic, committed, n, crc = struct.unpack_from("<BBHI", data, base + pos)
        if magic == 0xFF and committed == 0xFF:
            break
        if magic != 0xA5 or pos + 8 + n > half:
            break
        payload = data[base + pos + 8:base + pos + 8 + n]
        if committed == 0 and zlib.crc32(payload) == crc:
            i = payload[0] + 1
            ns = payload[1:i].decode()
            k = payload[i] + i + 1
            key, t = payload[i + 1:k].decode(), payload[k]
            if t == 0:
                items.pop((ns, key), None)
            else:
                items[(ns, key)] = (struct.unpack("<i", payload[k + 1:k + 5])[0] if t == 1
                                    else bytes(payload[k + 1:]))
        pos += 8 + n
    out: dict[str, dict[str, int | bytes]] = {}
    for (ns, key), v in items.items():
        out.setdefault(ns, {})[key] = v
    return out


def read_state(flash_path: str | Path, board: str | None = None) -> FlashState:
    """Decode a flash image.

    Args:
        flash_path: the image file.
        board: the board name; defaults to the one recorded in the image.

    Returns:
        A `FlashState`: partitions (with the runtime "vfs"), otadata entries, the active
        entry index (-1 for none), the slot the next hard reset tries first, each app slot's
        image version/behaviour, and the NVS contents ``{namespace: {key: int | bytes}}``.
    """
    data = Path(flash_path).read_bytes()
    parts, md5_ok = parse_partition_table(data[PT_ADDR:PT_ADDR + PT_SIZE])
    if parts and not any(p.label in ("vfs", "ffat") for p in parts):
        end = max(p.offset + p.size for p in parts)
        if end < len(data):
            parts.append(PartitionEntry("vfs", 1, 0x81, end, len(data) - end))
    od = next((p for p in parts if p.type == 1 and p.subtype == 0), None)
    entries = _entries(data, od)
    nvs = next((p for p in parts if p.type == 1 and p.subtype == 2), None)
    return FlashState(
        board=board or read_board_record(data).get("board", ""),
        partitions=parts, table_md5_ok=md5_ok, otadata=entries,
        active=_active(entries) if entries else -1,
        next_boot=_next_boot(parts, entries) if parts else None,
        slots=[_slot(data, p) for p in parts if p.type == 0],
        nvs=read_nvs(data, nvs) if nvs else {})
