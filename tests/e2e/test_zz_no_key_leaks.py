"""Runs last: no test API key may appear in any response the proxy sent during this run
(recorded byte for byte by the relay in front of Viceroy or workerd) or in any log line it
wrote, on either edge."""

import re

from harness import artifacts_dir

# Both key styles, in any letter case (a scrub must not miss a lower-cased key either).
TEST_KEY = re.compile(rb"AIzaSyTEST\d{29}|AQ\.Ab8RN6TEST\d{40}", re.IGNORECASE)


def test_no_test_key_in_any_response_or_log():
    files = [p for p in artifacts_dir().rglob("*") if p.name in ("responses.bin", "viceroy.log", "workerd.log")]
    assert len(files) >= 10, "the run recorded too little to be a meaningful scan"
    scanned = 0
    for path in files:
        data = path.read_bytes()
        scanned += len(data)
        match = TEST_KEY.search(data)
        assert match is None, f"{path}: key leaked: …{match.group()[-4:].decode()} at byte {match.start()}"
    assert scanned > 10_000, scanned
