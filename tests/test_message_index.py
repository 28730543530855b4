"""Search over the inbox: incremental indexing, hybrid ranking, forgetting, sealed vectors; and `ask` on top."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from device.ask.embedder import NAME, Embedder, fetch_embedder
from device.ask.message_index import BM25, MessageIndex, tokens
from device.messages.inbox import Message, read_feed
from device.messages.retention import apply_retention, forget_thread
from device.messages.store import MessageStore

SAMPLE = Path(__file__).resolve().parents[1] / "device" / "data" / "sample_inbox.jsonl"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    fetch_embedder()
    return Embedder(threads=2)


@pytest.fixture
def indexed(tmp_path, embedder):
    store = MessageStore(tmp_path / "store.db", key=bytes(range(32)))
    store.add(read_feed(SAMPLE))
    index = MessageIndex(store, embedder)
    report = index.sync()
    yield store, index, report
    store.close()


def _texts(hits) -> list[str]:
    return [h.message.text for h in hits]


def test_every_message_is_indexed_once_and_new_ones_incrementally(indexed, embedder):
    store, index, report = indexed
    assert report == {"added": 22, "embedded": 22, "removed": 0, "size": 22}
    assert index.sync() == {"added": 0, "embedded": 0, "removed": 0, "size": 22}
    later = Message("Climbing crew", "Priya", "Bring the 47 bus, the tram is on strike",
                    datetime(2026, 11, 21, 8, 0, tzinfo=UTC))
    store.add([later])
    assert index.sync()["added"] == 1 and len(index) == 23
    assert _texts(index.search("which bus should I take?", 3))[0] == later.text
    # a restart reads the sealed vectors back instead of embedding again
    again = MessageIndex(store, embedder)
    assert again.sync()["embedded"] == 0 and len(again) == 23


def test_hybrid_search_finds_paraphrases_and_exact_words(indexed):
    _, index, _ = indexed
    assert "plumber" in _texts(index.search("when is someone coming to fix the heating?", 3))[0]
    assert "size 42" in _texts(index.search("spare shoes size", 3))[0]  # keywords: a rare word and a number
    assert "Luigi's" in " ".join(_texts(index.search("what time is dinner on Friday?", 2)))
    hit = index.search("Weber cake", 1)[0]
    assert hit.keyword_rank == 1 and "Weber" in hit.message.text


def test_forget_and_retention_remove_hits_and_sealed_vectors(indexed, tmp_path):
    store, index, _ = indexed
    assert any(h.message.thread == "Flat 4B" for h in index.search("plumber boiler", 5))
    report = forget_thread(store, "Flat 4B", tmp_path)
    assert report["vectors"] == 3
    assert index.sync()["removed"] == 3
    assert all(h.message.thread != "Flat 4B" for h in index.search("plumber boiler", 5))
    apply_retention(store, datetime(2026, 11, 20, 20, 0, tzinfo=UTC), tmp_path)
    index.sync()
    assert all(h.message.ts >= datetime(2026, 11, 20, 20, 0, tzinfo=UTC) for h in index.search("climbing", 10))
    assert {rid for rid, _ in store.vectors(NAME)} == set(index.messages)


def test_vectors_are_sealed_at_rest(indexed):
    store, index, _ = indexed
    rid, vec = next(iter(index.vectors.items()))
    (body,) = store.db.execute("SELECT body FROM vectors WHERE message_id=?", (rid,)).fetchone()
    assert vec.tobytes() not in body and len(body) > vec.nbytes  # ciphertext + nonce + tag
    assert np.array_equal(np.frombuffer(dict(store.vectors(NAME))[rid], dtype=np.float32), vec)


def test_bm25_add_remove_and_tokens():
    bm = BM25()
    bm.add(1, "the 47 bus to Ostbahnhof")
    bm.add(2, "the tram to work")
    assert tokens("What's the 10:30 plan?") == ["what's", "10:30", "plan"]
    assert [d for d, _ in bm.search("47 bus", 5)] == [1]
    bm.remove(1)
    assert bm.search("47 bus", 5) == [] and bm.total_len == sum(bm.lengths.values())


def test_an_answer_is_shown_only_when_its_citations_carry_it(indexed):
    from device.ask.answer import AskConfig, check_answer

    _, index, _ = indexed
    shown = sorted(index.search("dinner Friday Luigi's deposit", 3), key=lambda h: (h.message.ts, h.id))
    booked = next(i for i, h in enumerate(shown, 1) if "Booked Luigi's" in h.message.text)
    other = next(i for i, h in enumerate(shown, 1) if i != booked)
    cfg = AskConfig()

    def answer(text: str, cites: list[int], confidence: float = 0.95) -> str:
        return f'{{"answer": "{text}", "citations": {cites}, "confidence": {confidence}}}'
    ok = check_answer(answer("Friday at 8pm at Luigi's", [booked]), shown, cfg)
    assert not isinstance(ok, str) and [h.message.text[:14] for h in ok[1]] == ["Booked Luigi's"]
    # a right answer with the wrong citation is re-cited to the message that carries it
    moved = check_answer(answer("8pm", [other]), shown, cfg)
    assert not isinstance(moved, str) and moved[1][0].message.text.startswith("Booked Luigi's")
    assert "no shown message contains" in check_answer(answer("Friday at 9pm", [booked]), shown, cfg)
    assert "no shown message" in check_answer(answer("at the cinema", [booked]), shown, cfg)
    assert "no shown message" in check_answer(answer("marco@luigis.com", [booked]), shown, cfg)  # composed
    assert "no answer" in check_answer(answer("I don't see that in your messages.", []), shown, cfg)
    assert "low confidence" in check_answer(answer("8pm", [booked], 0.2), shown, cfg)
    assert "not valid JSON" in check_answer('{"answer": "8pm", "citations": [1', shown, cfg)
    # the answer is carried, but by a message far less about the question than the best one: a neighbour's fact
    distant = [replace(h, similarity=0.1 if i == booked else 0.6) for i, h in enumerate(shown, 1)]
    assert "not about the question" in check_answer(answer("8pm", [booked]), distant, cfg)
    near = [replace(h, similarity=0.5 if i == booked else 0.6) for i, h in enumerate(shown, 1)]
    assert not isinstance(check_answer(answer("8pm", [booked]), near, cfg), str)
    # the question's names, words and weekdays must be in the message that carries the answer (or its context)
    eight = answer("8pm", [booked])
    assert not isinstance(check_answer(eight, shown, cfg, "What time is dinner on Friday?"), str)
    assert "does not mention 'Hugo'" in check_answer(eight, shown, cfg, "What time is Hugo's party?")
    assert "shares no word" in check_answer(eight, shown, cfg, "What time does the cinema start tonight?")
    assert "about Friday, not Saturday" in check_answer(eight, shown, cfg, "What time is dinner on Saturday?")


def test_answers_that_are_the_sender_or_the_question_are_refused_and_signs_restored(indexed):
    from device.ask.answer import AskConfig, as_written, check_answer

    _, index, _ = indexed
    cfg = AskConfig()
    scam = sorted(index.search("bank PIN parcel depot", 3), key=lambda h: (h.message.ts, h.id))
    at = next(i for i, h in enumerate(scam, 1) if "bank PIN" in h.message.text)
    sender_number = json.dumps({"answer": "7700 900123", "citations": [at], "confidence": 0.9})
    assert "who sent the message" in check_answer(sender_number, scam, cfg, "What is my bank PIN?")
    shown = sorted(index.search("dinner Friday Luigi's deposit", 3), key=lambda h: (h.message.ts, h.id))
    booked = next(i for i, h in enumerate(shown, 1) if "Booked Luigi's" in h.message.text)
    echo = json.dumps({"answer": "Luigi's", "citations": [booked], "confidence": 0.9})
    assert "repeats the question" in check_answer(echo, shown, cfg, "Where is Luigi's?")
    assert not isinstance(check_answer(echo, shown, cfg, "Is dinner at Luigi's or at home?"), str)  # a choice offered
    deposit = [h for h in shown if "£25" in h.message.text]
    assert as_written("25 per person", deposit) == "£25 per person" and as_written("8pm", deposit) == "8pm"


def test_a_message_that_names_no_day_speaks_of_the_day_it_was_sent(indexed):
    from device.ask.answer import AskConfig, check_answer

    _, index, _ = indexed
    hit = index.search("Booked Luigi's Carver Street", 1)[0]
    undated = replace(hit, message=replace(hit.message, text="Open until 20:00", thread="Pharmacy"), before=None)
    raw = '{"answer": "20:00", "citations": [1], "confidence": 0.9}'
    sent = hit.message.ts.strftime("%A")
    other = "Sunday" if sent != "Sunday" else "Monday"
    assert not isinstance(check_answer(raw, [undated], AskConfig(), f"When is the pharmacy open on {sent}?"), str)
    assert f"not {other}" in check_answer(raw, [undated], AskConfig(), f"When is the pharmacy open on {other}?")


def test_yes_no_answers_things_named_as_asked_and_the_message_about_the_question(indexed):
    from device.ask.answer import AskConfig, check_answer

    _, index, _ = indexed
    base = index.search("Booked Luigi's Carver Street", 1)[0]

    def said(text: str, similarity: float = 0.6, id_: int = 1):
        return replace(base, id=id_, message=replace(base.message, text=text, thread="#ubuntu", sender="karlheg"),
                       before=None, similarity=similarity)

    def raw(answer: str, cites: list[int]) -> str:
        return json.dumps({"answer": answer, "citations": cites, "confidence": 0.9})
    cfg = AskConfig()
    # a yes or no is read from the message the model cites, which must still be about the question
    scanner = [said("ThE__OnE, you don't need a virus scanner on linux")]
    ok = check_answer(raw("no", [1]), scanner, cfg, "Does ThE__OnE need a virus scanner?")
    assert not isinstance(ok, str) and ok[0] == "no" and ok[1] == scanner
    assert "cited no message" in check_answer(raw("no", []), scanner, cfg, "Does ThE__OnE need a virus scanner?")
    assert "does not mention 'Hugo'" in check_answer(raw("yes", [1]), scanner, cfg, "Does Hugo need a scanner?")
    assert "no shown message" in check_answer(raw("no", [1]), scanner, cfg, "What does ThE__OnE need?")
    # "file" is in the question, but the message names it as the command asked for: not an echo
    command = [said("The 'file' command can help you identify what kind of file it is.")]
    assert not isinstance(check_answer(raw("file", [1]), command, cfg, "Which command tells what kind of file it is?"),
                          str)
    p2p = [said("ThE__OnE: I got it from p2p, it is guides to linux")]
    assert "repeats the question" in check_answer(raw("p2p", [1]), p2p, cfg, "What did ThE__OnE download from p2p?")
    # the model cites a message that carries the answer but is not about the question; another one is
    never = said("I never use Qt applications", 0.55, 1)
    toolkit = said("Qt is the user interface widget toolkit used by KDE programs.", 0.65, 2)
    moved = check_answer(raw("Qt", [1]), [never, toolkit], cfg, "What toolkit do KDE programs use?")
    assert not isinstance(moved, str) and moved[1] == [toolkit]
    assert "does not mention 'KDE'" in check_answer(raw("Qt", [1]), [never], cfg, "What toolkit do KDE programs use?")


def test_question_names():
    from device.ask.answer import question_names

    assert question_names("What is Hugo's phone number?") == ["Hugo"]
    assert question_names("Which channel should ekCo ask about the Qt problem?") == ["ekCo", "Qt"]
    assert question_names("What time is lunch on Sunday in December?") == []
    assert question_names("Is my bank PIN in there?") == ["PIN"]


def test_the_words_a_question_is_about_are_dropped_one_at_a_time():
    from device.ask.answer import without_each_word

    # names are held to the message apart ("Christmas", "Grandpa"); question and stop words say nothing of the topic
    assert without_each_word("Which hotel are we staying at for Christmas?", "The café") == [
        ("hotel", "Which are we staying at for Christmas?"), ("staying", "Which hotel are we at for Christmas?")]
    # "how old" asks for an age: "old" is the kind of answer, like "how much"
    assert without_each_word("How old is Grandpa turning?", "80") == [("turning", "How old is Grandpa?")]
    # a word the answer says itself is answered by it
    assert [w for w, _ in without_each_word("Which room is free for the design review?", "Room 3.14")] == \
        ["free", "design", "review"]
    assert without_each_word("When is the dinner deposit due?", "8pm")[-1] == ("due", "When is the dinner deposit?")


def test_ask_with_the_real_model_cites_real_messages_or_abstains(indexed, model_spec):
    from device.ask.answer import ask
    from device.assistant.core import Assistant
    from device.engines import load_engine
    from device.messages.day_words import resolve_day_words

    _, index, _ = indexed
    assistant = Assistant(load_engine(model_spec.name, n_ctx=2048, n_threads=2))
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    far = ask(assistant, index, "notes from the quantum chromodynamics lecture", now)
    assert far.abstained and far.reason == "nothing relevant in the messages" and far.citations == []
    for question in ("What time is dinner on Friday?", "Who should we leave the key with?"):
        result = ask(assistant, index, question, now)
        assert set(result.citations) <= set(result.retrieved) <= set(index.messages)
        assert result.abstained == (result.citations == [])
        assert result.reason == "answered" if not result.abstained else result.answer.startswith("I don't see")
        if not result.abstained:  # spoken with its day words dated against the message that said them
            assert result.spoken == resolve_day_words(result.answer, index.messages[result.citations[0]].ts)


def test_the_glasses_answer_a_spoken_question_from_the_messages(indexed, engine, tmp_path):
    """The voice/HUD path: a question heard by the glasses session → the answer view, spoken, with its sources;
    a tap opens the chat it came from; a question about nothing in the messages is declined, not guessed."""
    from device.ask.answer import InboxAsker
    from device.assistant.core import Assistant
    from device.glasses.session import GlassesSession
    from device.messages.inbox import group_threads
    from device.privacy import stored_texts
    from device.privacy.egress import AuditLog, EgressGate
    from device.privacy.transport import OutboxTransport

    store, index, _ = indexed
    assistant = Assistant(engine)
    gate = EgressGate(lambda: stored_texts(store), AuditLog(tmp_path / "audit.jsonl"),
                      OutboxTransport(tmp_path / "outbox"))
    session = GlassesSession(assistant, gate, group_threads(read_feed(SAMPLE)), asker=InboxAsker(assistant, index))
    screen = session.hear("Which size are Tomasz's spare shoes?")
    assert screen.view == "answer" and screen.answer["question"] == "which size are tomasz's spare shoes"
    assert screen.say == screen.answer["text"]
    texts = {m.text for m in index.messages.values()}
    assert all(c["text"] in texts for c in screen.answer["cited"])
    if not screen.answer["abstained"]:
        assert screen.answer["cited"]
        source = screen.answer["cited"][0]["thread"]
        assert session.key("enter").thread["name"] == source  # tap: the chat the answer comes from
    far = session.hear("what did the quantum chromodynamics lecture cover")
    assert far.view == "answer" and far.answer["abstained"] and far.answer["cited"] == []
    assert far.say == "I don't see that in your messages."
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())


def test_answers_must_fit_this_question_better_than_none_and_better_than_it_without_a_word(indexed, model_spec):
    """The question gain — log p(answer | question) − log p(answer | "What do the messages say?") — and the word
    gain — the least, over the words the question is about, of log p(answer | question) − log p(answer | the
    question without that word) — are what they say, scored from scratch here; an answer short of
    `min_question_gain` or `min_word_gain` is refused, its draft kept."""
    from device.ask.answer import AskConfig, ask, without_each_word
    from device.assistant import prompts
    from device.assistant.core import Assistant
    from device.engines import load_engine
    from device.engines.base import continuation_logprobs_by_rescoring

    _, index, _ = indexed
    engine = load_engine(model_spec.name, n_ctx=2048, n_threads=2)
    assistant = Assistant(engine)
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    questions = ("What time is dinner on Friday?", "Who should we leave the key with?", "How many seats does Priya "
                 "have?", "Which room is the design review in?", "What time does Boulderwelt Ost open?")
    anyway = AskConfig(min_question_gain=-math.inf, min_word_gain=-math.inf)
    answered = [(q, r) for q in questions if not (r := ask(assistant, index, q, now, anyway)).abstained
                and r.word_gain is not None]
    assert answered, "the test model answered none of the questions with words to drop"
    question, result = answered[0]
    shown = sorted((index.messages[i] for i in result.retrieved[:anyway.show]), key=lambda m: m.ts)
    lines, today = prompts.ask_lines(shown), now.strftime("%A %d %B")
    said = engine.tokenize(result.draft) + engine.tokenize('"')

    def scored(q: str) -> float:
        prompt = engine.format_chat(prompts.ask_messages(q, lines, today)) + prompts.ASK_OPEN
        return sum(continuation_logprobs_by_rescoring(engine, engine.tokenize_prompt(prompt), [said])[0])
    asked = scored(question)
    assert result.question_gain == pytest.approx(asked - scored(prompts.ASK_UNASKED), abs=0.2)
    gains = {w: asked - scored(q) for w, q in without_each_word(question, result.draft)}
    assert result.weakest_word == min(gains, key=gains.__getitem__)
    assert result.word_gain == pytest.approx(min(gains.values()), abs=0.2)
    assert 0 < result.question_gain_s < result.total_s  # their cost, part of the answer's time

    unasked = ask(assistant, index, question, now, replace(anyway, min_question_gain=result.question_gain + 0.5))
    assert unasked.abstained and unasked.citations == [] and "no question asked" in unasked.reason
    wordless = ask(assistant, index, question, now, replace(anyway, min_word_gain=result.word_gain + 0.5))
    assert wordless.abstained and wordless.citations == [] and "better without" in wordless.reason
    for strict in (unasked, wordless):
        assert strict.draft == result.draft and strict.question_gain == result.question_gain
        assert strict.word_gain == result.word_gain


def test_a_verifier_must_find_the_answer_in_its_message_and_the_next_likeliest_answers_are_weighed(indexed,
                                                                                                   model_spec):
    """With a verifier, `support` is its P(yes) / (P(yes) + P(no)) that the cited message states the answer, scored
    from scratch here; an answer short of `min_support` is refused (draft kept); then the model's next likeliest
    answers — each of its next likeliest first tokens, continued greedily — are weighed the same way."""
    from device.ask.answer import AskConfig, _next_answers, ask
    from device.assistant import prompts
    from device.assistant.core import Assistant
    from device.engines import load_engine
    from device.engines.base import continuation_logprobs_by_rescoring

    _, index, _ = indexed
    engine = load_engine(model_spec.name, n_ctx=2048, n_threads=2)
    assistant = Assistant(engine)
    checker = Assistant(load_engine(model_spec.name, n_ctx=2048, n_threads=2))
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    anyway = AskConfig(min_question_gain=-math.inf, min_support=0.0, candidates=1)
    questions = ("What time is dinner on Friday?", "Who should we leave the key with?", "Which room is the design "
                 "review in?", "What time does Boulderwelt Ost open?", "How many seats does Priya have?")
    answered = [(q, r) for q in questions if not (r := ask(assistant, index, q, now, anyway, checker)).abstained]
    assert answered, "the test model answered none of the questions"
    question, result = answered[0]
    assert result.word_gain is None  # with a verifier the word gains are not weighed
    assert result.candidate == 0 and 0 < result.support < 1 and 0 < result.support_s < result.total_s

    # an answer the verifier is not sure of is heard as a guess, with the words of its message it came from
    source = index.messages[result.citations[0]]
    unsure = ask(assistant, index, question, now, replace(anyway, sure_support=1.0), checker)
    assert unsure.hedged and unsure.answer == result.answer and unsure.support == result.support
    assert unsure.evidence and unsure.evidence.strip("… ") in source.text
    assert unsure.spoken.startswith("Maybe ") and unsure.evidence in unsure.spoken
    sure = ask(assistant, index, question, now, replace(anyway, sure_support=0.0), checker)
    assert not sure.hedged and sure.evidence == "" and not sure.spoken.startswith("Maybe ")

    v = checker.engine
    scored = v.tokenize_prompt(v.format_chat(prompts.verify_messages(index.messages[result.citations[0]], question,
                                                                     result.draft)))
    yes = [v.tokenize(w)[0] for w in prompts.VERIFY_YES]
    no = [v.tokenize(w)[0] for w in prompts.VERIFY_NO]
    p = [math.exp(x[0]) for x in continuation_logprobs_by_rescoring(v, scored, [[t] for t in yes + no])]
    assert result.support == pytest.approx(sum(p[:2]) / sum(p), abs=0.01)

    strict = replace(anyway, min_support=result.support + 0.01)
    refused = ask(assistant, index, question, now, strict, checker)
    assert refused.abstained and refused.citations == [] and "checking model" in refused.reason
    assert refused.draft == result.draft and refused.support == result.support

    # the next likeliest answers start with the model's next likeliest first tokens, in order, never its first
    ids = sorted(result.retrieved[:anyway.show], key=lambda i: (index.messages[i].ts, i))  # as ask shows them
    shown = [index.messages[i] for i in ids]
    prompt = assistant.prepare("ask", prompts.ask_messages(question, prompts.ask_lines(shown),
                                                           now.strftime("%A %d %B"))) + prompts.ASK_OPEN
    opened = engine.tokenize_prompt(prompt)
    first = engine.tokenize(result.draft)[0]
    starts = [engine.detokenize([t]) for t, _ in engine.top_next_tokens(opened, 12)
              if t != first and '"' not in engine.detokenize([t]) and engine.detokenize([t]).strip()][:2]
    nexts = list(_next_answers(engine, prompt, opened, result.draft, 2))
    assert len(nexts) == 2 and [n[:len(s)] for n, s in zip(nexts, starts, strict=True)] == starts
    assert result.draft not in (n.strip() for n in nexts)
    again = ask(assistant, index, question, now, replace(strict, candidates=3), checker)
    assert again.draft == result.draft  # the model's own first answer is kept, whichever is shown
    if not again.abstained:
        assert again.candidate > 0 and again.support >= strict.min_support and again.answer != result.answer
    else:
        assert "checking model" in again.reason and again.candidate == 0
