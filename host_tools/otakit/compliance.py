"""The EN 303 645 §5.3 evidence report (in the style of an ETSI TS 103 701 assessment).

`build_report` maps each provision to otakit's mechanism and the tests that show it, reads their
results from a JUnit XML file (``pytest --junitxml``), and decides a status:

- ``met``: otakit provides the mechanism and every mapped test passed;
- ``not applicable``: with the condition that makes it so;
- ``not met``: a mapped test failed or did not run, or the provision depends on something otakit
  does not (yet) do; the row says what is missing.

Provision wording is summarised, not quoted (see ../shared/reference/compliance-map.md for its
sources); check the official text before citing it in a declaration. The IXIT drafts appended to
the report come from `otakit.ixit`.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from otakit.boards import load_board
from otakit.ixit import ixit_softcomp, ixit_updmech

MET, NA, NOT_MET = "met", "not applicable", "not met"

A = "tests/device/test_agent.py::"
P = "tests/device/test_policy.py::"
D = "tests/device/test_doorlock.py::"
M = "tests/device/test_manifest.py::"
C = "tests/device/test_crypto.py::"
H = "tests/device/test_http.py::"
S = "tests/host/test_compliance.py::"
R = "tests/device/test_resilience.py::"
W = "tests/sim/test_sim_campaign.py::"
X = "tests/device/test_security.py::"
TS = "tests/device/test_trust_state.py::"
TF = "tests/device/test_trust_freshness.py::"
J = "tests/device/test_strictjson.py::"


@dataclass
class Provision:
    """One row: id, status in the standard, summary, otakit's mechanism, tests, and a fixed
    verdict when tests alone cannot decide (``gap`` = not met because of it; ``na`` = N/A)."""

    pid: str
    kind: str
    summary: str
    mechanism: str
    tests: list[str] = field(default_factory=list)
    gap: str = ""
    na: str = ""


PROVISIONS = [
    Provision("5.3-1", "R", "All software components should be securely updateable.",
              "The whole app image (MicroPython, the frozen app, its boot.py and main.py, and "
              "the frozen keyring) is one signed, updatable unit; the frozen boot.py takes the "
              "writable filesystem off sys.path, so no code outside that unit is imported. The "
              "IXIT 6-SoftComp draft below lists every component of the board with how it is "
              "updated, or why it is not (the bootloader and the partition table).",
              [A + "test_update_installs_and_confirms",
               X + "test_code_on_the_filesystem_is_never_imported",
               S + "test_ixit_softcomp_names_every_component_and_how_it_changes"]),
    Provision("5.3-2", "M", "An update mechanism for the secure installation of updates.",
              "Signed manifest verified before anything is parsed or erased; payload hashed while "
              "streamed into the spare slot, read back and compared before set_boot(); trial "
              "boot with automatic rollback; anti-rollback floor. No replayed signed document "
              "moves a device backwards or sideways: manifests are bound to their channel, "
              "ordered by a signed revision the device persists, checked for expiry on every "
              "answer (a 304 included) and bound to the keyring version they need; a board is "
              "born knowing its own sequence and security version.",
              [A + "test_altered_payload_is_refused_and_boot_target_unchanged",
               TS + "test_attack_channel_hop", TS + "test_attack_undo_abort",
               TS + "test_attack_undo_pause", TS + "test_attack_factory_fresh_downgrade",
               TS + "test_attack_support_end_replay", TF + "test_attack_304_frozen_channel",
               TF + "test_attack_revocation_suppression",
               TF + "test_download_deadline_slow_drip",
               "tests/device/test_agent_encoded.py::test_attack_delta_cpu_bomb",
               A + "test_altered_manifest_is_refused_before_any_erase",
               A + "test_failed_trial_rolls_back_and_is_never_retried",
               A + "test_release_for_another_board_is_refused",
               A + "test_full_firmware_bin_is_refused_before_set_boot"]),
    Provision("5.3-3", "M", "Updates shall be simple for the user to apply.",
              "Updates install with no user interaction; Updater.install_now() is one action.",
              [A + "test_update_installs_and_confirms",
               P + "test_disable_auto_install_keeps_checking_and_notifying"]),
    Provision("5.3-4", "R", "Automatic mechanisms should be used for software updates.",
              "auto_check and auto_install are on in the initialized state.",
              [P + "test_factory_defaults_auto_on", A + "test_update_installs_and_confirms"]),
    Provision("5.3-5", "R", "Check after initialization, then periodically, for security updates.",
              "First check a random 10-100 % of first_s after boot, then every check_s with "
              "jitter; exponential backoff with jitter on failure; Retry-After honoured.",
              [P + "test_check_after_init_and_periodic_with_jitter",
               P + "test_backoff_on_503_honours_retry_after"]),
    Provision("5.3-6", "R", "Automatic updates and notifications enabled by default; the user "
              "can enable, disable or postpone them.",
              "Settings (ota_settings.json, persisted, versioned): auto_install, auto_check, "
              "notify, maintenance window; bounded postponement.",
              [P + "test_factory_defaults_auto_on",
               P + "test_disable_auto_install_keeps_checking_and_notifying",
               P + "test_postpone_then_install_after_expiry", P + "test_notify_toggle",
               P + "test_settings_persist_validate_and_write_atomically",
               D + "test_config_migrated_only_after_confirm"]),
    Provision("5.3-7", "M", "Best practice cryptography for the update mechanism.",
              "Ed25519 (RFC 8032, strict encodings) or RSA-3072-PSS-SHA256 over the exact "
              "manifest bytes; SHA-256 of the payload.",
              [C + "test_rfc8032_vectors_verify_and_tampering_is_refused",
               C + "test_wycheproof_ed25519", C + "test_wycheproof_rsa_pss_3072",
               C + "test_random_host_signatures_verify_and_bit_flips_are_refused"]),
    Provision("5.3-8", "M", "Security updates shall be timely.",
              "On the device a security update can be postponed at most "
              "security_postpone_max_s, then installs in the next window.",
              [P + "test_postpone_then_install_after_expiry",
               P + "test_security_update_after_bound_waits_for_window"],
              gap="Timeliness is mostly the manufacturer's process (IXIT 8-UpdProc: severity "
                  "time frames); otakit publishes no SLA and measures no fix-to-release time."),
    Provision("5.3-9", "R", "The device should verify authenticity and integrity of updates.",
              "The device itself verifies the signature (keys frozen in firmware), the target "
              "binding (product, board, chip, channel) and the payload hash, before installing; "
              "the body is strict JSON, parsed identically on host and device.",
              [M + "test_every_single_bit_flip_is_refused", TS + "test_attack_channel_hop",
               J + "test_host_and_device_agree_on_10000_generated_bodies",
               M + "test_check_target_refuses_what_this_device_must_not_install",
               A + "test_altered_payload_is_refused_and_boot_target_unchanged"]),
    Provision("5.3-10", "M", "Updates over a network are verified via a trust relationship.",
              "Digital signature with the frozen keyring (primary); https with a configured CA "
              "(secondary).",
              [A + "test_altered_manifest_is_refused_before_any_erase",
               H + "test_https_verifies_the_server_against_the_configured_ca"]),
    Provision("5.3-11", "R", "The user is told that a security update is needed and the risks "
              "it mitigates.",
              "`otakit release --security` requires --severity and --risk; the device's "
              "AVAILABLE notice states severity and risk in plain words; the example app "
              "shows an LED pattern.",
              [P + "test_postpone_then_install_after_expiry",
               S + "test_release_security_needs_severity_and_risk"]),
    Provision("5.3-12", "R", "The user is told when an update will disrupt basic functioning.",
              "DISRUPTION notice (restart, expected downtime) at least notice_s before the "
              "restart, shown on the device; the restart waits for can_reboot(); the lock's "
              "button is served during the whole update.",
              [P + "test_restart_waits_for_notice_and_safe_moment",
               D + "test_button_served_during_whole_update"]),
    Provision("5.3-13", "M", "The defined support period is published, accessibly and clearly.",
              "`otakit support publish` writes an HTML page, JSON and label text into the "
              "repository (served with no login); never shortened; the device reports "
              "support_end and gives an end-of-support notice.",
              [S + "test_support_publish_writes_page_json_and_label",
               S + "test_support_never_shortened",
               P + "test_eol_notice_after_end_and_device_keeps_working"]),
    Provision("5.3-14", "R C", "Constrained devices that cannot be updated: rationale and "
              "replacement published.", "-",
              na="Only for devices whose software cannot be updated; otakit devices can."),
    Provision("5.3-15", "R C", "Constrained devices that cannot be updated: isolable, hardware "
              "replaceable.", "-",
              na="Only for devices whose software cannot be updated; otakit devices can."),
    Provision("5.3-16", "M", "The model designation is clearly recognizable (label or physical "
              "interface).",
              "On the device, Agent.device_info() gives the model designation, the hardware, "
              "the firmware read from the running image's app descriptor, the installed "
              "release and the end of support as plain text; the example app prints it on the "
              "serial console at every boot. `otakit support publish` generates box-label text "
              "with the model designation (placing the label is the manufacturer's).",
              [D + "test_device_info_names_model_and_running_firmware",
               S + "test_support_publish_writes_page_json_and_label"]),
    Provision("5.5-1", "M", "Best practice cryptography to communicate securely.",
              "https with certificate and host name verification against a configured CA; "
              "https without a CA is refused.",
              [H + "test_https_verifies_the_server_against_the_configured_ca",
               H + "test_https_refuses_a_certificate_for_another_host"]),
    Provision("5.9-1", "R", "Resilient to outages of networks and power.",
              "Network trouble is retried with backoff (Retry-After honoured); download "
              "progress is saved after every block and resumed; trial records are ordered so "
              "any prefix is safe and set_boot() is the single commit point. The power-cut "
              "campaign cuts the power during a whole update cycle (check, download, "
              "set_boot, trial, confirm; a rollback; the update after one the agent "
              "installed; the door-lock app's loop): in this report every 10th flash "
              "operation plus every operation from the end of the download on, plus second "
              "cuts during recovery; `make campaign` cuts at every operation "
              "(docs/reliability.md).",
              [A + "test_server_trouble_is_retried_later",
               P + "test_backoff_on_503_honours_retry_after",
               R + "test_network_fault",
               R + "test_lost_connection_resumes_losing_less_than_a_block",
               R + "test_power_cut_mid_download_resumes_from_flash",
               W + "test_reduced_campaign_survives_every_cut"]),
    Provision("5.9-2", "R", "Remains locally functional without network; recovers cleanly "
              "after power loss.",
              "The lock runs beside the update loop and is served throughout an update, and "
              "with no update server at all (every press served while three checks fail); "
              "network failures never stop the app. After a power cut at any sampled point "
              "of an update the board boots a signed image, ends updated (or rolled back) "
              "with no boot loop, and the user's files are intact (power-cut campaign, over "
              "a bare agent script and over the door-lock app's own update loop).",
              [D + "test_button_served_during_whole_update",
               D + "test_lock_works_with_no_update_server",
               A + "test_server_trouble_is_retried_later",
               W + "test_reduced_campaign_survives_every_cut"]),
    Provision("5.13-1", "M", "Data input via interfaces is validated.",
              "Manifests: signature first, then a strict schema with bounds; HTTP responses "
              "parsed with bounds; user settings validated (unknown names and bad values "
              "refused).",
              [M + "test_every_single_bit_flip_is_refused", TS + "test_attack_channel_hop",
               J + "test_host_and_device_agree_on_10000_generated_bodies",
               M + "test_every_vector_gives_its_expected_result",
               H + "test_malformed_response_is_bad_response",
               P + "test_settings_persist_validate_and_write_atomically"]),
    Provision("CRA I(2)(c)", "-", "Vulnerabilities addressed by security updates: automatic by "
              "default, easy opt-out, notification of available updates, temporary "
              "postponement.",
              "auto_install on by default; Settings.set(auto_install=False); AVAILABLE "
              "notices; bounded postponement.",
              [P + "test_factory_defaults_auto_on",
               P + "test_disable_auto_install_keeps_checking_and_notifying",
               P + "test_postpone_then_install_after_expiry"]),
]


def read_junit(path: Path) -> dict[str, str]:
    """``{"tests/x.py::test_name[param]": "passed" | "failed" | "skipped"}`` from JUnit XML."""
    out: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        node = cls.replace(".", "/") + ".py::" + name
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif case.find("skipped") is not None:
            out[node] = "skipped"
        else:
            out[node] = "passed"
    return out


def mapped_tests() -> list[str]:
    """Every test id the report maps (for ``pytest`` to run)."""
    return sorted({t for p in PROVISIONS for t in p.tests})


def _result(test: str, results: dict[str, str]) -> str:
    """passed / failed / skipped / not run, over a test's parametrised cases."""
    seen = [v for k, v in results.items() if k == test or k.startswith(test + "[")]
    if not seen:
        return "not run"
    if "failed" in seen:
        return "failed"
    return "passed" if all(v == "passed" for v in seen) else "skipped"


