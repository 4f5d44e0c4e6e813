"""Strict JSON (docs/format.md §2.5): the host's otakit.strictjson and the device's
ota.strictjson (on the real unix port) accept exactly the same bodies and parse them to the same
values."""

from __future__ import annotations

import pytest

from otakit import strictjson
from otakit.sim import jsondiff

# one case per class of body the device once accepted and the host refused
REFUSED = {
    "missing comma": b'{"a":1 "b":2}',
    "extra comma": b'{"a":1,,"b":2}',
    "trailing comma": b"[1,2,]",
    "non-string key": b"{1:2}",
    "trailing NUL": b'{"a":1}\x00',
    "overlong UTF-8": b'{"a":"\xc0\xaf"}',
    "lone surrogate escape": b'{"a":"\\ud800"}',
    "escaped surrogate pair": b'{"a":"\\ud83d\\ude00"}',
    "encoded surrogate": b'{"a":"\xed\xa0\x80"}',
    "above U+10FFFF": b'{"a":"\xf4\x90\x80\x80"}',
    "truncated UTF-8": b'{"a":"\xf0\x9f\x98"}',
    "control character": b'{"a":"\x01"}',
    "duplicate key": b'{"a":1,"\\u0061":2}',
    "NaN": b'{"a":NaN}',
    "BOM": b'\xef\xbb\xbf{"a":1}',
    "leading zero": b'{"a":01}',
    "deep nesting": b'{"a":' * 17 + b"1" + b"}" * 17,
}
ACCEPTED = {
    "nesting 16": b'{"a":' * 16 + b"1" + b"}" * 16,
    "same key in two objects": b'{"a":{"a":1},"b":{"a":2}}',
    "4-byte UTF-8": b'{"a":"\xf0\x9f\x94\x92"}',
    "escapes": b'{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u0000"}',
    "numbers": b' [0, -0, 1.5e+3, 1E-5, 123456789012345678901234567890] ',
}


@pytest.fixture(scope="module")
def device_lines() -> dict[bytes, str]:
    cases = [*REFUSED.values(), *ACCEPTED.values()]
    host, device, _ = jsondiff.run_cases(cases)
    assert host == [jsondiff.host_line(c) for c in cases]
    return dict(zip(cases, device))


@pytest.mark.parametrize("name", REFUSED)
def test_each_class_is_refused_on_host_and_device(name: str, device_lines: dict[bytes, str]) -> None:
    body = REFUSED[name]
    with pytest.raises(strictjson.StrictJSONError):
        strictjson.loads(body)
    assert device_lines[body] == "ERR"


@pytest.mark.parametrize("name", ACCEPTED)
def test_strict_json_is_still_parsed_on_host_and_device(name: str,
                                                        device_lines: dict[bytes, str]) -> None:
    body = ACCEPTED[name]
    assert device_lines[body] == jsondiff.host_line(body) != "ERR"


def test_host_and_device_agree_on_10000_generated_bodies() -> None:
    host, device, cases = jsondiff.run(10000, 15)
    assert len(device) == len(host) == 10000
    bad = [f"{cases[i]!r}: host {host[i][:80]}, device {device[i][:80]}"
           for i in range(len(cases)) if not jsondiff.same(host[i], device[i])]
    assert bad == []
    accepted = sum(h.startswith("OK") for h in host)
    assert 1000 < accepted < 9000  # both verdicts are well represented
