"""Draft IXIT entries (ETSI TS 103 701) for the compliance report, from the code as it is.

- 7-UpdMech (`ixit_updmech`): every way code or trust reaches the board (the OTA agent, the
  keyring update, files written over USB/REPL, esptool flashing); the OTA entry from the device's
  actual defaults (``firmware/ota/settings.py`` and ``firmware/ota/policy.py``, read with `ast`,
  not imported) and, when given, the device's provisioning file and a repository's algorithms.
- 6-SoftComp (`ixit_softcomp`): every software component of a board, from its partition table
  and frozen-module manifest.
- 20-SecBoot (`ixit_secboot`): Secure Boot as the board definition states it (``secure_boot``
  in board.json); "not enabled" when it says nothing, as otakit's builds enable none.
- 2-UserInfo, 4-Conf, 8-UpdProc, 11-ComMech, 23-ResMech, 29-InpVal: from the release
  repository, the device configuration and the agent's bounds (``const()`` values read from the
  device sources); what only the manufacturer can state is marked "[the manufacturer states]".
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from otakit.boards import Board
from otakit.paths import BOARDS_DIR, FIRMWARE_DIR


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
        days = v / 86400
        return f"{v:g} s ({days:g} day{'' if days == 1 else 's'})" if v >= 86400 else f"{v:g} s"
    return str(v)


def ixit_updmech(device_config: dict | None = None, algs: list[str] | None = None,
                 board: Board | None = None) -> str:
    """A draft IXIT 7-UpdMech (markdown): the OTA mechanism from the actual defaults and
    configuration, then every other way code or trust reaches the board."""
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
        "### IXIT 7-UpdMech: update mechanisms (draft)",
        "",
        "Every way code, or the trust in code, reaches the board. TS 103 701 applies 5.3-2-2 "
        "to each of them (5.3-1-2).",
        "",
        "#### 1. otakit over-the-air update",
        "",
        "- **Description:** the device fetches a signed manifest for its product, board and "
        "channel from the release repository"
        + (f" ({cfg['url']})" if cfg.get("url") else "")
        + ", verifies it, streams the payload into the spare OTA slot, reads it back, switches "
        "boot, restarts at a safe moment and confirms the new firmware after its health checks "
        "(else the bootloader rolls back).",
        "- **Security Guarantees:** authenticity and integrity of every update, verified by the "
        "device itself before installation; binding to product, board, chip and channel; a "
        "signed revision per channel the device persists (no replay of an older document); "
        "expiry checked on every answer; no downgrade below the security floor, which a new "
        "board takes from its own firmware; a release that failed its trial is never retried.",
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
        "",
        "#### 2. Keyring update (the release keys)",
        "",
        "- **Description:** a keyring document (docs/format.md §7) adds or revokes release "
        "keys without a firmware update; fetched by the agent beside the manifest.",
        "- **Security Guarantees:** signed by a threshold of the root keys frozen in the "
        "firmware; ordered by version (no rollback), expiring; a manifest names the keyring "
        "version it needs.",
        "",
        "#### 3. Files written over USB/serial (the REPL, mpremote, `otakit deploy`)",
        "",
        "- **Description:** anyone with the USB cable and a REPL can write files to the "
        "board's filesystem; `otakit deploy` uses this path to put the agent on a development "
        "board running stock MicroPython.",
        "- **Security Guarantees:** on a product build (agent and app frozen into the signed "
        "image) the frozen boot.py takes the filesystem off sys.path, so a written file is "
        "data, never imported code. No guarantee on a development board. Disabling the REPL "
        "on a product (5.6-4) is the manufacturer's build choice (IXIT 15-Intf).",
        "",
        "#### 4. Serial flashing with esptool (`otakit flash`)",
        "",
        "- **Description:** the ROM download mode writes the bootloader, the partition table "
        "and an app image over the serial port.",
        "- **Security Guarantees:** " + _secure_boot_sentence(board) + " Without Secure Boot "
        "the board runs any image written this way; otakit's checks before writing (chip id, "
        "partition table, slot size) protect the user from mistakes, not from an attacker.",
    ]
    return "\n".join(lines) + "\n"


def secure_boot_state(board: Board | None) -> str | None:
    """The board definition's ``secure_boot`` entry (e.g. ``"v2"``), or None when it says
    nothing (the MicroPython builds otakit makes enable none)."""
    if board is None:
        return None
    try:
        doc = json.loads((BOARDS_DIR / board.name / "board.json").read_text())
    except (OSError, ValueError):
        return None
    value = doc.get("secure_boot")
    return str(value) if value else None


def _secure_boot_sentence(board: Board | None) -> str:
    state = secure_boot_state(board)
    if state:
        return f"the board definition states Secure Boot {state} is enabled."
    name = board.name if board else "the board"
    return (f"Secure Boot is not enabled: the board definition of {name} does not enable "
            "it and otakit's builds enable none; the manufacturer states whether the product "
            "burns the eFuses for Secure Boot V2, flash encryption and secure download mode.")


def ixit_secboot(board: Board | None) -> str:
    """A draft IXIT 20-SecBoot entry (markdown)."""
    state = secure_boot_state(board)
    return "\n".join([
        "### IXIT 20-SecBoot: secure boot (draft)",
        "",
        "- **Detection Mechanisms:** " + _secure_boot_sentence(board) + " What otakit does "
        "check at boot: the bootloader boots a trial image once and rolls back unless the app "
        "confirms it; the agent checks the running image's app descriptor.",
        "- **User Notification / Notification Functionality:** "
        + ("the ESP-IDF bootloader refuses an image whose signature fails."
           if state else "none (without Secure Boot, a replaced image is not detected)."),
    ]) + "\n"


# What each kind of partition holds (ESP-IDF types: app 0, data 1; data subtypes), and how it
# changes: the IXIT 6-SoftComp draft says this for every partition of the board's table.
_DATA = {0: ("otadata", "data: which OTA slot boots, written by the bootloader and the agent"),
         1: ("phy", "data: RF calibration"),
         2: ("nvs", "data: the agent's security state (installed sequence, floor, trial) and "
                    "other settings; not software")}
_FROZEN = {"ota": "the update agent", "doorlock.py": "the example app",
           "ota_keys.py": "the root and release keys",
           "boot.py": "takes the filesystem off sys.path", "main.py": "starts the app",
           "ota_origin.py": "the firmware's own sequence and security version, its floor"}


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


def _const(module: str, name: str) -> object:
    """``NAME = const(N)`` (or ``NAME = N``) in a device module, read from its source."""
    for node in ast.walk(ast.parse((FIRMWARE_DIR / "ota" / module).read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            v = node.value
            if isinstance(v, ast.Call) and v.args:
                v = v.args[0]
            try:
                return ast.literal_eval(v)
            except ValueError:
                return ast.unparse(v)
    return "?"


MANUFACTURER = "[the manufacturer states]"


def ixit_userinfo(repo_facts: dict | None = None) -> str:
    """A draft IXIT 2-UserInfo entry from the release repository's signed support end and the
    statements `otakit support publish` wrote there; the rest is the manufacturer's."""
    rf = repo_facts or {}
    pub = rf.get("published") or []
    models = ", ".join(sorted({str(s.get("model")) for s in pub if s.get("model")}))
    end = rf.get("support_end")
    where = ", ".join(str(s.get("path")) for s in pub if s.get("path"))
    return "\n".join([
        "### IXIT 2-UserInfo: user information (draft)",
        "",
        "- **Support Period:** " + (f"until {end} (the latest support_end signed into the "
                                    "release manifests; never shortened)" if end else
                                    MANUFACTURER + " (give --repo to read the signed one)"),
        "- **Publication of Support Period:** "
        + (f"`otakit support publish` wrote {where} (page, JSON, label text), served by the "
           "update server with no login; " if where else "`otakit support publish` writes "
           "the page, JSON and label text into the repository; ")
        + "the public address where it is published: " + MANUFACTURER + ".",
        "- **Model Designation:** " + (models + " (from the published statement)" if models
                                       else MANUFACTURER) + "; on the device "
        "Agent.device_info() gives it in plain text.",
        "- **Publication of VDP:** " + MANUFACTURER + " (otakit has no vulnerability "
        "disclosure policy of its own for a product).",
        "- **Publication of Non-Updatable / Documentation of Replacement:** not applicable "
        "(the software is updatable; IXIT 6-SoftComp).",
    ]) + "\n"


