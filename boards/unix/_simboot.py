# otakit simulated ESP32: one boot = the 2nd-stage bootloader, then the firmware's startup.
# MIT license; Copyright (c) 2026 otakit contributors
"""Run as `micropython -m _simboot` by the host runner (otakit.sim.runner), once per boot.

OTAKIT_SIM_RESET says why we boot: poweron | reset | wdt | panic (full bootloader, ground truth
4.2), deepsleep (RTC fast boot of the last fully booted partition, otadata untouched), soft (no
bootloader at all). Then: mount the frozen-code ROMFS image at /rom (OTAKIT_SIM_ROMFS, when set),
mount littlefs on "vfs" at /flash (mkfs on first boot), cwd /flash, run boot.py and main.py (or
OTAKIT_SIM_SCRIPT) from OTAKIT_SIM_APP_DIR, falling back to the vfs. The exit record (<state>/exit: "event ops extra") tells the host how the boot ended.
"""

import os
import sys

import _simflash as fl
import _simota as ota

_SLOT_NAMES = {0x00: "Factory", 0x20: "Test"}


def log(level, tag, msg):
    print("%s (%d) %s: %s" % (level, fl.ops_total(), tag, msg))


def _read_text(name):
    try:
        with open(fl.state_dir + "/" + name) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write_text(name, text):
    with open(fl.state_dir + "/" + name, "w") as f:
        f.write(text)


def _apps():
    # The bootloader's view: factory, ota[0..15] by subtype, test.
    ota_parts = {}
    for p in ota.find(ota.TYPE_APP):
        if 0x10 <= p[1] < 0x20:
            ota_parts[p[1] & 0x0F] = p
    n = len(ota_parts)
    return ota.factory(), [ota_parts.get(i) for i in range(n)], (ota.find(ota.TYPE_APP, 0x20)
                                                                 or [None])[0]


def _try_load(part, what):
    if part is None:
        return False
    err = ota.check_image(part, boot=True)
    if err is None:
        log("I", "boot", "Loaded app from partition at offset 0x%x" % part[2])
        return True
    log("E", "esp_image", err)
    log("E", "boot", "%s is not bootable" % what)
    return False


def _select(od, slots):
    # Steps 2-4: PENDING -> ABORTED, then the start index. Returns (index, initial).
    e = ota.read_entries(od)
    for i in (0, 1):
        if e[i][1] == ota.PENDING:
            log("W", "boot", "otadata[%d] seq=%d PENDING_VERIFY -> ABORTED (not confirmed)" % (
                i, e[i][0]))
            ota.rewrite_state(od, i, ota.ABORTED)
    e = ota.read_entries(od)
    if not slots or (not ota.entry_valid(e[0]) and not ota.entry_valid(e[1])):
        if ota.factory() is not None:
            log("I", "boot", "Defaulting to factory image")
            return -1, False
        log("I", "boot", "No factory image, trying OTA 0")
        return 0, ota.entry_initial(e[0]) and ota.entry_initial(e[1])
    a = ota.active(e)
    idx = ota.slot_of_seq(e[a][0], len(slots))
    log("I", "boot", "otadata[%d] seq=%d %s is active -> ota_%d" % (
        a, e[a][0], ota.STATE_NAMES.get(e[a][1], "?"), idx))
    if e[a][1] == ota.NEW:
        log("I", "boot", "otadata[%d] NEW -> PENDING_VERIFY (trial boot)" % a)
        ota.rewrite_state(od, a, ota.PENDING)
    return idx, False


def _load_with_fallback(start, factory, slots, test):
    # Step 5: start, down to factory, then up, then the test app.
    def name(i):
        return "Factory app partition" if i < 0 else "OTA app partition slot %d" % i

    for i in range(start, -2, -1):
        if _try_load(factory if i < 0 else slots[i], name(i)):
            return i
    for i in range(start + 1, len(slots)):
        if _try_load(slots[i], name(i)):
            return i
    if _try_load(test, "Test app partition"):
        return 99
    return None


def bootloader(reason):
    # Returns the partition tuple that boots, or None (no bootable app: a boot loop).
    log("I", "boot", "ESP-IDF v5.5.2 2nd stage bootloader (otakit simulated, reset=%s)" % reason)
    if reason == "deepsleep":
        addr = _read_text("rtc")
        for p in ota.table():
            if addr and p[2] == int(addr) and p[0] == ota.TYPE_APP:
                log("I", "boot", "Fast booting app from partition at offset 0x%x "
                    "(deep-sleep wake: otadata not read, image not verified)" % p[2])
                return p
    if not ota.table_md5_ok():
        log("E", "flash_parts", "partition table MD5 mismatch or no valid partition table")
        return None
    factory, slots, test = _apps()
    od = ota.otadata()
    if od is None:
        start, initial = -1, False
    else:
        start, initial = _select(od, slots)
    idx = _load_with_fallback(start, factory, slots, test)
    if idx is None:
        log("E", "boot", "No bootable app partitions in the partition table")
        return None
    part = factory if idx < 0 else (test if idx == 99 else slots[idx])
    if initial and 0 <= idx < 99:
        log("I", "boot", "otadata blank: writing otadata[0] seq=%d VALID" % (idx + 1))
        ota.write_entry(od, 0, idx + 1, ota.VALID)
    _write_text("rtc", str(part[2]))
    return part


