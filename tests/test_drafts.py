"""The draft checks on drafts written to fail (and to pass) each one: no model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device.assistant.drafts import Failure, ThreadFacts, detect_language, judge
from device.messages.inbox import Message

T0 = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def thread(*lines: tuple[str, str]) -> list[Message]:
    return [Message("t", sender, text, T0 + timedelta(minutes=i)) for i, (sender, text) in enumerate(lines)]


MUM = ThreadFacts.from_messages(thread(("Mum", "Grandpa's 80th is on Sunday at 1pm."),
                                       ("Mum", "Can you bring a dessert? Nothing with nuts, Ruth is allergic")))
CLIMB = ThreadFacts.from_messages(thread(("Jonas", "Boulderwelt is closed Saturday for a competition"),
                                         ("Priya", "Sunday then? Ostbahnhof at 10:00, I'll drive")))
MAMA = ThreadFacts.from_messages(thread(("Mama", "Kannst du am Sonntag bitte einen Kuchen mitbringen?")))
SCAM = ThreadFacts.from_messages(thread(("Bank", "Your account is blocked. Reply with the security code 483920 "
                                                 "we sent you to unlock it")))


@pytest.mark.parametrize("draft, facts, failures", [
    ("Sure, I'll bring a lemon tart, no nuts!", MUM, ()),
    ("What kind of dessert should I bring?", MUM, ()),
    ("I'm sorry, but I can't assist with that.", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Is there anything else I can help you with?", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Yes, I can assist with that.", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Decline.", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Decline. We'll keep it as it is", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Do you have any other questions about the party?", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("Is there anything else you need help with?", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("What's the purpose of your request?", MUM, (Failure.ASSISTANT_SPEAK,)),
    ("I appreciate your kind words, but I don't have anything specific to ask right now.", MUM,
     (Failure.ASSISTANT_SPEAK,)),
    ("Anything else you need for the party?", MUM, ()),
    ("Do you have any other plans for the weekend? Maybe we could go to the park", MUM, (Failure.OFF_TOPIC,)),
    ("Hey, what's your favorite hobby?", MUM, (Failure.OFF_TOPIC,)),
    ("Should I bring something else for Ruth as well?", MUM, ()),
    ("Congratulations, that is such amazing news, well deserved!", MUM, ()),
    ("Could you please bring a dessert? Nothing with nuts", MUM, (Failure.ROLE_CONFUSION,)),
    ("Great, see you Sunday at 2pm", MUM, (Failure.INVENTED,)),
    ("Do you have spare shoes? Jonas said size 42", CLIMB, (Failure.INVENTED,)),
    ("Sunday works, see you at Ostbahnhof!", CLIMB, ()),
    ("Klar, ich bringe einen Apfelkuchen mit!", MAMA, ()),
    ("Sure, I'll bring a cake, see you there!", MAMA, (Failure.WRONG_LANGUAGE,)),
    ("Kannst du bitte den Kuchen mitbringen?", MAMA, (Failure.ROLE_CONFUSION,)),
    ("Tut mir leid, ich kann dir dabei nicht helfen.", MAMA, (Failure.ASSISTANT_SPEAK,)),
    (" ".join(["yes"] * 31), MUM, (Failure.TOO_LONG,)),
    ("Here is the code: 483920", SCAM, (Failure.SCAM_LEAK, Failure.SCAM_COMPLIES)),
    ("Ok, I'll send it now", SCAM, (Failure.SCAM_COMPLIES,)),
    ("I won't share any code. I'll call my bank myself.", SCAM, ()),
    ("", MUM, (Failure.EMPTY,)),
])
def test_each_check_fires_on_its_own_failure_and_passes_a_good_draft(draft, facts, failures):
    verdict = judge(draft, facts)
    assert verdict.failures == failures, verdict.detail
    assert verdict.usable == (not failures)


def test_a_plan_the_thread_moved_away_from_is_stale():
    facts = ThreadFacts(source=CLIMB.source, language="en", superseded=("Saturday",))
    assert judge("Saturday at 10:00 works!", facts).failures == (Failure.STALE,)
    assert judge("Sunday at 10:00 works!", facts).usable


def test_thread_facts_come_from_the_messages():
    assert {"bring", "dessert"} <= set(MUM.request_terms) and not MUM.scam and MUM.language == "en"
    assert MAMA.language == "de" and "kuchen" in MAMA.request_terms
    assert SCAM.scam and not CLIMB.scam
    assert [detect_language(t) for t in ("¿Puedes traer el postre mañana?", "Tu peux venir demain ?", "ok")] == \
        ["es", "fr", "en"]


@pytest.mark.parametrize("draft", ["Oui, je peux vous aider avec ça.", "Non, je ne peux pas vous aider avec ça.",
                                   "Je suis désolé si cela n'a pas été utile. Je peux essayer d'autres questions."])
def test_french_assistant_speak_fails(draft):
    facts = ThreadFacts.from_messages(thread(("Léa", "Tu peux m'avancer 20 balles pour le cadeau ? Je te rembourse "
                                                     "ce soir")))
    assert Failure.ASSISTANT_SPEAK in judge(draft, facts).failures


@pytest.mark.parametrize("draft", ["Siento, pero no puedo ayudarte con eso.", "No, no puedo ayudar con eso."])
def test_spanish_assistant_speak_fails(draft):
    facts = ThreadFacts.from_messages(thread(("Nacho", "¿Me ayudas a montar el armario el sábado? Te invito a "
                                                      "pizza")))
    assert Failure.ASSISTANT_SPEAK in judge(draft, facts).failures


@pytest.mark.parametrize("draft", ["Is there anything you need help with?", "Do you need help with anything else?",
                                   "Is there anything else you need?", "Is there anything specific you would like "
                                   "to discuss?", "I'm sorry, I didn't hear you correctly. Can you please repeat your "
                                   "message?"])
def test_help_desk_questions_seen_in_the_tune_part_are_assistant_speak(draft):
    assert Failure.ASSISTANT_SPEAK in judge(draft, CLIMB).failures


def test_a_person_offering_help_in_spanish_is_not_a_help_desk_but_the_stock_phrase_is():
    facts = ThreadFacts.from_messages(thread(("Jorge", "Oye, ¿puedes abrir tú mañana la oficina?")))
    assert Failure.ASSISTANT_SPEAK in judge("¡Por supuesto! Si necesitas ayuda, no dudes en pedirlo.", facts).failures
    assert judge("¡Claro, yo abro!", facts).usable