@dataclass
class Row:
    """One provision's verdict."""

    provision: Provision
    status: str
    why: str
    results: list[tuple[str, str]]


def evaluate(results: dict[str, str]) -> list[Row]:
    """Decide every provision's status from the test results."""
    rows = []
    for p in PROVISIONS:
        res = [(t, _result(t, results)) for t in p.tests]
        bad = [t.split("::")[1] for t, r in res if r != "passed"]
        if p.na:
            rows.append(Row(p, NA, p.na, res))
        elif bad:
            rows.append(Row(p, NOT_MET, "tests not passed: " + ", ".join(bad), res))
        elif p.gap:
            rows.append(Row(p, NOT_MET, p.gap, res))
        else:
            rows.append(Row(p, MET, "", res))
    return rows


def render_markdown(rows: list[Row], ixit: str, source: str) -> str:
    """The report as markdown."""
    counts = {s: sum(r.status == s for r in rows) for s in (MET, NA, NOT_MET)}
    out = ["# otakit: EN 303 645 §5.3 evidence report", "",
           f"Test results: {source}. Provision wording is summarised; check the official "
           "text before citing it.", "",
           f"**{counts[MET]} met, {counts[NA]} not applicable, {counts[NOT_MET]} not met.**", "",
           "| provision | status | mechanism | tests (result) | note |",
           "|---|---|---|---|---|"]
    for r in rows:
        p = r.provision
        tests = "<br>".join(f"`{t.split('::')[1]}` ({res})" for t, res in r.results) or "-"
        out.append(f"| **{p.pid}** ({p.kind}) {p.summary} | {r.status} | {p.mechanism} | "
                   f"{tests} | {r.why} |")
    out += ["", ixit]
    return "\n".join(out) + "\n"