def ixit_conf() -> str:
    """A draft IXIT 4-Conf: the confirmations only the manufacturer can give."""
    return "\n".join([
        "### IXIT 4-Conf: confirmations (draft; the manufacturer confirms each)",
        "",
        "- **Confirmation of Update Procedures** (5.3-8): security updates are produced and "
        "released within the time frames of IXIT 8-UpdProc. " + MANUFACTURER,
        "- **Confirmation of Support Period** (5.3-13): the published period is honoured and "
        "never shortened (`otakit support publish` refuses to shorten it). " + MANUFACTURER,
        "- **Confirmation of Key Management:** release and root private keys are kept offline "
        "or in an HSM (`otakit keygen --pkcs11`), development keys never sign production "
        "releases. " + MANUFACTURER,
    ]) + "\n"


def ixit_updproc(device_config: dict | None = None) -> str:
    """A draft IXIT 8-UpdProc: otakit's release steps and the device-side delay bound; the
    time frames per severity are the manufacturer's."""
    policy = _defaults(FIRMWARE_DIR / "ota" / "policy.py", "Policy")
    cfg = device_config or {}
    check_s = cfg.get("check_s", policy.get("check_s"))
    sec_max = cfg.get("security_postpone_max_s", policy.get("security_postpone_max_s"))
    return "\n".join([
        "### IXIT 8-UpdProc: security update procedure (draft)",
        "",
        "- **Description:** fix, build (`otakit build`), sign and publish with `otakit release "
        "--security --severity S --risk TEXT` (severity and risk required), optionally a staged "
        "`otakit rollout`; `otakit verify` checks the repository. Devices pick the release up at "
        f"their next check (every {_seconds(check_s)} with jitter) and a user can postpone a "
        f"security update at most {_seconds(sec_max)}.",
        "- **Time Frame:** " + MANUFACTURER + ": days from a confirmed vulnerability to a "
        "signed release, per severity; who does each step; the third parties (MicroPython, "
        "ESP-IDF, mbedTLS) whose fixes it waits for.",
    ]) + "\n"


