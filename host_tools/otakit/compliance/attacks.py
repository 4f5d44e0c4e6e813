"""The devised-attack table of TS 103 701 test case 5.3-2-2 (and 5.3-9-1).

Every attack the trust issue defends (issue 15's twelve, the strict-JSON differential and the
download drip) and the examples TS 103 701 gives for 5.3-2-2 (a man in the middle, resuming the
step sequence after a failure, installing older firmware, changing one byte, old packages), each
with the tests that attempt it on the device (the real agent on the simulated board, the real
server where it applies) and the reaction they show. `unmapped_attack_tests` finds any
``test_attack_*`` in tests/ that no row names: while one exists the table is incomplete and the
cases resting on it are not PASS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from otakit.paths import ROOT

TS = "tests/device/test_trust_state.py::"
TF = "tests/device/test_trust_freshness.py::"
A = "tests/device/test_agent.py::"
M = "tests/device/test_manifest.py::"
X = "tests/device/test_security.py::"
N = "tests/device/test_security_net.py::"
SV = "tests/host/test_server_attacks.py::"
J = "tests/device/test_strictjson.py::"

B2, B9 = ("5.3-2",), ("5.3-2", "5.3-9")


@dataclass(frozen=True)
class Attack:
    """One devised attack: where it comes from, the provisions it tests, the tests that attempt
    it and the device's (or server's) reaction they show."""

    aid: str
    name: str
    source: str
    provisions: tuple[str, ...]
    tests: tuple[str, ...]
    reaction: str


ATTACKS = [
    Attack("A1", "channel hop: the signed beta manifest served at a stable device's URL",
           "issue 15 #1", B9, (TS + "test_attack_channel_hop",),
           "refused as WRONG_CHANNEL; the device stays on its channel and later takes the "
           "stable fix"),
    Attack("A2", "undoing a rollout abort or pause by replaying the earlier manifest",
           "issue 15 #2", B2, (TS + "test_attack_undo_abort", TS + "test_attack_undo_pause"),
           "refused as OLD_REVISION: the device stores the highest signed revision it accepted"),
    Attack("A3", "factory-fresh downgrade: an old signed release offered to a new board with "
           "empty NVS", "issue 15 #3; TS 103 701 'install older firmware'", B2,
           (TS + "test_attack_factory_fresh_downgrade",),
           "refused: the firmware's own sequence and security version are its floor"),
    Attack("A4", "a 304 hides a frozen channel (honest or forged Not Modified)", "issue 15 #4",
           B2, (TF + "test_attack_304_frozen_channel",),
           "EXPIRED when the cached manifest expired; a 304 with nothing cached is never fresh "
           "(BAD_RESPONSE)"),
    Attack("A5", "delta CPU bomb: a small DEFLATE blob decoding to endless empty patch "
           "operations", "issue 15 #5", B2,
           ("tests/device/test_agent_encoded.py::test_attack_delta_cpu_bomb",),
           "BAD_PATCH after a bounded amount of work; the app's tasks keep running"),
    Attack("A6", "revocation suppression: keyring withheld, or an older keyring replayed",
           "issue 15 #6", B9,
           (TF + "test_attack_revocation_suppression", X + "test_older_keyring_is_refused",
            X + "test_expired_keyring_is_refused"),
           "KEYRING_REQUIRED / KEYRING_ROLLBACK / EXPIRED: a revoked key dies at the latest "
           "with the keyring that held it"),
    Attack("A7", "malformed user files (ota_settings.json and the app's config)",
           "issue 15 #7", B2, ("tests/device/test_doorlock.py::test_attack_malformed_settings",),
           "BAD_SETTINGS / BAD_CONFIG: defaults with a notice; the app keeps running and still "
           "updates"),
    Attack("A8", "slowloris on the update server (and a client that stops reading a body)",
           "issue 15 #8", B2,
           (SV + "test_attack_slowloris",
            "tests/device/test_attack_slowloris.py::test_attack_slowloris_device_still_updates",
            SV + "test_attack_slow_reader",
            "tests/host/test_server.py::test_tls_closes_a_client_that_stops_reading"),
           "header timeout, send timeout and per-client cap; a legitimate device still updates"),
    Attack("A9", "unbounded telemetry reply from a hostile report endpoint", "issue 15 #9",
           B2, ("tests/device/test_telemetry_reply.py::test_attack_unbounded_telemetry_reply",),
           "the reply is read into a 512-byte line buffer; the app's heap is untouched"),
    Attack("A10", "forged telemetry to flag a good release", "issue 15 #10", B2,
           ("tests/fleet/test_telemetry.py::test_attack_forged_telemetry",),
           "not flagged: failures count per distinct device, from at least 2 networks"),
    Attack("A11", "support end shortened by replaying an old manifest", "issue 15 #11", B2,
           (TS + "test_attack_support_end_replay",),
           "the support end is stored only after every check passed; it never moves earlier"),
    Attack("A12", "malformed Range or percent-encoding to crash the server", "issue 15 #12",
           B2, (SV + "test_attack_server_500s",), "400 for each input; the server keeps serving"),
    Attack("A13", "a manifest body the device parses differently from the host", "issue 15 "
           "(strict JSON)", B9,
           (J + "test_host_and_device_agree_on_10000_generated_bodies",
            J + "test_each_class_is_refused_on_host_and_device"),
           "0 disagreements over 10,000 generated bodies; every lax form refused on both sides"),
    Attack("A14", "download drip: a payload sent just fast enough to hold the install",
           "issue 15 (deadline)", B2, (TF + "test_download_deadline_slow_drip",),
           "DEADLINE; the blocks already written are kept as the resume point"),
    Attack("A15", "man in the middle changes one bit of the manifest or the payload",
           "TS 103 701 5.3-2-2 (MITM; change one byte of signed firmware)", B9,
           (N + "test_mitm_bit_flip_in_the_payload_is_refused",
            N + "test_mitm_bit_flip_in_the_manifest_is_refused",
            M + "test_every_single_bit_flip_is_refused",
            A + "test_altered_payload_is_refused_and_boot_target_unchanged"),
           "BAD_SIGNATURE / HASH_MISMATCH before set_boot(); the boot target is unchanged"),
    Attack("A16", "man in the middle serves another release's payload", "TS 103 701 5.3-2-2 "
           "(MITM)", B9, (N + "test_mitm_serves_another_releases_payload",),
           "HASH_MISMATCH; nothing installed"),
    Attack("A17", "install an older, vulnerable release (replayed manifest, lower sequence, "
           "security version below the floor)", "TS 103 701 5.3-2-1/-2 (old packages)", B2,
           (N + "test_mitm_replays_an_old_manifest",
            X + "test_downgrade_to_a_lower_sequence_is_refused_before_download",
            X + "test_security_version_below_the_floor_is_refused_before_download",
            X + "test_expired_manifest_is_refused_when_the_clock_is_set"),
           "ROLLBACK / SECURITY_FLOOR / EXPIRED before any download"),
    Attack("A18", "resume the step sequence after a failure (splice a resumed download, "
           "retry a failed trial)", "TS 103 701 5.3-2-2 (resume after failure)", B2,
           (N + "test_resume_splice_is_caught",
            A + "test_failed_trial_rolls_back_and_is_never_retried"),
           "HASH_MISMATCH for the splice; a release that failed its trial is never retried"),
    Attack("A19", "a valid release for another board, chip or image kind", "TS 103 701 "
           "5.3-9-1 (target)", B9,
           (A + "test_release_for_another_board_is_refused",
            M + "test_check_target_refuses_what_this_device_must_not_install",
            A + "test_full_firmware_bin_is_refused_before_set_boot"),
           "WRONG_BOARD before download (target binding); BAD_IMAGE before set_boot() (image "
           "kind)"),
    Attack("A20", "a development-signed release offered to production firmware",
           "TS 103 701 5.3-9-1 (source)", B9,
           (X + "test_production_firmware_refuses_development_signing",),
           "refused (WRONG_ENV): production firmware trusts only production keys"),
    Attack("A21", "an impostor update server (wrong CA, wrong host name, no CA)",
           "TS 103 701 5.3-2-2 (MITM)", B2,
           (N + "test_tls_wrong_ca_wrong_host_and_no_ca_are_refused",),
           "the TLS handshake is refused; nothing is fetched"),
    Attack("A22", "code planted on the writable filesystem (USB/REPL, a file-write bug)",
           "TS 103 701 5.3-1-2 (every mechanism)", ("5.3-1", "5.3-2"),
           (X + "test_code_on_the_filesystem_is_never_imported",),
           "never imported: the frozen boot.py takes the filesystem off sys.path"),
]

_ATTACK_DEF = re.compile(r"^(?:async )?def (test_attack_\w+)\(", re.M)


def attacks_for(pid: str) -> list[Attack]:
    """The attacks that test provision ``pid``."""
    return [a for a in ATTACKS if pid in a.provisions]


def attack_tests() -> list[str]:
    """Every test id the attack table names."""
    return sorted({t for a in ATTACKS for t in a.tests})


def unmapped_attack_tests(root: Path = ROOT) -> list[str]:
    """``test_attack_*`` functions in the project's tests that no attack row names."""
    named = {t.split("::")[1] for t in attack_tests()}
    found = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        for name in _ATTACK_DEF.findall(path.read_text(errors="replace")):
            if name not in named:
                found.append(f"{path.relative_to(root)}::{name}")
    return found