def render_html(markdown_rows: list[Row], ixit: str, source: str) -> str:
    """The report as a standalone HTML page."""
    e = html.escape
    body = []
    for r in markdown_rows:
        p = r.provision
        tests = "<br>".join(f"{e(t.split('::')[1])} ({e(res)})" for t, res in r.results)
        body.append(f"<tr><td><b>{e(p.pid)}</b> ({e(p.kind)}) {e(p.summary)}</td>"
                    f"<td class=\"{r.status.replace(' ', '-')}\">{e(r.status)}</td>"
                    f"<td>{e(p.mechanism)}</td><td>{tests or '-'}</td><td>{e(r.why)}</td></tr>")
    sections = []  # the IXIT drafts: a heading, then its bullets
    for line in ixit.splitlines():
        if line.startswith("#"):
            sections.append([f"<h2>{e(line.lstrip('# '))}</h2>"])
        elif line.startswith("- ") and sections:
            sections[-1].append(f"<li>{e(line[2:])}</li>")
    ixit_html = "".join(f"{sec[0]}<ul>{''.join(sec[1:])}</ul>" for sec in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>otakit EN 303 645 §5.3 evidence report</title>
<style>td{{vertical-align:top;border:1px solid #ccc;padding:4px}} .met{{color:green}}
.not-met{{color:#b00}}</style></head><body>
<h1>otakit: EN 303 645 §5.3 evidence report</h1><p>Test results: {e(source)}.</p>
<table><tr><th>provision</th><th>status</th><th>mechanism</th><th>tests</th><th>note</th></tr>
{''.join(body)}</table>
{ixit_html}
</body></html>
"""


def write_report(out: Path, results: dict[str, str], source: str,
                 device_config: dict | None = None, algs: list[str] | None = None,
                 board: str = "esp32") -> list[Row]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into ``out``."""
    rows = evaluate(results)
    ixit = ixit_updmech(device_config, algs) + "\n" + ixit_softcomp(load_board(board))
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render_markdown(rows, ixit, source))
    (out / "report.html").write_text(render_html(rows, ixit, source))
    (out / "report.json").write_text(json.dumps(
        [{"provision": r.provision.pid, "status": r.status, "note": r.why,
          "tests": dict(r.results)} for r in rows], indent=1) + "\n")
    return rows
