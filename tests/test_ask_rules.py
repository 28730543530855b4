"""The rules of "ask my messages" on hand-built hits: which answer is shown, from which message, and why not.

No model and no index: the hits are written here, and where `ask` needs a model (its answer, the number it cites,
its probabilities) a scripted one (tests/fakes.py) gives them. test_message_index.py runs the same rules on the
real search and model.
"""

from __future__ import annotations

import math
import re
from dataclasses import FrozenInstanceError, replace
from datetime import datetime

import pytest

from device.ask.answer import (
    AskConfig,
    InboxAsker,
    Reason,
    Verdict,
    _weekdays_meant,
    as_written,
    ask,
    check,
    check_answer,
    question_names,
    without_each_word,
)
from device.ask.message_index import Hit
from device.assistant import prompts
from device.assistant.core import Assistant
from tests.fakes import FakeEngine, FakeIndex, chat_parts, message

FRI = "2026-11-20T20:40:00+01:00"  # a Friday


def hit(id_: int, text: str, sender: str = "Marco", thread: str = "Dinner Friday", ts: str = FRI,
        similarity: float = 0.6, before=None) -> Hit:
    return Hit(id_, message(text, sender, thread, ts), 1.0 / id_, similarity, id_, id_, before)


BOOKED = hit(11, "Booked Luigi's on Carver Street for Friday at 8pm, table for 6!", ts="2026-11-20T20:40:00+01:00")
NEAR = hit(12, "Amazing. Is it the one near the station?", "Alice", ts="2026-11-20T20:42:00+01:00")
DEPOSIT = hit(13, "Yes. £25 deposit per person by Wednesday please", ts="2026-11-20T20:43:00+01:00")
SHOWN = [BOOKED, NEAR, DEPOSIT]  # in time order: numbered 1, 2, 3 as the model sees them
CFG = AskConfig()


# -- check: the rules that need no model -------------------------------------------------------------------------

def test_an_answer_its_citation_carries_is_shown_citing_that_message():
    verdict = check("Friday at 8pm at Luigi's", [1], 0.95, SHOWN, CFG, "What time is dinner on Friday?")
    assert verdict == Verdict(True, Reason.ANSWERED, "answered", "Friday at 8pm at Luigi's", (BOOKED,), 0.95)


def test_a_right_answer_with_the_wrong_citation_is_cited_from_the_message_that_carries_it():
    assert check("8pm", [2], 0.9, SHOWN, CFG).cited == (BOOKED,)
    assert check("£25", [1], 0.9, SHOWN, CFG).cited == (DEPOSIT,)
    assert check("8pm", [7, 0], 0.9, SHOWN, CFG).cited == (BOOKED,)  # numbers no message has are ignored
    # carried only by two messages together: both are cited
    both = check("Carver Street station", [], 0.9, SHOWN, CFG)
    assert both.ok and both.cited == (BOOKED, NEAR)


@pytest.mark.parametrize(("answer", "cites", "confidence", "question", "reason", "why"), [
    ("Friday at 9pm", [1], 0.95, "", Reason.NOT_IN_MESSAGES, "no shown message contains '9pm'"),
    ("Sunday", [1], 0.95, "", Reason.NOT_IN_MESSAGES, "no shown message contains 'Sunday'"),
    ("at the cinema", [1], 0.95, "", Reason.NOT_CARRIED, "no shown message carries the answer"),
    ("marco@luigis.com", [1], 0.95, "", Reason.NOT_CARRIED, "no shown message carries the answer"),  # composed
    (prompts.ABSTAIN, [], 0.95, "", Reason.NO_ANSWER, "the model found no answer in the messages"),
    ("   ", [1], 0.95, "", Reason.NO_ANSWER, "the model found no answer in the messages"),
    ("8pm", [1], 0.2, "", Reason.LOW_CONFIDENCE, "low confidence (0.20)"),
    ("no", [], 0.9, "Is the deposit due on Wednesday?", Reason.UNCITED_YES_NO,
     "the model cited no message for its yes or no"),
    ("Wednesday", [3], 0.9, "How much is the deposit?", Reason.NO_NUMBER,
     "asked how much or how many, the answer has no number"),
    ("Luigi's", [1], 0.9, "When is the dinner at Luigi's?", Reason.NO_TIME,
     "asked when, the answer names no time or day"),
    ("Luigi's", [1], 0.9, "Where is Luigi's?", Reason.ECHO, "the answer only repeats the question"),
    ("8pm", [1], 0.9, "What time is Hugo's party?", Reason.UNNAMED,
     "the message that carries the answer does not mention 'Hugo'"),
    ("8pm", [1], 0.9, "What time does the cinema start tonight?", Reason.NO_SHARED_WORD,
     "the message that carries the answer shares no word with the question"),
    ("8pm", [1], 0.9, "What time is dinner on Saturday?", Reason.OTHER_DAY,
     "the message is about Friday, not Saturday"),
])
def test_each_rule_refuses_with_its_reason(answer, cites, confidence, question, reason, why):
    verdict = check(answer, cites, confidence, SHOWN, CFG, question)
    assert (verdict.ok, verdict.reason, verdict.why) == (False, reason, why)
    assert (verdict.answer, verdict.cited) == ("", ())


