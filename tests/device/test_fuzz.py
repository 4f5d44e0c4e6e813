"""A fixed-seed sample of `make fuzz` (otakit.sim.fuzz): hypothesis-generated manifests, keyring
documents and HTTP responses fed to the device parsers on the real unix port in a small heap.
Any exception other than the agent's own rejections, a hang or a MemoryError is a failure."""

from __future__ import annotations

from otakit.sim import fuzz

SEED = 20261128


def test_fixed_seed_sample_has_no_failures() -> None:
    outcomes: dict[str, int] = {}
    n, failures = fuzz.run(400, SEED, log=lambda _: None, outcomes=outcomes)
    assert n == 400
    assert failures == []
    kinds = {k.split()[0] for k in outcomes}
    assert kinds == {"m", "b", "k", "K", "h"}  # every parser was reached
    assert sum(outcomes.values()) == n
    assert outcomes.get("b OK", 0) > 0  # some bodies made it through every check


def test_deeply_nested_bodies_are_refused_on_the_host_too() -> None:
    # found by the fuzzer: json.loads' stack grows with the nesting (MemoryError in a small
    # heap), so both parsers refuse nesting deeper than 16 before parsing (docs/format.md §2);
    # the device side is checked by the vector body-deep-nesting.bin
    import pytest

    from otakit.errors import ManifestError
    from otakit.manifest_body import parse_body
    from otakit.strictjson import depth as json_depth

    assert json_depth(b'{"a":"[[[[","b":[[1]]}') == 3  # brackets inside strings do not count
    with pytest.raises(ManifestError) as e:
        parse_body(b'{"a":' * 17 + b"1" + b"}" * 17)
    assert e.value.reason == "BAD_BODY" and "deeper" in str(e.value)
