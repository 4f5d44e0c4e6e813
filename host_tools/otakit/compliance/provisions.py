"""The ICS and the test cases of the compliance report (EN 303 645 §5.3 in the ETSI TS 103 701
shape).

Each `Provision` is an ICS row: its status in the standard (M, R, "M C", "R C"), the condition
of a conditional status and whether it holds for a device that uses otakit. Each provision has
test cases (`Case`) as TS 103 701 names them: ``5.3-2-1`` conceptual (the design, as the IXIT
describes it), ``5.3-2-2`` functional (the device under test). A case lists the tests that show
it, optional tests that count only when they ran (third-party vector suites), whether it rests
on the devised-attack table (`otakit.compliance.attacks`), and, when its verdict depends on the
manufacturer's own act (publishing, timeliness, the product's user interface), what the
manufacturer must supply: such a case is INCONCLUSIVE until a lab has that.

Provision wording is summarised, not quoted (../shared/reference/compliance-map.md lists the
sources); check the official text before citing it in a declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

A = "tests/device/test_agent.py::"
P = "tests/device/test_policy.py::"
D = "tests/device/test_doorlock.py::"
M = "tests/device/test_manifest.py::"
C = "tests/device/test_crypto.py::"
H = "tests/device/test_http.py::"
S = "tests/host/test_compliance.py::"
V = "tests/host/test_compliance_vectors.py::"
R = "tests/device/test_resilience.py::"
W = "tests/sim/test_sim_campaign.py::"
X = "tests/device/test_security.py::"
J = "tests/device/test_strictjson.py::"
L = "tests/device/test_doorlock_local.py::"
F = "tests/fleet/"
B = "tests/device/test_bundle.py::"


@dataclass
class Case:
    """One TS 103 701 test case: ``c`` conceptual or ``f`` functional."""

    tcid: str
    kind: str
    checks: str
    tests: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    attacks: bool = False
    manufacturer: str = ""


@dataclass
class Provision:
    """One ICS row and its test cases. ``applies`` False (with ``condition`` saying why) makes
    every case N/A."""

    pid: str
    status: str
    summary: str
    mechanism: str
    cases: list[Case]
    condition: str = ""
    applies: bool = True
    ixit: str = ""


UPDATABLE = "the device's software can be updated (not a constrained device)"

PROVISIONS = [
    Provision(
        "5.3-1", "R", "All software components should be securely updateable.",
        "The whole app image (MicroPython, the frozen app, its boot.py and main.py, and the "
        "frozen keyring) is one signed, updatable unit; the frozen boot.py takes the writable "
        "filesystem off sys.path, so no code outside that unit is imported. IXIT 6-SoftComp "
        "lists every component with how it is updated, or why it is not.",
        [Case("5.3-1-1", "c", "every component without an update mechanism has a "
              "justification (IXIT 6-SoftComp)",
              [S + "test_ixit_softcomp_names_every_component_and_how_it_changes",
               X + "test_code_on_the_filesystem_is_never_imported"]),
         Case("5.3-1-2", "f", "5.3-2-2 applied to every way code reaches the board (IXIT "
              "7-UpdMech: OTA, keyring update, USB/REPL writes, esptool)",
              [A + "test_update_installs_and_confirms", X + "test_older_keyring_is_refused",
               X + "test_code_on_the_filesystem_is_never_imported"],
              manufacturer="whether the product enables ESP32 Secure Boot V2 and flash "
              "encryption and disables the USB/serial REPL (IXIT 20-SecBoot, 15-Intf): "
              "without them anyone with the USB cable writes any image with esptool, which "
              "no otakit check sees")],
        ixit="6-SoftComp, 7-UpdMech, 20-SecBoot"),
    Provision(
        "5.3-2", "M C", "An update mechanism for the secure installation of updates.",
        "Signed manifest verified before anything is parsed or erased; payload hashed while "
        "streamed into the spare slot, read back and compared before set_boot(); trial boot "
        "with automatic rollback; anti-rollback floor. No replayed signed document moves a "
        "device backwards or sideways: manifests are bound to their channel, ordered by a "
        "signed revision the device persists, checked for expiry on every answer (a 304 "
        "included) and bound to the keyring version they need; a board is born knowing its "
        "own sequence and security version.",
        [Case("5.3-2-1", "c", "the design of each update mechanism (IXIT 7-UpdMech) prevents "
              "misuse: downgrade, a manipulated update",
              [A + "test_altered_manifest_is_refused_before_any_erase",
               A + "test_failed_trial_rolls_back_and_is_never_retried",
               X + "test_floor_rises_only_after_a_confirmed_boot"]),
         Case("5.3-2-2", "f", "devised attacks attempted on the device: every attack of the "
              "devised-attack table, each shown by its test", attacks=True)],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-3", "M C", "Updates shall be simple for the user to apply.",
        "Updates install with no user interaction; Updater.install_now() is one action.",
        [Case("5.3-3-1", "c", "every component is covered by a mechanism that needs no user "
              "interaction",
              [A + "test_update_installs_and_confirms",
               P + "test_disable_auto_install_keeps_checking_and_notifying"])],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-4", "R C", "Automatic mechanisms should be used for software updates.",
        "auto_check and auto_install are on in the initialized state.",
        [Case("5.3-4-1", "c", "checking and installing need no user interaction, and are on "
              "by default",
              [P + "test_factory_defaults_auto_on", A + "test_update_installs_and_confirms",
               F + "test_withhold.py::test_a_crashing_release_is_withheld_at_the_threshold"])],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-5", "R C", "Check after initialization, then periodically, for security updates.",
        "First check a random 10-100 % of first_s after boot, then every check_s with jitter; "
        "exponential backoff with jitter on failure; Retry-After honoured.",
        [Case("5.3-5-1", "c", "the device itself checks after initialization and periodically",
              [P + "test_check_after_init_and_periodic_with_jitter",
               P + "test_backoff_on_503_honours_retry_after"])],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-6", "R C", "Automatic updates and notifications enabled by default; the user can "
        "enable, disable or postpone them.",
        "Settings (ota_settings.json, persisted, versioned): auto_install, auto_check, notify, "
        "maintenance window; bounded postponement. The example app exposes them on its local "
        "interface (firmware/lockui.py: GET/POST /settings).",
        [Case("5.3-6-1", "c", "each automatic mechanism and the notifications are on in the "
              "initialized state and can be enabled, disabled or postponed",
              [P + "test_factory_defaults_auto_on",
               P + "test_settings_persist_validate_and_write_atomically",
               D + "test_config_migrated_only_after_confirm"]),
         Case("5.3-6-2", "f", "on a fresh device the defaults are on; the documented change "
              "takes effect",
              [P + "test_factory_defaults_auto_on",
               P + "test_disable_auto_install_keeps_checking_and_notifying",
               P + "test_postpone_then_install_after_expiry", P + "test_notify_toggle",
               L + "test_the_user_turns_checks_and_auto_install_off_and_on"])],
        condition=UPDATABLE + ", and it has automatic updates or update notifications",
        ixit="7-UpdMech"),
    Provision(
        "5.3-7", "M C", "Best practice cryptography for the update mechanism.",
        "Ed25519 (RFC 8032, strict encodings) or RSA-3072-PSS-SHA256 over the exact manifest "
        "bytes; SHA-256 of the payload. The device verifier is checked against vectors the "
        "project ships (tests/vectors/signatures), and against Wycheproof when present.",
        [Case("5.3-7-1", "c", "integrity and authenticity by best-practice primitives and key "
              "sizes, with no known feasible attack",
              [V + "test_shipped_signature_vectors_on_the_device",
               C + "test_rfc8032_vectors_verify_and_tampering_is_refused",
               C + "test_random_host_signatures_verify_and_bit_flips_are_refused"],
              optional=[C + "test_wycheproof_ed25519", C + "test_wycheproof_rsa_pss_3072"])],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-8", "M C", "Security updates shall be timely.",
        "On the device a security update can be postponed at most security_postpone_max_s, "
        "then installs in the next window; the device checks every check_s.",
        [Case("5.3-8-1", "c", "the update procedure and its time frames per severity enable "
              "timely deployment (IXIT 8-UpdProc, 4-Conf)",
              [P + "test_postpone_then_install_after_expiry",
               P + "test_security_update_after_bound_waits_for_window",
               F + "test_fleetlatency.py::test_percentiles_of_the_devices_that_reported_the_release"],
              manufacturer="IXIT 8-UpdProc's time frames (days from a confirmed "
              "vulnerability to a signed release, per severity), who does each step, the "
              "third parties (MicroPython, ESP-IDF) it depends on, and the IXIT 4-Conf "
              "confirmation that the procedure is followed (docs/compliance-process.md is the "
              "template; `otakit latency` gives the release-to-fleet percentiles)")],
        condition=UPDATABLE, ixit="8-UpdProc, 4-Conf"),
    Provision(
        "5.3-9", "R C", "The device should verify authenticity and integrity of updates.",
        "The device itself verifies the signature (keys frozen in firmware), the target binding "
        "(product, board, chip, channel) and the payload hash, before installing; the body is "
        "strict JSON, parsed identically on host and device.",
        [Case("5.3-9-1", "c", "the device itself verifies origin (manufacturer) and target "
              "(this device) and integrity before installing; the devised attacks on them fail",
              [M + "test_check_target_refuses_what_this_device_must_not_install"],
              attacks=True)],
        condition=UPDATABLE, ixit="7-UpdMech"),
    Provision(
        "5.3-10", "M", "Updates over a network are verified via a trust relationship.",
        "Digital signature with the frozen keyring (primary); https with a configured CA "
        "(secondary). The agent only connects out; it opens no listening port. An offline "
        "bundle file gets every check of a network install; a detached signature is verified "
        "before anything is published.",
        [Case("5.3-10-1", "c/f", "authenticity and integrity via a trust relationship; a "
              "network scan finds no undocumented update mechanism",
              [A + "test_altered_manifest_is_refused_before_any_erase",
               H + "test_https_verifies_the_server_against_the_configured_ca",
               B + "test_bad_bundles_are_refused_and_the_device_keeps_its_image",
               "tests/host/test_detached.py::test_a_wrong_signature_writes_nothing"],
              manufacturer="a network scan of the product (every open port: WebREPL, the "
              "app's own services), since otakit knows only its own outbound connections")],
        ixit="7-UpdMech, 11-ComMech"),
    Provision(
        "5.3-11", "R C", "The user is told that a security update is needed and the risks it "
        "mitigates.",
        "`otakit release --security` requires --severity and --risk (a sentence: at least 3 "
        "words and 20 characters, else BAD_RISK); the device's AVAILABLE "
        "notice carries severity and risk in plain words to the app's callback; the example "
        "app blinks an LED.",
        [Case("5.3-11-1", "c", "the notification is recognizable and apparent and names the "
              "risks mitigated",
              [S + "test_release_security_needs_severity_and_risk",
               "tests/host/test_detached.py::test_risk_must_be_a_sentence",
               P + "test_postpone_then_install_after_expiry"],
              manufacturer="how the risk text reaches the user recognizably (app push, "
              "display, e-mail): otakit hands it to the app's callback; an LED cannot say it")],
        condition=UPDATABLE, ixit="7-UpdMech (User Notification)"),
    Provision(
        "5.3-12", "R C", "The user is told when an update will disrupt basic functioning.",
        "DISRUPTION notice (restart, expected downtime) at least notice_s before the restart, "
        "shown on the device; the restart waits for can_reboot(); the lock's button is served "
        "during the whole update.",
        [Case("5.3-12-1", "c", "each mechanism notifies on the device itself before a "
              "disruption",
              [P + "test_restart_waits_for_notice_and_safe_moment",
               D + "test_button_served_during_whole_update"])],
        condition=UPDATABLE, ixit="7-UpdMech (User Notification)"),
    Provision(
        "5.3-13", "M", "The defined support period is published, accessibly and clearly.",
        "`otakit support publish` writes an HTML page, JSON and label text into the repository "
        "(served with no login); never shortened; the device reports support_end and gives an "
        "end-of-support notice.",
        [Case("5.3-13-1", "c", "the published support period is understandable and found "
              "from the model designation",
              [S + "test_support_publish_writes_page_json_and_label"],
              manufacturer="the address where the statement is published and that a search "
              "for the model designation finds it (publishing is the manufacturer's act)"),
         Case("5.3-13-2", "f", "the statement is reachable without registration and covers "
              "the updatable components",
              [S + "test_support_page_is_served_without_login",
               S + "test_support_never_shortened",
               P + "test_eol_notice_after_end_and_device_keeps_working"],
              manufacturer="the published address, for the lab to open (IXIT 2-UserInfo)")],
        ixit="2-UserInfo"),
    Provision(
        "5.3-14", "R C", "Constrained devices that cannot be updated: rationale and replacement "
        "published.", "-",
        [Case("5.3-14-1", "c", "rationale and replacement published"),
         Case("5.3-14-2", "f", "the publication is accessible")],
        condition="a constrained device whose software cannot be updated", applies=False),
    Provision(
        "5.3-15", "R C", "Constrained devices that cannot be updated: isolable, hardware "
        "replaceable.", "-",
        [Case("5.3-15-1", "c", "isolation and hardware replacement described"),
         Case("5.3-15-2", "f", "isolation and replacement work")],
        condition="a constrained device whose software cannot be updated", applies=False),
    Provision(
        "5.3-16", "M", "The model designation is clearly recognizable (label or physical "
        "interface).",
        "Agent.device_info() gives the model designation (Config.model, the label's), shown "
        "on the example app's local interface (GET /info), not the serial console; the hardware, the firmware read from "
        "the running image's app descriptor, the installed release and the end of support as "
        "plain text; `otakit support publish` writes box-label text with the model designation.",
        [Case("5.3-16-1", "c", "the model designation is on a label or a physical interface, "
              "matching IXIT 2 Model Designation",
              [S + "test_support_publish_writes_page_json_and_label"],
              manufacturer="the label on the device or its packaging (otakit writes "
              "label.txt; placing it is the manufacturer's) and IXIT 2's Model Designation"),
         Case("5.3-16-2", "f", "the designation is obtained from the device in simple text",
              [D + "test_device_info_names_model_and_running_firmware"])],
        ixit="2-UserInfo"),
    Provision(
        "5.5-1", "M", "Best practice cryptography to communicate securely.",
        "https with certificate and host name verification against a configured CA; https "
        "without a CA is refused; a redirect from https to http is refused.",
        [Case("5.5-1-1", "c", "the update traffic uses best-practice transport security",
              [H + "test_https_verifies_the_server_against_the_configured_ca",
               H + "test_https_refuses_a_certificate_for_another_host",
               H + "test_redirect_from_https_to_http_is_refused",
               L + "test_a_product_build_refuses_an_http_update_url",
               L + "test_a_product_build_updates_over_https_with_its_provisioned_ca"],
              manufacturer="the TLS versions its MicroPython build's mbedTLS allows (otakit "
              "sets no floor); a product build refuses http:// update URLs, a development "
              "build (`otakit build --dev`) takes them")],
        ixit="11-ComMech"),
    Provision(
        "5.9-1", "R", "Resilient to outages of networks and power.",
        "Network trouble is retried with backoff (Retry-After honoured); download progress is "
        "saved and resumed; trial records are ordered so any prefix is safe and set_boot() is "
        "the single commit point. The reduced power-cut campaign cuts the power during a whole "
        "update cycle; `make campaign` cuts at every flash operation (docs/reliability.md).",
        [Case("5.9-1-1", "c", "the design resists network and power outages (IXIT 23-ResMech)",
              [A + "test_server_trouble_is_retried_later",
               P + "test_backoff_on_503_honours_retry_after"]),
         Case("5.9-1-2", "f", "network and power interrupted during an update; the device "
              "recovers in the same or an improved state",
              [R + "test_network_fault",
               R + "test_lost_connection_resumes_losing_less_than_a_block",
               R + "test_power_cut_mid_download_resumes_from_flash",
               W + "test_reduced_campaign_survives_every_cut"])],
        ixit="23-ResMech"),
    Provision(
        "5.9-2", "R", "Remains locally functional without network; recovers cleanly after "
        "power loss.",
        "The lock is served throughout an update and with no update server at all; after a "
        "power cut at any sampled point of an update the board boots a signed image, with no "
        "boot loop and the user's files intact.",
        [Case("5.9-2-1", "c", "local function does not depend on the network (IXIT 23-ResMech)",
              [D + "test_lock_works_with_no_update_server"]),
         Case("5.9-2-2", "f", "network and power interrupted; the device stays locally "
              "functional and recovers",
              [D + "test_button_served_during_whole_update",
               A + "test_server_trouble_is_retried_later",
               W + "test_reduced_campaign_survives_every_cut"])],
        ixit="23-ResMech"),
    Provision(
        "5.13-1", "M", "Data input via interfaces is validated.",
        "Manifests: signature first, then a strict schema with bounds; strict JSON; HTTP "
        "responses parsed with bounds; user files read with a size bound and validated field "
        "by field.",
        [Case("5.13-1-1", "c", "every input is validated (IXIT 29-InpVal)",
              [M + "test_every_vector_gives_its_expected_result",
               P + "test_settings_persist_validate_and_write_atomically"]),
         Case("5.13-1-2", "f", "malformed input is refused without harm",
              [M + "test_every_single_bit_flip_is_refused",
               J + "test_host_and_device_agree_on_10000_generated_bodies",
               H + "test_malformed_response_is_bad_response",
               D + "test_attack_malformed_settings"])],
        ixit="29-InpVal"),
    Provision(
        "CRA I(2)(c)", "-", "Vulnerabilities addressed by security updates: automatic by "
        "default within an appropriate timeframe, easy opt-out, notification, temporary "
        "postponement.",
        "auto_install on by default; Settings.set(auto_install=False); AVAILABLE notices; "
        "bounded postponement.",
        [Case("CRA I(2)(c)", "c", "automatic security updates by default, opt-out, "
              "notification, postponement, an appropriate timeframe",
              [P + "test_factory_defaults_auto_on",
               P + "test_disable_auto_install_keeps_checking_and_notifying",
               P + "test_postpone_then_install_after_expiry"],
              manufacturer="the appropriate timeframe: the release time frames of IXIT "
              "8-UpdProc (the 5.3-8 gap)")],
        ixit="7-UpdMech, 8-UpdProc"),
]