def ixit_commech(device_config: dict | None = None) -> str:
    """A draft IXIT 11-ComMech from the device's configuration and the client's code."""
    url = str((device_config or {}).get("url", ""))
    scheme = ("https (from the device configuration)" if url.startswith("https://") else
              "plain http (from the device configuration): no transport security"
              if url.startswith("http://") else
              "https or http, as the product's ota_config.json says " + MANUFACTURER)
    return "\n".join([
        "### IXIT 11-ComMech: communication mechanisms (draft)",
        "",
        f"- **Update channel:** HTTP/1.1 GET of the manifest, keyring and payload; {scheme}. "
        "With https the server certificate is verified against the configured CA and the "
        "host name; https without a CA is refused; a redirect from https to http is refused; "
        f"at most {_const('http.py', '_REDIRECTS_MAX')} redirects.",
        "- **Security Guarantees:** the signature on every manifest is the primary protection "
        "(IXIT 7); TLS adds confidentiality and server authentication.",
        "- **Cryptographic Details:** TLS as the MicroPython build's mbedTLS provides it; the "
        "allowed TLS versions and cipher suites: " + MANUFACTURER + " (otakit sets no floor).",
        "- **Telemetry:** an optional POST of update events to the report endpoint, the reply "
        f"read into a {_const('http.py', '_LINE_MAX')}-byte line buffer.",
        "- **Listening ports:** none opened by the agent (outbound only).",
    ]) + "\n"


def ixit_resmech() -> str:
    """A draft IXIT 23-ResMech: resilience mechanisms, from the agent's design."""
    policy = _defaults(FIRMWARE_DIR / "ota" / "policy.py", "Policy")
    return "\n".join([
        "### IXIT 23-ResMech: resilience mechanisms (draft)",
        "",
        f"- **Network outage:** exponential backoff {policy.get('backoff_s')} s with jitter, "
        "Retry-After honoured; a download resumes from the last block in flash; every download "
        "has a deadline from its size and a minimum rate.",
        "- **Power loss:** A/B slots; the download state is saved per block; set_boot() is the "
        "single commit point; a trial boot is confirmed by the app's health checks or rolled "
        "back by the bootloader; the power-cut campaign cuts at every flash operation "
        "(`make campaign`).",
        "- **Local function:** the app runs beside the update loop; with no update server "
        "the device keeps working; a malformed user file falls back to defaults.",
    ]) + "\n"


def ixit_inpval() -> str:
    """A draft IXIT 29-InpVal: every input the agent reads and its bound, from the code."""
    return "\n".join([
        "### IXIT 29-InpVal: input validation (draft)",
        "",
        f"- **Manifest:** at most {_const('manifest.py', '_MAX')} bytes; the signature is "
        "checked over the raw bytes first, then the body is parsed as strict UTF-8 JSON and "
        "checked field by field (types, ranges, path rules) against docs/format.md §2.",
        f"- **Keyring document:** at most {_const('keyring.py', '_MAX')} bytes, at most "
        f"{_const('keyring.py', '_MAX_SIGS')} signatures and {_const('keyring.py', '_MAX_KEYS')} "
        "keys; threshold signatures checked first.",
        f"- **HTTP responses:** status and header lines at most "
        f"{_const('response.py', '_LINE_MAX')} bytes, at most "
        f"{_const('response.py', '_HEADERS_MAX')} header fields, numbers at most "
        f"{_const('httpparse.py', '_DIGITS_MAX')} digits; never read past Content-Length.",
        "- **Payload:** hashed (SHA-256) while written, read back before set_boot(); encoded "
        "payloads bounded in work per output byte.",
        f"- **User files** (ota_settings.json, ota_config.json, the app's config): at most "
        f"{_const('settings.py', 'MAX_FILE')} bytes, validated field by field; a bad one is "
        "replaced by defaults with a notice (BAD_SETTINGS / BAD_CONFIG).",
        "- **Update server** (`otakit serve`): header-read timeout, per-client connection cap, "
        "400 for a malformed Range or percent-encoding.",
    ]) + "\n"


def all_drafts(board: Board, device_config: dict | None = None, algs: list[str] | None = None,
               repo_facts: dict | None = None) -> str:
    """Every IXIT draft of the report, in TS 103 701's order."""
    return "\n".join([ixit_userinfo(repo_facts), ixit_conf(), ixit_softcomp(board),
                      ixit_updmech(device_config, algs, board), ixit_updproc(device_config),
                      ixit_commech(device_config), ixit_secboot(board), ixit_resmech(),
                      ixit_inpval()])