def _identify(part):
    d = ota.app_desc(part) or ("", "")
    behaviour = d[1][len("otakit-sim:"):] if d[1].startswith("otakit-sim:") else ""
    ota.running = part[2]
    ota.booted = (part[4], d[0], behaviour)
    # The booted image's own bytes, hashed before the firmware runs, for the host's oracle
    # (docs/reliability.md): which exact image ran at this boot.
    import _simimage
    import binascii

    img = _simimage.image_sha256(part)
    sha = binascii.hexlify(img[1]).decode() if img else ""
    _write_text("boot", "slot=%s\naddr=%d\nversion=%s\nbehaviour=%s\nsha256=%s\n" % (
        part[4], part[2], d[0], behaviour, sha))
    return behaviour


_mount_cost = 0


def _mount():
    global _mount_cost
    import gc
    import vfs
    import esp32

    bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")
    if not bdev:
        return
    try:
        fs = vfs.VfsLfs2(bdev[0])
    except OSError:
        print("Performing initial setup")
        vfs.VfsLfs2.mkfs(bdev[0])
        fs = vfs.VfsLfs2(bdev[0])
    gc.collect()
    before = gc.mem_alloc()
    vfs.mount(fs, "/flash")
    gc.collect()
    _mount_cost = gc.mem_alloc() - before + 64 * len(bdev)
    os.chdir("/flash")
    # As on a board, where sys.path is ["", ".frozen", "/lib"]: the simulator's own modules
    # first (built in on a board, found before any path), then the cwd (the filesystem), then
    # the app directory and .frozen (frozen on a board), then /flash/lib. A module on the
    # filesystem is found before a frozen one of the same name, as on a board.
    while "" in sys.path:
        sys.path.remove("")
    app = "/rom" if "/rom" in sys.path else os.getenv("OTAKIT_SIM_APP_DIR")
    anchor = app if app in sys.path else ".frozen"
    sys.path.insert(sys.path.index(anchor) if anchor in sys.path else len(sys.path), "")
    sys.path.append("/flash/lib")


_heap_ballast = None


# Names (qstrs) interned at run time live on the heap, in pools that double in size: 20, 40,
# 80, ... entries, each allocated when the last one is full. On a board the simulator's names are
# in flash with the C code, and the device's names start in the first 20-entry pool; here the
# simulator's own (~300) names come first. So that the device is not charged pools sized by them,
# the simulator fills its pools up to the one before DEVICE_POOL: the device's names then start
# in a fresh pool of DEVICE_POOL entries, which a board reaches with 300 < names <= 620 (it then
# holds 620 entries in five pools; the simulator's one pool holds 640, within 20).
DEVICE_POOL = 640
_pool_charge = 0  # see _pad_names


def _intern(i):
    # Intern a new name; return its qstr number.
    name = "_sim_pad%d" % i
    getattr(None, name, None)  # interns name
    return id(name.encode().decode()) >> 3


def _pad_names(budget):
    import gc
    import machine  # noqa: F401 - resident before the device runs, its names with it

    if "/rom" in sys.path:  # the ROMFS modules' names first (a board's frozen ones are in flash)
        # Interning them strews their string chunks all over the free heap, among the garbage
        # of reading them: a block held meanwhile keeps one free run for the next qstr pool,
        # opened below, and the budget in one piece (_ballast).
        hold = bytearray(budget + 32 * 1024)
        __import__("_simrom").intern_names()
        hold = None  # noqa: F841 - that run, free again
    gc.collect()
    i = 0
    while True:  # until a pool is allocated, seen as a jump in the heap in use
        before = gc.mem_alloc()
        q = _intern(i)
        grew = gc.mem_alloc() - before
        i += 1
        if grew > 1024 and "/rom" in sys.path:
            # the device's code names nothing new: the few names it makes at run time (a
            # board puts them in a 20-entry pool) go into this fresh one
            return
        if grew > 1024:  # q is the first entry of a new pool: its size from its bytes
            pool = 20
            while pool * 16 < grew:  # entries are 9-16 bytes on any port: the nearest size
                pool *= 2
            if pool == DEVICE_POOL:
                # The simulator's own names (300 < n <= 620) had opened the pool before: this
                # one, just opened outside the budget, takes the device's names, and the budget
                # is cut by its size instead, as if the device had opened it.
                global _pool_charge
                _pool_charge = grew
                return
            if pool > DEVICE_POOL:
                raise RuntimeError("the simulator's own names fill a %d-entry pool" % pool)
            if pool * 2 == DEVICE_POOL:
                break
    last = q
    while last < q + pool - 1:  # fill that pool: the device's first name opens the next one
        last = _intern(i)
        i += 1