def test_a_message_far_less_about_the_question_than_the_best_one_does_not_carry_its_answer():
    distant = [replace(BOOKED, similarity=0.1), replace(NEAR, similarity=0.6), DEPOSIT]
    verdict = check("8pm", [1], 0.9, distant, CFG)
    assert verdict.reason is Reason.OFF_TOPIC
    assert verdict.why == "the message that carries the answer is not about the question (similarity 0.10, best 0.60)"
    near = [replace(BOOKED, similarity=0.45), replace(NEAR, similarity=0.6), DEPOSIT]  # within max_relevance_gap
    assert check("8pm", [1], 0.9, near, CFG).ok
    assert not check("8pm", [1], 0.9, near, replace(CFG, max_relevance_gap=0.1)).ok


def test_the_sender_is_not_the_answer_unless_asked_who():
    scam = [hit(1, "Your parcel is held at the depot, confirm your bank PIN to release it", "+44 7700 900123",
                "+44 7700 900123")]
    refused = check("7700 900123", [1], 0.9, scam, CFG, "What is my bank PIN?")
    assert refused.reason is Reason.SENDER
    assert refused.why == "the answer is who sent the message (+44 7700 900123), not what it says"
    assert check("7700 900123", [1], 0.9, scam, CFG, "Who asked for my bank PIN?").ok


def test_a_yes_or_no_is_read_from_the_message_it_cites_which_must_be_about_the_question():
    scanner = [hit(1, "ThE__OnE, you don't need a virus scanner on linux", "karlheg", "#ubuntu")]
    ok = check("no", [1], 0.9, scanner, CFG, "Does ThE__OnE need a virus scanner?")
    assert ok.ok and ok.answer == "no" and ok.cited == tuple(scanner)
    assert check("yes", [1], 0.9, scanner, CFG, "Does Hugo need a scanner?").reason is Reason.UNNAMED
    # not a yes/no question: "no" must then be copied from a message, and none says it
    assert check("no", [1], 0.9, scanner, CFG, "What does ThE__OnE need?").reason is Reason.NOT_CARRIED


def test_a_thing_the_message_names_as_asked_for_is_no_echo_and_a_choice_is_no_echo():
    command = [hit(1, "The 'file' command can help you identify what kind of file it is.", "karlheg", "#ubuntu")]
    assert check("file", [1], 0.9, command, CFG, "Which command tells what kind of file it is?").ok
    assert check("Luigi's", [1], 0.9, SHOWN, CFG, "Is dinner at Luigi's or at home?").ok


def test_when_the_cited_message_is_off_the_question_another_one_that_carries_the_answer_is_cited():
    never = hit(1, "I never use Qt applications", "karlheg", "#ubuntu", similarity=0.55)
    toolkit = hit(2, "Qt is the user interface widget toolkit used by KDE programs.", "ekCo", "#ubuntu",
                  similarity=0.65)
    moved = check("Qt", [1], 0.9, [never, toolkit], CFG, "What toolkit do KDE programs use?")
    assert moved.ok and moved.cited == (toolkit,)
    alone = check("Qt", [1], 0.9, [never], CFG, "What toolkit do KDE programs use?")
    assert (alone.reason, alone.why) == (Reason.UNNAMED, "the message that carries the answer does not mention 'KDE'")


