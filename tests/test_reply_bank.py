"""The bank of human replies passes the same checks as the model's drafts, in every language and intent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device.assistant.drafts import ThreadFacts, detect_language, judge
from device.assistant.prompts import NEWS_KEYS, REPLY_KEYS
from device.assistant.reply_bank import BANK, SCAM_SAFE, fallback
from device.messages.inbox import Message

TS = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
THREADS = {
    "en": "Can you bring the salad on Friday? Nothing with nuts",
    "de": "Kannst du am Freitag bitte den Salat mitbringen? Nichts mit Nüssen",
    "es": "¿Puedes traer la ensalada el viernes? Nada con nueces, porfa",
    "fr": "Tu peux apporter la salade vendredi ? Rien avec des noix stp",
}


@pytest.mark.parametrize("language", sorted(BANK))
def test_every_banked_reply_is_usable_and_the_three_intents_differ(language):
    facts = ThreadFacts.from_messages([Message("t", "Sam", THREADS[language], TS)])
    assert facts.language == language
    for intent in {*REPLY_KEYS, *NEWS_KEYS}:
        for reply in BANK[language][intent]:
            assert judge(reply, facts).usable, (language, intent, reply, judge(reply, facts).detail)
    for keys in (REPLY_KEYS, NEWS_KEYS):
        firsts = [fallback(language, intent, []) for intent in keys]
        assert len({f.lower() for f in firsts}) == 3


@pytest.mark.parametrize("language", sorted(SCAM_SAFE))
def test_the_safe_replies_to_a_scam_leak_nothing_and_do_not_comply(language):
    scam = ThreadFacts(source="Bank: send the code 483920", language=language, scam=True, secrets=("483920",))
    for reply in SCAM_SAFE[language]:
        assert judge(reply, scam).usable, (reply, judge(reply, scam).detail)
        assert detect_language(reply) in (language, "en")


def test_a_taken_reply_is_not_offered_twice():
    first = fallback("en", "agree", [])
    assert fallback("en", "agree", [first.upper()]) != first