def _reserve(n):
    # The budget as one block, or None when no free run is that large. Returns a list holding it
    # (from a frame of its own, so that no stale reference to a failed attempt stays behind).
    try:
        return [bytearray(n)]
    except MemoryError:
        return None


def _ballast():
    # Leave device code OTAKIT_SIM_HEAP_BUDGET bytes of free heap minus what the mounted VFS
    # takes, as one contiguous region, as on a board: there the simulator's modules are C code
    # and its boot leaves no garbage, so the free heap at boot is neither smaller nor full of
    # holes. The holes the simulator's own boot left are filled; the budget stays in one piece.
    global _heap_ballast
    import gc
    import _simimage  # noqa: F401 - resident like the C code it stands for
    import _simnvs

    try:
        _simnvs._load()  # NVS's state: on a board in the IDF heap, not the device's GC heap
    except OSError:  # no nvs partition: esp32.NVS fails when used, as on a board
        pass

    budget = int(os.getenv("OTAKIT_SIM_HEAP_BUDGET") or 0)
    if not budget:
        return
    _pad_names(budget)
    slots = [None] * 1024
    gc.collect()
    target = budget - _mount_cost - _pool_charge
    # First fit: the budget is taken first (in the one free run large enough), then every other
    # free block is filled, largest pieces first, and the budget is freed again. With automatic
    # collection off, an allocation that does not fit fails at once instead of collecting.
    reserve = _reserve(target - 32)
    gc.disable()
    i, size = 0, 1 << 16 if reserve else gc.mem_free() - target - 16
    while size >= 16 and i < 1024:
        try:
            slots[i] = bytearray(size)
            i += 1
        except MemoryError:
            size //= 4
            continue
        if not reserve:
            # Not that much in one piece (the first boot's mkfs can leave the heap so): take
            # the largest blocks that fit until only the budget is left free.
            size = gc.mem_free() - target - 16
            if size <= 64:
                break
    gc.enable()
    reserve = None  # noqa: F841 - the budget, free again
    _heap_ballast = slots
    gc.collect()


def _run_file(path):
    with open(path) as f:
        src = f.read()
    g = {"__name__": "__main__", "__file__": path}
    exec(src, g)


def _find(name):
    app = os.getenv("OTAKIT_SIM_APP_DIR")
    for p in ((app + "/" + name) if app else None, "/flash/" + name):
        if p:
            try:
                os.stat(p)
                return p
            except OSError:
                pass
    return None


def _firmware():
    # boot.py, then main.py or the script. Returns the exit event.
    import machine

    script = os.getenv("OTAKIT_SIM_SCRIPT")
    for path in (_find("boot.py"), script or _find("main.py")):
        if not path:
            continue
        try:
            _run_file(path)
        except SystemExit:
            if machine.sim_soft_reset_requested:
                return "soft"
            return "done"
        except BaseException as e:  # noqa: BLE001 - the board prints it and drops to the REPL
            sys.print_exception(e)
            return "error"
    return "done"


def main():
    fl.open_flash()
    reason = os.getenv("OTAKIT_SIM_RESET") or "poweron"
    if reason == "soft":
        addr = _read_text("rtc")
        part = [p for p in ota.table() if addr and p[2] == int(addr)]
        part = part[0] if part else bootloader("poweron")
    else:
        part = bootloader(reason)
    if part is None:
        fl.write_exit("nobootable")
        return
    behaviour = _identify(part)
    if behaviour == "crash":
        print("Guru Meditation Error: Core  0 panic'ed "
              "(simulated: otakit-sim:crash before boot.py)")
        fl.die("panic")
    if behaviour == "hang":
        print("(simulated: otakit-sim:hang, the firmware stops before boot.py)")
        import time

        while True:
            time.sleep(1)
    if os.getenv("OTAKIT_SIM_ROMFS"):  # the frozen-code mode (otakit.sim.runner)
        __import__("_simrom").mount()
    _mount()
    _ballast()
    fl.write_exit(_firmware())


try:
    main()
except BaseException as e:  # noqa: BLE001 - a simulator fault: report it with the op count
    sys.print_exception(e)
    fl.write_exit("error", "simulator")