def test_a_message_that_names_no_day_speaks_of_the_day_it_was_sent():
    undated = hit(1, "Open until 20:00", "Boots", "Pharmacy", ts="2026-11-21T09:00:00+01:00")  # a Saturday
    assert check("20:00", [1], 0.9, [undated], CFG, "When is the pharmacy open on Saturday?").ok
    other = check("20:00", [1], 0.9, [undated], CFG, "When is the pharmacy open on Sunday?")
    assert other.why == "the message is about Saturday, not Sunday"


def test_the_weekdays_a_message_and_its_chat_talk_about():
    thu = "2026-11-26T18:00:00+01:00"

    def meant(text: str, thread: str = "Brunch", before=None) -> set[str]:
        return _weekdays_meant([hit(1, text, thread=thread, ts=thu, before=before)])
    assert meant("See you tomorrow at 10") == {"friday"}
    assert meant("Tonight at 8, then Sunday brunch") == {"thursday", "sunday"}
    assert meant("Tonight at 8", thread="Dinner Friday") == {"thursday", "friday"}  # the chat's name counts
    assert meant("Back yesterday") == {"thursday"}  # not a day ahead: the day it was sent
    assert meant("Due on the 3rd") == set()  # a date, not a weekday
    assert meant("Sometime next week") == set()
    # the message it replies to counts: "yes, 8 works" answers "dinner on Friday?"
    assert meant("yes, 8 works", before=message("Dinner on Friday?", "Alice", "Brunch", thu)) == {"friday"}


def test_the_legacy_json_check_says_the_same_as_check():
    for answer, cites, confidence, question in [("Friday at 8pm at Luigi's", [1], 0.95, ""), ("8pm", [2], 0.9, ""),
                                                ("Friday at 9pm", [1], 0.95, ""), ("8pm", [1], 0.2, ""),
                                                ("Luigi's", [1], 0.9, "Where is Luigi's?")]:
        raw = f'{{"answer": "{answer}", "citations": {cites}, "confidence": {confidence}}}'
        verdict, legacy = check(answer, cites, confidence, SHOWN, CFG, question), \
            check_answer(raw, SHOWN, CFG, question)
        assert legacy == ((verdict.answer, list(verdict.cited), verdict.confidence) if verdict.ok else verdict.why)
    assert check_answer('{"answer": "8pm", "citations": [1', SHOWN, CFG) == "the model's answer was not valid JSON"
    assert check_answer('{"answer": "8pm", "citations": ["one"]}', SHOWN, CFG) == \
        "the model's answer was not valid JSON"


def test_a_verdict_is_consistent_and_immutable():
    with pytest.raises(ValueError, match="inconsistent"):
        Verdict(True, Reason.ECHO, "the answer only repeats the question")
    with pytest.raises(ValueError, match="inconsistent"):
        Verdict.shown("8pm", [], 0.9)  # shown, but from no message
    verdict = check("8pm", [1], 0.9, SHOWN, CFG)
    with pytest.raises(FrozenInstanceError):
        verdict.answer = "9pm"  # type: ignore[misc]
    assert Reason.OTHER_DAY == "other_day"  # a str: written as is into JSON reports


def test_names_and_topic_words_of_a_question():
    assert question_names("What is Hugo's phone number?") == ["Hugo"]
    assert question_names("Which channel should ekCo ask about the Qt problem?") == ["ekCo", "Qt"]
    assert question_names("What time is lunch on Sunday in December?") == []
    assert without_each_word("How old is Grandpa turning?", "80") == [("turning", "How old is Grandpa?")]
    assert [w for w, _ in without_each_word("Which room is free for the design review?", "Room 3.14")] == \
        ["free", "design", "review"]


def test_amounts_and_tags_are_shown_with_the_sign_the_messages_write():
    assert as_written("25 per person", [DEPOSIT]) == "£25 per person"
    assert as_written("8pm", [DEPOSIT]) == "8pm"
    assert as_written("kubuntu", [hit(1, "ask in #kubuntu")]) == "#kubuntu"


# -- ask: the whole path, with a scripted model ------------------------------------------------------------------

def _question_of(prompt: str) -> str:
    return re.findall(r"Question: (.*)", chat_parts(prompt + "<|im_end|>")["user"])[-1]


