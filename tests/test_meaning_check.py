"""The reported form of messages and the meaning check's contrasts and decisions (no model: a scripted engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device.assistant import meaning_check as mc
from device.assistant import speech_acts
from device.assistant.core import Assistant
from device.assistant.reported import Quoted, as_sender, as_wearer, quoted_sentences, restore_quotes
from device.messages.inbox import Message, Thread
from tests.fakes import FakeEngine


def test_a_senders_first_person_becomes_their_name():
    assert as_sender("Could you take in my parcel? I'm at work until 6", "Sofia") == \
        "Could you take in Sofia's parcel? Sofia is at work until 6"
    assert as_sender("I have an exam at 9, can't do it", "Lena") == "Lena has an exam at 9, can't do it"
    assert as_sender("Mrs Brandt, leave the key with me", "Dev") == "Mrs Brandt, leave the key with Dev"
    assert as_sender("I just need it by Friday", "Ana") == "Ana just needs it by Friday"
    assert as_sender("I booked it and I'll pay", "Luca") == "Luca booked it and Luca will pay"


def test_the_wearers_own_words_become_you_and_their_you_the_other_person():
    assert as_wearer("Can you send me your address? I'm home", "Sofia") == \
        "Can Sofia send you Sofia's address? you are home"
    assert as_wearer("I'll bring my car", None) == "you will bring your car"


def test_contrasts_flip_negation_and_swap_people_but_not_a_symmetric_pair():
    texts = {c.text: c.kind for c in mc.contrasts("Mum asks Dad to pick up the cake.", ["Mum", "Dad", "you"])}
    assert texts["Dad asks Mum to pick up the cake."] == "roles"
    assert texts["Mum asks you to pick up the cake."] == "participants"
    assert "Mum can't" not in " ".join(texts)
    assert mc.negations("Lena can't be home on Thursday.") == ["Lena can be home on Thursday."]
    assert mc.negations("Priya will drive.") == ["Priya won't drive."]
    assert not mc.participant_swaps("Ana and Ben talk about the trip.", ["Ana", "Ben"])
    assert mc.role_swaps("Dad asks you to pick up a cake.", ["Dad"]) == ["You ask Dad to pick up a cake."]
    assert mc.role_swaps("You owe Marco £25.", ["Marco"]) == ["Marco owes you £25."]


def test_sentences_split_on_sentence_ends_only():
    assert mc.sentences("Marco booked it for 8.30 p.m. on Friday. Ana can't come!") == \
        ["Marco booked it for 8.30 p.m. on Friday.", "Ana can't come!"]


def _thread(*lines: tuple[str, str]) -> Thread:
    thread = Thread("Family")
    for i, (sender, text) in enumerate(lines):
        thread.add(Message("Family", sender, text, datetime(2026, 11, 20, 9, i, tzinfo=UTC)))
    return thread


def _prefer(wrong: str):
    """A model that, reading the chat, finds `wrong` 5 nats less likely than any other wording, and with no chat
    to read (the prior prompt: an empty message block) has no preference."""
    def score(prompt: str, conts: list[str]) -> list[float]:
        reads_chat = "Dad:" in prompt
        return [-20.0 - (5.0 if reads_chat and c.strip() == wrong else 0.0) for c in conts]
    return score


def test_a_sentence_whose_contrast_the_model_prefers_is_not_shown():
    wrong = "Mum asks Dad to pick up a cake."
    engine = FakeEngine([f"Dad asks you to pick up a cake. {wrong}"], continuations=_prefer(wrong))
    thread = _thread(("Dad", "Could you pick up a cake from Schulz?"), ("Mum", "Thanks!"))
    result = Assistant(engine, guard=False, check_meaning=True).catch_up(thread)
    assert result.text == "Dad asks you to pick up a cake."
    assert result.guard == "meaning" and result.unsupported == [wrong]
    calls = engine.called("continuation_logprobs")  # each sentence read after the chat (no prior by default)
    assert len(calls) == 2 and all("Dad: Could you pick up a cake" in c.prompt for c in calls)


def test_when_every_sentence_is_dropped_the_key_messages_are_quoted():
    wrong = "Mum asks Dad to pick up a cake."
    engine = FakeEngine([wrong], continuations=_prefer(wrong))
    thread = _thread(("Dad", "Could you pick up a cake from Schulz?"), ("Mum", "Thanks!"))
    result = Assistant(engine, guard=False, check_meaning=True).catch_up(thread)
    assert result.guard == "extractive"
    assert "Dad: Could you pick up a cake from Schulz?" in result.text


def test_a_sentence_the_model_prefers_to_its_contrasts_is_kept_and_the_check_can_be_off():
    text = "Dad asks you to pick up a cake."
    engine = FakeEngine([text], continuations=lambda prompt, conts: [-10.0] + [-15.0] * (len(conts) - 1))
    thread = _thread(("Dad", "Could you pick up a cake from Schulz?"))
    result = Assistant(engine, guard=False, check_meaning=True).catch_up(thread)
    assert result.text == text and not result.guard
    unchecked = FakeEngine([text])
    assert Assistant(unchecked, guard=False, check_meaning=False).catch_up(thread).text == text
    assert not unchecked.called("continuation_logprobs")


def test_a_person_asking_themselves_is_a_person_asking_the_reader():
    people = ["Sofia", "Jamie", "Ana", "Ben", "Mr Lindqvist"]
    assert mc.to_the_reader("Sofia asked if Sofia could take in her parcel.", people) == \
        "Sofia asked if you could take in her parcel."
    assert mc.to_the_reader("Jamie asked if Jamie was passing the shop.", people) == \
        "Jamie asked if you were passing the shop."
    assert mc.to_the_reader("Mr Lindqvist offered to give Mr Lindqvist Friday off.", people) == \
        "Mr Lindqvist offered to give you Friday off."
    assert mc.to_the_reader("She also requests that Ana send her slides by Monday.", ["Ana"]) == \
        "She also requests that Ana send her slides by Monday."  # no "Ana … Ana": left alone
    assert mc.to_the_reader("Ana also requests that Ana send her slides by Monday.", ["Ana"]) == \
        "Ana also requests that you send her slides by Monday."
    for untouched in ("Ana told Ben that Ana is late.", "Sofia sent Sofia's parcel.", "Ben asks Ana to call."):
        assert mc.to_the_reader(untouched, people) == untouched


def test_what_the_model_prefers_with_no_chat_is_taken_off():
    """A contrast the model likes as much without the chat ("#Person1# asks" is just commoner) is no evidence."""
    biased = lambda prompt, conts: [-20.0] + [-17.0] * (len(conts) - 1)  # noqa: E731
    text = "Dad asks you to pick up a cake."
    engine = FakeEngine([text], continuations=biased)
    thread = _thread(("Dad", "Could you pick up a cake from Schulz?"))
    assistant = Assistant(engine, guard=False)
    assistant.meaning = mc.MeaningCheck(engine, margin=0.0, prior_weight=1.0)
    assert assistant.catch_up(thread).text == text
    plain = Assistant(FakeEngine([text], continuations=biased), guard=False)
    plain.meaning = mc.MeaningCheck(plain.engine, margin=0.0, prior_weight=0.0)
    assert plain.catch_up(thread).guard == "extractive"  # without the prior, the contrast wins


def test_a_person_getting_in_touch_with_themselves_gets_in_touch_with_the_reader():
    people = ["Juno", "Milo", "Ana", "Ben"]
    assert mc.to_the_reader("Juno asks you to come to her gig; she will text Juno by 7 either way.", people) == \
        "Juno asks you to come to her gig; she will text you by 7 either way."
    assert mc.to_the_reader("Milo says he will pay Milo back on Friday.", people) == \
        "Milo says he will pay you back on Friday."
    assert mc.to_the_reader("Ana will call Ben tonight.", people) == "Ana will call Ben tonight."


SAID = {"Nadia": ["Hey, can I borrow your drill this weekend? Putting up shelves", "I'll bring it back Sunday"],
        "Greta": ["Driving to IKEA Saturday, want me to pick up anything?"],
        "Mum": ["Could you bring a dessert? Nothing with nuts"],
        "Pau": ["Should know by Thursday"]}


@pytest.mark.parametrize("sentence, unbacked", [
    ("Greta asks you to pick up something from IKEA on Saturday.", [("request", "Greta")]),  # an offer
    ("Greta offers to pick up anything from IKEA.", []),
    ("Mum asks you to bring a dessert without nuts.", []),
    ("Nadia asks if she can borrow your drill; she'll bring it back Sunday.", []),
    ("Pau can't make it on Saturday.", [("negation", "Pau")]),
    ("If Pau can't make it, Lotte will play.", []),  # a condition, not a claim
    ("Mum's cake is not ready.", []),  # not Mum doing anything
    ("Greta says Mum will bring a dessert.", []),  # Mum's verb, not Greta's
])
def test_an_act_is_backed_only_by_the_persons_own_messages(sentence, unbacked):
    assert [(u.act, u.person) for u in speech_acts.unbacked_acts(sentence, SAID)] == unbacked


def test_a_summary_sentence_with_an_unbacked_request_is_dropped_before_any_scoring():
    engine = FakeEngine(["Greta asks you to pick up something from IKEA. Greta is driving on Saturday."])
    thread = _thread(("Greta", "Driving to IKEA Saturday, want me to pick up anything?"))
    result = Assistant(engine, guard=False, check_meaning=False).catch_up(thread)
    assert result.text == "Greta is driving on Saturday." and result.guard == "meaning"


def test_a_model_not_trusted_to_paraphrase_shows_the_messages_themselves():
    engine = FakeEngine([])  # any generation would fail: nothing is scripted
    thread = _thread(("Dad", "Could you pick up a cake from Schulz? It's paid for, just say it's for Weber and "
                             "bring it on Sunday before lunch please"), ("Mum", "Thanks!"))
    assistant = Assistant(engine, paraphrase=False)
    summary, note = assistant.catch_up(thread), assistant.notify(thread.messages[0])
    assert summary.guard == "quotes" and "Dad: Could you pick up a cake from Schulz?" in summary.text
    assert note.text.startswith("Dad: Could you pick up a cake") and note.text.endswith(" …")
    assert not engine.generations


def test_a_quote_the_model_copied_from_the_reported_form_shows_what_was_written():
    written = "Can you call me when you land? Dad will pick you up at the station at 6"
    pairs = quoted_sentences("Mum", written, as_sender(written, "Mum"))
    assert pairs == [Quoted("Mum", "Can you call me when you land?", "Can you call Mum when you land?")]
    assert restore_quotes("Mum: Can you call Mum when you land? Dad will pick you up at 6.", pairs) == \
        "Mum: Can you call me when you land? Dad will pick you up at 6."
    assert restore_quotes("Mum: Can you call Mum when you land", pairs) == "Mum: Can you call me when you land"
    # not a quote of Mum: the reported words are the summary's own, and stay as they are
    assert restore_quotes("Dad: Can you call Mum when you land?", pairs) == "Dad: Can you call Mum when you land?"
    assert restore_quotes("Mum asks: can you call Mum when you land?", pairs) == \
        "Mum asks: can you call Mum when you land?"


def test_a_catch_up_quoting_a_message_quotes_it_as_written():
    engine = FakeEngine(["Mum: Can you call Mum when you land? Dad will pick you up at 6."])
    thread = _thread(("Mum", "Can you call me when you land? Dad will pick you up at the station at 6"))
    summary = Assistant(engine, check_acts=False, guard=False).catch_up(thread)
    assert "Mum: Can you call Mum when you land?" in engine.generations[0].prompt, "the model reads it reported"
    assert summary.text == "Mum: Can you call me when you land? Dad will pick you up at 6."
