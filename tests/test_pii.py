"""PII detection and redaction."""

from __future__ import annotations

import pytest

from device.privacy.pii import detect, iban_ok, luhn_ok, redact
from tests.conftest import SHARED

PII_FILE = SHARED / "pii" / "presidio_synth_dataset_v2.json"


def _found(text):
    return {(s.entity, s.text) for s in detect(text)}


@pytest.mark.parametrize(("text", "entity", "value"), [
    ("write to lena.weber@example.org today", "EMAIL_ADDRESS", "lena.weber@example.org"),
    ("card 4111 1111 1111 1111 expires soon", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ("my ssn is 078-05-1120", "US_SSN", "078-05-1120"),
    ("server at 192.168.10.4 is down", "IP_ADDRESS", "192.168.10.4"),
    ("call +1-903-140-4508x769 now", "PHONE_NUMBER", "+1-903-140-4508x769"),
    ("Born on 11/3/1995 in a small town", "DATE_TIME", "11/3/1995"),
    ("My name is Kristíana Valbergsdóttir", "PERSON", "Kristíana Valbergsdóttir"),
    ("We moved here from Kenosha", "LOCATION", "Kenosha"),
    ("Send it to 2450 Crown St, Springfield", "LOCATION", "2450 Crown St, Springfield"),
])
def test_detects(text, entity, value):
    assert (entity, value) in _found(text)


def test_checksums_reject_lookalikes():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not any(e == "CREDIT_CARD" for e, _ in _found("order 4111 1111 1111 1112"))


def test_redact_replaces_spans_and_keeps_the_rest():
    out = redact("Hi, I'm Maria, call me on 0699 868 88 55 or mail maria@example.com")
    assert out == "Hi, I'm <PERSON>, call me on <PHONE_NUMBER> or mail <EMAIL_ADDRESS>"


def test_plain_chat_is_left_alone():
    assert detect("sounds good, see you there!") == []


@pytest.mark.skipif(not PII_FILE.exists(), reason="../shared/data/pii is not present")
def test_beats_presidio_vanilla_on_the_shared_benchmark():
    from lab.pii_eval import evaluate

    overall = evaluate(PII_FILE)["overall"]
    assert overall["recall"] > 0.603 and overall["f2"] > 0.618 and overall["precision"] >= 0.685, overall


def test_name_lists_are_kept_in_the_cache_and_rebuilt_when_it_is_unreadable(tmp_path, monkeypatch):
    from device.privacy import pii

    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    pii.gazetteers.cache_clear()
    try:
        built = pii.gazetteers()
        kept = list((tmp_path / "cache").glob("gazetteers-*.json"))
        assert len(kept) == 1 and "kenosha" in built.places
        pii.gazetteers.cache_clear()
        assert pii.gazetteers() == built  # read back from the cache
        kept[0].write_bytes(b"\xff{not json")  # a torn write or a bad disk
        pii.gazetteers.cache_clear()
        assert pii.gazetteers() == built and kept[0].read_text(encoding="utf-8").startswith("{")
        blocked = tmp_path / "blocked"
        blocked.mkdir()
        (blocked / "cache").write_text("a file where the cache dir would be")  # cannot write there (even as root)
        monkeypatch.setenv("GLASSMATE_HOME", str(blocked))
        pii.gazetteers.cache_clear()
        assert pii.gazetteers() == built  # the lists still come, built again
    finally:
        pii.gazetteers.cache_clear()