def ask_model(answers: list[str], cite: dict[str, int] | int = 1, p_abstain: float = 0.05,
              lp: dict[str, float] | None = None, top: tuple[str, ...] = ()) -> FakeEngine:
    """The ask model: writes `answers` in turn (the greedy one, then the next guesses), cites `cite` (per answer),
    abstains with probability `p_abstain`, and gives each answer the log-probability `lp[question]` after a
    question: −10 after "What do the messages say?" and −1 after any other unless given."""
    lp = dict(lp or {})

    def next_logprobs(text: str, candidates: list[str]) -> list[float]:
        if text.endswith(prompts.ASK_CITE):  # which shown message the answer just written comes from
            written = text[text.rindex(prompts.ASK_OPEN) + len(prompts.ASK_OPEN):-len(prompts.ASK_CITE)]
            n = cite if isinstance(cite, int) else cite[written.strip()]
            return [0.0 if c == str(n) else -6.0 for c in candidates]
        assert candidates == ["I"], candidates  # the first token of "I don't see that in your messages."
        return [math.log(p_abstain)]

    def continuations(prefix: str, conts: list[str]) -> list[float]:
        question = _question_of(prefix)
        return [lp.get(question, -10.0 if question == prompts.ASK_UNASKED else -1.0) for _ in conts]

    def writes(answer: str):
        def write(prompt: str, params) -> str:  # a next guess is asked to go on from its first piece
            started = prompt[prompt.rindex(prompts.ASK_OPEN) + len(prompts.ASK_OPEN):]
            assert answer.startswith(started), (answer, started)
            return answer[len(started):] + '", "citations": ['
        return write

    return FakeEngine([writes(a) for a in answers], next_logprobs=next_logprobs,
                      continuations=continuations, top_tokens=lambda text, n: [(t, -1.0) for t in top][:n])


def verifier_model(support: dict[str, float]) -> FakeEngine:
    """The verifier: P(yes) that the message states the answer, per answer."""
    def yes_no(text: str, candidates: list[str]) -> list[float]:
        assert candidates == ["yes", "Yes", "no", "No"], candidates
        p = support[re.findall(r"\nAnswer: (.*)\n", text)[-1]]
        return [math.log(p / 2)] * 2 + [math.log((1 - p) / 2)] * 2
    return FakeEngine(next_logprobs=yes_no)


def run_ask(engine: FakeEngine, question: str, hits: list[Hit] = SHOWN, config: AskConfig = CFG,
            verifier: FakeEngine | None = None):
    return ask(Assistant(engine), FakeIndex(hits), question, datetime.fromisoformat("2026-11-21T09:00:00+01:00"),
               config, Assistant(verifier) if verifier else None)


def test_nothing_similar_enough_is_an_abstention_before_any_model_call():
    engine = ask_model([])
    far = [replace(h, similarity=0.2) for h in SHOWN]
    result = run_ask(engine, "What is the quantum chromodynamics homework?", far)
    assert (result.abstained, result.reason, result.answer) == (True, "nothing relevant in the messages",
                                                                prompts.ABSTAIN)
    assert result.citations == [] and result.retrieved == [11, 12, 13] and engine.calls == []


def test_an_answer_that_passes_every_check_is_spoken_with_its_day_words_dated():
    engine = ask_model(["Friday at 8pm"], lp={"What time is on Friday?": -3.0})  # less likely without "dinner"
    result = run_ask(engine, "What time is dinner on Friday?")
    assert (result.abstained, result.reason, result.answer) == (False, "answered", "Friday at 8pm")
    assert result.citations == [11] and result.confidence == pytest.approx(0.95)
    # "Friday" in a message sent on Friday 20 November is the next Friday
    assert result.spoken == "Friday 27 November at 8pm"
    assert result.question_gain == pytest.approx(9.0)  # −1 after the question, −10 after "What do the messages say?"
    assert (result.weakest_word, result.word_gain) == ("dinner", pytest.approx(2.0))
    assert result.p_abstain == pytest.approx(0.05) and result.draft == "Friday at 8pm"
    user = chat_parts(engine.generations[0].prompt + "<|im_end|>")["user"]
    assert user.startswith("Today is Saturday 21 November.") and "[1] Fri Marco: Booked Luigi's" in user


def test_the_model_saying_it_does_not_know_is_an_abstention_without_a_citation_asked_for():
    engine = ask_model([prompts.ABSTAIN], p_abstain=0.9)
    result = run_ask(engine, "What is Olu's phone number?")
    assert (result.abstained, result.reason) == (True, "the model found no answer in the messages")
    assert result.draft == prompts.ABSTAIN and result.p_abstain == pytest.approx(0.9)
    assert len(engine.called("next_token_logprobs")) == 1  # only P(abstain): no citation read


