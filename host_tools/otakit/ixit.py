"""Draft IXIT entries (ETSI TS 103 701) for the compliance report, from the code as it is.

- 7-UpdMech (`ixit_updmech`): from the device's actual defaults (``firmware/ota/settings.py`` and
  ``firmware/ota/policy.py``, read with `ast`, not imported) and, when given, the device's
  provisioning file and the signature algorithms of a repository.
- 6-SoftComp (`ixit_softcomp`): every software component of a board, from its partition table
  and frozen-module manifest.
"""

from __future__ import annotations

import ast
from pathlib import Path

from otakit.boards import Board
from otakit.paths import FIRMWARE_DIR


def _defaults(path: Path, cls: str | None = None) -> dict[str, object]:
    """Keyword defaults of ``cls.__init__`` (or the DEFAULTS dict) in a device module, read
    from its source so the draft describes the code as it is."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if cls is None and isinstance(node, ast.Assign) and \
                getattr(node.targets[0], "id", "") == "DEFAULTS":
            return ast.literal_eval(node.value)
        if cls and isinstance(node, ast.ClassDef) and node.name == cls:
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef)
                        and n.name == "__init__")
            args = init.args.args[-len(init.args.defaults):]
            out = {}
            for a, d in zip(args, init.args.defaults, strict=True):
                try:
                    out[a.arg] = ast.literal_eval(d)
                except ValueError:
                    out[a.arg] = ast.unparse(d)
            return out
    return {}


def _seconds(v: object) -> str:
    if isinstance(v, str):
        try:
            v = eval(v, {"__builtins__": {}}, {"_DAY": 86400})  # noqa: S307 - our own source
        except Exception:  # noqa: BLE001
            return str(v)
    if isinstance(v, int | float):
        return f"{v:g} s ({v / 86400:g} days)" if v >= 86400 else f"{v:g} s"
    return str(v)


def ixit_updmech(device_config: dict | None = None, algs: list[str] | None = None) -> str:
    """A draft IXIT 7-UpdMech entry (markdown) from the actual defaults and configuration."""
    settings = _defaults(FIRMWARE_DIR / "ota" / "settings.py")
    policy = _defaults(FIRMWARE_DIR / "ota" / "policy.py", "Policy")
    cfg = device_config or {}
    check_s = cfg.get("check_s", policy.get("check_s"))
    first_s = cfg.get("first_s", policy.get("first_s"))
    sec_max = cfg.get("security_postpone_max_s", policy.get("security_postpone_max_s"))
    jitter = policy.get("jitter", 0)
    jitter_pct = jitter * 100 if isinstance(jitter, int | float) else 0
    algs_text = ", ".join(algs) if algs else "Ed25519 or RSA-3072-PSS-SHA256 (per release key)"
    lines = [
        "### IXIT 7-UpdMech: otakit over-the-air update (draft)",
        "",
        "- **Description:** the device fetches a signed manifest for its product, board and "
        "channel from the release repository"
        + (f" ({cfg['url']})" if cfg.get("url") else "")
        + ", verifies it, streams the payload into the spare OTA slot, reads it back, switches "
        "boot, restarts at a safe moment and confirms the new firmware after its health checks "
        "(else the bootloader rolls back).",
        "- **Security Guarantees:** authenticity and integrity of every update, verified by the "
        "device itself before installation; binding to product, board and chip; no downgrade "
        "below the security floor; a release that failed its trial is never retried.",
        f"- **Cryptographic Details:** manifest signatures: {algs_text}, over the exact stored "
        "bytes, keys frozen into the firmware; payload: SHA-256; transport: https with a "
        "configured CA (defence in depth).",
        "- **Initiation and Interaction:** automatic, initiated by the device; no user action "
        "needed. The app may offer \"install now\" (one action) and \"later\".",
        f"- **Configuration:** defaults auto_check={settings.get('auto_check')}, "
        f"auto_install={settings.get('auto_install')}, notify={settings.get('notify')}, "
        f"maintenance window={settings.get('window') or 'none (any time)'}; the user can turn "
        f"automatic installing off, postpone (security updates at most {_seconds(sec_max)}, "
        f"others at most {_seconds(policy.get('postpone_max_s'))}) and set a window in local "
        "time. Settings persist across reboots, updates and rollbacks.",
        f"- **Update Checking:** first check within {_seconds(first_s)} after start (random), "
        f"then every {_seconds(check_s)} ± {jitter_pct:g} %; on failure "
        f"exponential backoff {policy.get('backoff_s')} s with jitter; Retry-After honoured.",
        "- **User Notification:** update available (version, notes, severity and risk in plain "
        "words), postponed, downloaded, restart ahead (at least notice_s"
        + (f" = {cfg['notice_s']} s" if "notice_s" in cfg else "")
        + " before, with expected downtime), applied, failed, rolled back, end of support; via "
        "the app's callback and, in the example app, an LED pattern on the device.",
    ]
    return "\n".join(lines) + "\n"


# What each kind of partition holds (ESP-IDF types: app 0, data 1; data subtypes), and how it
# changes: the IXIT 6-SoftComp draft says this for every partition of the board's table.
_DATA = {0: ("otadata", "data: which OTA slot boots, written by the bootloader and the agent"),
         1: ("phy", "data: RF calibration"),
         2: ("nvs", "data: the agent's security state (installed sequence, floor, trial) and "
                    "other settings; not software")}
_FROZEN = {"ota": "the update agent", "doorlock.py": "the example app",
           "ota_keys.py": "the root and release keys",
           "boot.py": "takes the filesystem off sys.path", "main.py": "starts the app"}


def ixit_softcomp(board: Board) -> str:
    """A draft IXIT 6-SoftComp entry (markdown) for ``board``: every software component, from
    its partition table and frozen-module manifest, with how it is updated or why it is not."""
    from otakit.frozen import frozen_entries  # noqa: PLC0415 - frozen pulls in the key code

    slots = board.ota_slots
    frozen = ", ".join(f"`{name}`" + (f" ({_FROZEN[name]})" if name in _FROZEN else "")
                       for _, name in frozen_entries(board))
    lines = [
        f"### IXIT 6-SoftComp: software components of board {board.name} (draft)",
        "",
        f"- **Application firmware** (partitions {', '.join(p.label for p in slots)}, "
        f"{slots[0].size // 1024} KiB each): MicroPython and the ESP-IDF runtime with the frozen "
        f"modules {frozen}. Updatable: as one signed image by the otakit agent (the spare slot, "
        "read back, trial boot, rollback; IXIT 7-UpdMech).",
        "- **Release keys**: updatable apart from the firmware by a keyring document signed by "
        "a threshold of the frozen root keys (docs/format.md §7); the root keys change only "
        "with a firmware update.",
        f"- **Second-stage bootloader** (at {board.bootloader_offset:#x}) and **partition "
        "table** (at 0x8000): not updatable over the air, written only over USB/serial "
        "(esptool). Justification: a power loss while either is rewritten leaves no bootable "
        "device, and the A/B slots need neither to change.",
        "- **ROM bootloader**: immutable (mask ROM).",
    ]
    for p in board.partitions:
        if p.type == 1 and p.subtype in _DATA:
            lines.append(f"- `{p.label}` ({p.size // 1024} KiB): {_DATA[p.subtype][1]}.")
    vfs = [p for p in board.partitions if p.label == "vfs"]
    where = (f"partition `vfs`, {vfs[0].size // 1024} KiB" if vfs else
             "`vfs`, the flash after the last partition, registered at run time")
    lines.append(f"- **Filesystem** ({where}): user data; no code is imported from it (the "
                 "frozen boot.py).")
    return "\n".join(lines) + "\n"