def test_an_answer_as_likely_with_no_question_asked_is_refused():
    engine = ask_model(["8pm"], lp={prompts.ASK_UNASKED: -2.0})
    result = run_ask(engine, "What time is dinner on Friday?")
    assert result.abstained and result.question_gain == pytest.approx(1.0)
    assert result.reason == "the model gives this answer as readily with no question asked (gain 1.0 nats)"


def test_an_answer_likelier_without_a_word_of_the_question_is_refused():
    engine = ask_model(["£25"], cite=3, lp={"When is the dinner due?": -0.2})
    result = run_ask(engine, "When is the dinner deposit due?")
    assert result.abstained and (result.weakest_word, result.word_gain) == ("deposit", pytest.approx(-0.8))
    assert result.reason == "the answer fits the question better without 'deposit' (0.8 nats likelier)"


def test_with_a_verifier_an_answer_a_check_refused_makes_way_for_the_next_likeliest_one():
    engine = ask_model(["8pm", "Wednesday"], cite={"8pm": 1, "Wednesday": 3}, top=("8", "Wednesday", " by"))
    verifier = verifier_model({"Wednesday": 0.9})
    result = run_ask(engine, "By which day is the deposit due?", verifier=verifier)
    # "8pm" comes from the booking, which says nothing of a deposit: refused before the verifier is asked
    assert (result.abstained, result.answer, result.citations, result.candidate) == (False, "Wednesday", [13], 1)
    assert result.support == pytest.approx(0.9) and result.word_gain is None  # no word gains with a verifier
    assert not result.hedged and result.spoken == "Wednesday 25 November"
    # the next guess goes on from the model's next likeliest first token that does not start the greedy answer
    assert engine.generations[1].prompt.endswith(prompts.ASK_OPEN + "Wednesday")
    assert len(verifier.called("next_token_logprobs")) == 1


def test_after_the_verifier_refuses_an_answer_the_next_guesses_are_weighed_only_if_configured():
    def asking(config: AskConfig):
        engine = ask_model(["£25", "Wednesday"], cite=3, top=("£", "Wednesday"))
        return engine, run_ask(engine, "When is the deposit due?", config=config,
                               verifier=verifier_model({"£25": 0.2, "Wednesday": 0.7}))
    engine, result = asking(CFG)  # "£25" passes the checks (a number for "when"); the verifier says no
    assert result.abstained and result.support == pytest.approx(0.2)
    assert result.reason == "the checking model does not find the answer in its message (P(yes) 0.20)"
    assert engine.script_left()["generate"] == 1  # no second guess
    engine, result = asking(replace(CFG, retry_after_verifier=True))
    assert (result.abstained, result.answer, result.candidate) == (False, "Wednesday", 1)
    # the verifier is not sure (P(yes) < sure_support): a guess, followed by the words it came from
    assert result.hedged and result.evidence == "£25 deposit per person by Wednesday please"
    assert result.spoken == ("Maybe Wednesday 25 November. Marco wrote: \u201c£25 deposit per person by Wednesday "
                             "please\u201d")


def test_with_a_verifier_that_refuses_every_answer_the_first_refusal_is_reported():
    engine = ask_model(["£25", "Wednesday"], cite=3, top=("Wednesday",))
    verifier = verifier_model({"£25": 0.3, "Wednesday": 0.5})
    result = run_ask(engine, "When is the deposit due?", verifier=verifier,
                     config=replace(CFG, retry_after_verifier=True))
    assert result.abstained and result.candidate == 0 and result.support == pytest.approx(0.3)
    assert result.reason == "the checking model does not find the answer in its message (P(yes) 0.30)"
    assert engine.script_left()["generate"] == 0  # the second guess was weighed, and refused too


def test_the_glasses_asker_returns_the_cited_messages():
    engine = ask_model(["£25"], cite=3)
    asked = InboxAsker(Assistant(engine), FakeIndex(SHOWN))("How much is the deposit?",
                                                             datetime.fromisoformat("2026-11-21T09:00:00+01:00"))
    assert asked.answer.answer == "£25" and asked.cited == [DEPOSIT.message]
