""""Ask my messages": retrieve, answer with citations, or say honestly that the messages do not say.

The question retrieves the top-k messages (hybrid search); the model answers in JSON `{answer, citations,
confidence}` over those messages only, numbered: it writes the answer greedily after `{"answer": "`; its citation
is its most likely shown-message number after `"citations": [` (one forward pass, no JSON written token by token);
its confidence is its probability of not starting with "I don't see…". The answer is shown only if every check
holds, otherwise the wearer hears "I don't see that in your messages":
- something relevant was retrieved (best cosine similarity ≥ `min_similarity`),
- every name, number, time, date and place in the answer is in the messages it cites (the faithfulness check the
  summaries use), and each cited message shares a word with the answer — so a cited message really carries it
  (when the model cites the wrong number, the shown message that does carry the answer is cited instead),
- the answer fits the question: a number for how much / how many, a time or day for when; not merely who sent the
  message (unless asked who); not merely words of the question (unless the message names it as the thing asked
  for: "Which command…?" — "the 'file' command"). A yes or no to a yes/no question is read, not copied: the
  message the model cites for it must pass the checks below,
- the message that carries the answer is about the question. A small model asked for something the messages do
  not say ("what is the dentist's address?") answers with a fact from a neighbouring message (the book club's
  street). So every name in the question must be in that message, its chat, sender or the message it replies
  to; it must share a content word with the question; a weekday asked about must be the one it talks about; and
  its similarity to the question must be within `max_relevance_gap` of the best retrieved message's. When the
  message the model cites fails these but another shown message carries the answer and passes, that one is cited,
- the model's probability of answering at all is at least `min_confidence`,
- the answer answers this question, not none: the model must find it at least `min_question_gain` nats likelier
  after the question than after "What do the messages say?" ("How many pages does Piranesi have?" — "12", from
  "the library has a waiting list of 12", is what stands out in the messages whatever is asked), and it must not
  become more than `-min_word_gain` nats likelier when any one word that says what the question is about is
  dropped from it: an answer that fits the question better without a word does not answer that word ("Which
  hotel are we staying at for Christmas?" — "The café", from "I'll pick you up at the station, by the café": likelier
  for "Which are we staying at for Christmas?") — this last check only when no verifier is given,
- with a verifier (a second, larger model: the catalog's `verify` model), its P(yes) that the one message the
  answer comes from states it as the answer to the question is at least `min_support`.
Each check decides with a `Verdict`: shown (the answer and the messages it is cited from) or refused, with the
`Reason` (which check) and why in words (what `Answer.reason` keeps). `check` runs the checks that need no model.
A second look by the same model ("do these messages state this answer?") does not work: qwen2.5-0.5b's P(yes) did
not separate right answers from wrong ones (README); qwen2.5-1.5b's does. Nor did a second guess without it (when
the checks refuse the greedy answer, generate again from the model's next most likely first token: +0.03 F1 on the
project set, but abstention recall fell 0.79 → 0.63). With the verifier a second guess is weighed like the first
(`candidates`): the verifier is what tells right second guesses from wrong ones.
An answer shown whose P(yes) is below `sure_support` is spoken as a guess followed by the words of its message it
came from ("Maybe 8:15. Hana wrote: “…the coach leaves the office at 8:15”"): the verifier's misses are near misses
(a value the message gives for something else), and the wearer hears what the value was said about.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from device.ask.evidence import spoken_as_guess
from device.ask.message_index import Hit, MessageIndex, tokens
from device.assistant import prompts
from device.assistant.core import Assistant
from device.assistant.faithfulness import unsupported
from device.engines.base import Engine, GenerationParams
from device.messages.day_words import resolve_day_words
from device.messages.inbox import Message
from device.messages.words import CALENDAR, INDEX_STOP_WORDS, RELATIVE_DAYS, WEEKDAY_ABBREVIATIONS, WEEKDAYS
from device.tasks import Task

ANSWER_TOKENS = 120
_NAME = re.compile(r"[^\W\d][\w'’.-]*")
_DATE = re.compile(r"\b(\d{1,2}(st|nd|rd|th)|\d{1,2}[./]\d{1,2}|jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|"
                   r"july?|aug(ust)?|sep(t|tember)?|oct(ober)?|nov(ember)?|dec(ember)?)\b", re.I)
# words every question has: they say what kind of answer is wanted, not what it is about
QUESTION_WORDS = {"what", "what's", "whats", "when", "where", "which", "who", "whose", "why", "how", "time", "day",
                  "much", "many", "say", "said", "tell", "told", "can", "can't", "should", "would", "could", "need",
                  "get", "go", "going", "there", "any", "some", "about", "now", "new", "one"}


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[int]  # message ids in the store
    confidence: float
    reason: str  # why it abstained, or "answered"
    retrieved: list[int] = field(default_factory=list)  # message ids shown to the model, best first
    retrieve_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0  # what the model read (past its cached system prompt) and wrote
    completion_tokens: int = 0
    ttft_s: float = 0.0  # the model's time to first token: reading the shown messages
    spoken: str = ""  # what the wearer hears: the answer with its day words dated ("Friday 27 November")
    p_abstain: float = 0.0  # the model's probability of starting its answer with "I don't see that…"
    draft: str = ""  # what the model answered before the checks, kept when a check refuses it: to see why
    # log p(answer | this question) - log p(answer | "What do the messages say?"), in nats; None if not scored
    question_gain: float | None = None
    question_gain_s: float = 0.0  # what scoring it, and the word gains, cost
    # the question's word whose dropping makes the answer likeliest, and log p(answer | question) − log p(answer |
    # question without it); empty and None when no word was dropped
    weakest_word: str = ""
    word_gain: float | None = None
    support: float | None = None  # the verifier's P(yes) that the cited message states the answer; None: no verifier
    # the verifier let the answer through but is not sure of it (support below `AskConfig.sure_support`): the wearer
    # hears it as a guess followed by `evidence`, the words of the cited message it came from
    hedged: bool = False
    evidence: str = ""
    support_s: float = 0.0
    candidate: int = 0  # which of the model's answers was weighed last: 0 its first, 1 its next likeliest, …

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AskConfig:
    k: int = 5  # messages retrieved
    show: int = 5  # of them, the best this many go to the model (each costs prompt time)
    min_similarity: float = 0.25
    min_confidence: float = 0.5  # the model's probability of not starting "I don't see that…"
    max_relevance_gap: float = 0.2  # cosine; chosen on the project question set (see README)
    # nats: how much likelier the model's answer must be as the answer to this question than to no question at
    # all ("What do the messages say?"); chosen on the project question set (see README)
    min_question_gain: float = 2.0
    # nats: the most likelier the answer may become when one word of the question is dropped ("When is the dinner
    # deposit due?" — "8pm": likelier for "When is the dinner deposit?"); chosen on both question sets (README)
    min_word_gain: float = -0.5
    # with a verifier: its least P(yes) that the answer's message states it, and how many of the model's likeliest
    # answers are weighed before abstaining; chosen on the project question set (README)
    min_support: float = 0.65
    candidates: int = 2
    # below this P(yes) an answer the verifier let through is spoken as a guess, with the words it came from: of
    # the project set's answers 0.80 hedges 3 of 7 wrong and 19 of 61 right (a third at most; README)
    sure_support: float = 0.80
    # weigh the next answers also when the verifier refused the first one (not only an earlier check): on the
    # project set +0.01 F1 for +0.3 s at p90 (README)
    retry_after_verifier: bool = False


class Reason(StrEnum):
    """The check that decided whether an answer is shown: one value per rule (the module docstring lists them)."""
    ANSWERED = "answered"  # every check held
    NOTHING_RELEVANT = "nothing_relevant"  # retrieval: no message similar enough to the question
    NOT_JSON = "not_json"  # the model's JSON could not be read (`check_answer` only)
    NO_ANSWER = "no_answer"  # the model answered nothing, or "I don't see that…"
    LOW_CONFIDENCE = "low_confidence"  # P(not abstaining) below `min_confidence`
    UNCITED_YES_NO = "uncited_yes_no"  # a yes or no with no message cited for it
    NOT_IN_MESSAGES = "not_in_messages"  # a name, number, time, date or place no shown message contains
    NOT_CARRIED = "not_carried"  # no shown message carries all of the answer's words
    NO_NUMBER = "no_number"  # how much / how many, answered without a number
    NO_TIME = "no_time"  # when, answered without a time or day
    SENDER = "sender"  # the answer is who sent the message
    ECHO = "echo"  # the answer only repeats the question
    UNNAMED = "unnamed"  # a name in the question is not in the message that carries the answer
    NO_SHARED_WORD = "no_shared_word"  # that message shares no content word with the question
    OTHER_DAY = "other_day"  # that message is about another weekday than the one asked about
    OFF_TOPIC = "off_topic"  # that message is far less similar to the question than the best one shown
    UNASKED = "unasked"  # the model gives the answer as readily with no question asked
    WORD_DROPPED = "word_dropped"  # the answer fits the question better without one of its words
    UNSUPPORTED = "unsupported"  # the verifier does not find the answer in its message


@dataclass(frozen=True)
class Verdict:
    """What the checks decided about one answer: shown, with the messages it cites, or refused — and why."""
    ok: bool
    reason: Reason
    why: str  # in words, as `Answer.reason` keeps it: "answered", or why the answer is refused
    answer: str = ""  # the answer as shown (when ok)
    cited: tuple[Hit, ...] = ()  # the messages that carry it, best first (when ok)
    confidence: float = 0.0  # the model's probability of answering at all (when ok)

    def __post_init__(self) -> None:
        if self.ok != (self.reason is Reason.ANSWERED) or (self.ok and not self.cited):
            raise ValueError(f"inconsistent verdict: ok={self.ok}, reason={self.reason}, {len(self.cited)} cited")

    @classmethod
    def shown(cls, answer: str, cited: list[Hit] | tuple[Hit, ...], confidence: float) -> Verdict:
        return cls(True, Reason.ANSWERED, "answered", answer, tuple(cited), confidence)

    @classmethod
    def refused(cls, reason: Reason, why: str) -> Verdict:
        return cls(False, reason, why)


NOTHING_RELEVANT = Verdict.refused(Reason.NOTHING_RELEVANT, "nothing relevant in the messages")


def _abstain(question: str, verdict: Verdict, hits: list[Hit], t0: float, t_ret: float) -> Answer:
    return Answer(question, prompts.ABSTAIN, True, [], 0.0, verdict.why, [h.id for h in hits], t_ret,
                  time.perf_counter() - t0, spoken=prompts.ABSTAIN)


def _source(hits: list[Hit]) -> str:
    return "\n".join(f"{h.message.thread} {h.message.sender} {h.message.ts:%A %d %B %Y %H:%M} {h.message.text}"
                     for h in hits)


def _overlaps(answer: str, hit: Hit) -> bool:
    return bool(set(tokens(answer)) & set(tokens(f"{hit.message.sender} {hit.message.text}")))


def _carried(answer: str, hits: list[Hit]) -> bool:
    """Every name, number, time, date and place of the answer is in these messages, and so is every other word
    of it that is not a stop word: an answer is copied from the messages, not composed (an e-mail address, a
    code, a street the messages never mention cannot slip through)."""
    source = _source(hits)
    return not unsupported(answer, source) and set(tokens(answer)) <= set(tokens(source))


def question_names(question: str) -> list[str]:
    """The names a question is about: capitalised words after its first ("Hugo", "Boulderwelt", "PIN", "ekCo"),
    not day or month names."""
    out = []
    for word in _NAME.findall(question)[1:]:
        word = re.sub(r"['’]s$", "", word)
        if word != "I" and any(c.isupper() for c in word) and word.lower() not in CALENDAR:
            out.append(word)
    return out


def _context(hits: list[Hit]) -> str:
    """The messages, their chats and senders, and what each one replies to."""
    return " ".join(f"{h.message.thread} {h.message.sender} {h.message.text}" +
                    (f" {h.before.sender} {h.before.text}" if h.before else "") for h in hits)


def _content(text: str) -> list[str]:
    """Content words cut to 5 letters, so that "replaced" meets "replacement" and "slides" meets "slide"."""
    return [re.sub(r"['’]s$", "", t)[:5] for t in tokens(text) if t not in QUESTION_WORDS]


def _weekdays_asked(question: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", question.lower()) if w in WEEKDAYS}


def _weekdays_meant(hits: list[Hit]) -> set[str]:
    """The weekdays the messages (and their chats' names) talk about, "tomorrow" and "tonight" resolved against
    when each was sent. A message that names no day and no date speaks of the day it was sent ("Open until
    20:00" sent on a Saturday is Saturday's hours)."""
    out = set()
    for h in hits:
        said = set()
        for m in (h.message, h.before):
            if m is None:
                continue
            for w in re.findall(r"[a-z]+", f"{m.thread} {m.text}".lower()):
                if w in WEEKDAYS:
                    said.add(w)
                elif RELATIVE_DAYS.get(w, -1) >= 0:  # today, tonight, tomorrow (not yesterday)
                    said.add(WEEKDAYS[(m.ts.weekday() + RELATIVE_DAYS[w]) % 7])
        dated = _DATE.search(f"{h.message.thread} {h.message.text}") or \
            re.search(r"\b(week|weekend|month)\b", h.message.text.lower())
        out |= said or (set() if dated else {WEEKDAYS[h.message.ts.weekday()]})
    return out


def _only_in_sender(answer: str, hits: list[Hit]) -> str:
    """The sender whose name or number the answer is, when nothing of the answer is in what the messages say."""
    said = set(tokens(" ".join(h.message.text + (f" {h.before.text}" if h.before else "") for h in hits)))
    if set(tokens(answer)) & said:
        return ""
    return next((h.message.sender for h in hits if set(tokens(answer)) & set(tokens(h.message.sender))), "")


_COUNT = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|fifty|"
                    r"hundred|thousand|half|dozen|free|nothing|none|no)\b")
_WHEN = re.compile(r"\d|\b(" + "|".join((*CALENDAR, *WEEKDAY_ABBREVIATIONS, *RELATIVE_DAYS)) + r"|"
                   r"morning|afternoon|evening|night|noon|midday|midnight|weekend|week|month|year|now|soon|later|"
                   r"christmas|easter|new year|lunch|lunchtime|dinner|breakfast|after|before|until|once|if|while|"
                   r"whenever)\b")


def _misfit(answer: str, question: str) -> Verdict | None:
    """Why the answer is not the kind of thing asked for: a how-much or how-many question answered without a
    number, a when question without a time or a day; None when it is."""
    q, a = question.lower().strip(), answer.lower()
    if re.match(r"how (much|many)\b", q) and not _COUNT.search(a):
        return Verdict.refused(Reason.NO_NUMBER, "asked how much or how many, the answer has no number")
    if re.match(r"(when|what time|what day|which day|what date)\b", q) and not _WHEN.search(a):
        return Verdict.refused(Reason.NO_TIME, "asked when, the answer names no time or day")
    return None


def _echoes(answer: str, question: str, hits: list[Hit]) -> bool:
    """Every word of the answer is in the question — unless the question offers a choice ("this or that?") or
    the messages name the answer as the thing asked for ("Which command…?" — "the 'file' command")."""
    words = set(_content(answer))
    if not words or not words <= set(_content(question)) or re.search(r"\bor\b", question.lower()):
        return False
    head = re.match(r"\s*(?:which|what)\s+([a-z]+)", question.lower())
    if head and head.group(1) not in _VERBS:
        said, noun = re.escape(answer.lower().strip(" '\"")), re.escape(head.group(1))
        named = rf"['\"]?{said}['\"]?\s+{noun}|{noun}s?\s+['\"]?{said}\b"
        if any(re.search(named, h.message.text.lower()) for h in hits):
            return False
    return True


# the words that open a yes/no question, and that follow "what" in a question that is not "which thing?"
_VERBS = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "has", "have",
          "had", "shall", "may", "must"}
_YES_NO = re.compile(r"(yes|no|yeah|nope)\b[.!,]?", re.I)


def _yes_no(answer: str, question: str) -> bool:
    """A yes/no question answered yes or no: such an answer is read from the message, not copied out of it."""
    first = re.match(r"\s*([a-z]+)", question.lower())
    return bool(first and first.group(1) in _VERBS and _YES_NO.fullmatch(answer.strip()))


def as_written(answer: str, hits: list[Hit]) -> str:
    """The answer's amounts and tags with the sign the messages write them with: "25" → "£25", "kubuntu" →
    "#kubuntu" (small models drop them)."""
    text = " ".join(h.message.text for h in hits)

    def signed(m: re.Match) -> str:
        found = re.search(rf"([£$€#])\s?{re.escape(m.group(0))}(?!\w|[.,]\d)", text)
        return found.group(1) + m.group(0) if found else m.group(0)
    return re.sub(r"(?<![£$€#\w.])[\w][\w.,:-]*(?<![.,:])", signed, answer)


def _mentions(name: str, hits: list[Hit]) -> bool:
    context = _context(hits).lower()
    return re.search(rf"(?<!\w){re.escape(name.lower())}(?:'s|s|es)?(?!\w)", context) is not None


def check(answer: str, citations: list[int], confidence: float, shown: list[Hit], config: AskConfig,
          question: str = "") -> Verdict:
    """The checks that need no model, on the model's answer, the shown-message numbers (from 1) it cites and its
    confidence: shown (with the messages it is cited from) or refused, and why."""
    verdict = _carrying(answer.strip(), citations, confidence, shown, config, question)
    if not verdict.ok:
        return verdict
    text, carrying = verdict.answer, list(verdict.cited)
    misfit = _misfit(text, question)
    if misfit:  # "How much does the cake cost?" answered "Weber", the name it is ordered under
        return misfit
    why = _off_question(text, carrying, shown, config, question)
    if why and not _yes_no(text, question):
        # the model cited a message that carries the answer but is not about the question ("Qt" from "I never use
        # Qt applications" for "what toolkit do KDE programs use?"): another shown message that carries it may be
        others = [[h] for h in sorted(shown, key=lambda h: -h.similarity)
                  if h not in carrying and _overlaps(text, h) and _carried(text, [h])]
        moved = next((o for o in others if not _off_question(text, o, shown, config, question)), None)
        if moved is None:
            return why
        return Verdict.shown(text, moved, verdict.confidence)
    if why:
        return why
    return verdict


def check_answer(raw: str, shown: list[Hit], config: AskConfig,
                 question: str = "") -> tuple[str, list[Hit], float] | str:
    """`check` on the model's JSON `{answer, citations, confidence}`, in the older shape: (answer, the messages
    it is cited from, confidence) when it may be shown, else why not."""
    try:
        obj = json.loads(raw)
        text = str(obj["answer"])
        cited = [int(c) for c in obj.get("citations", [])]
        confidence = float(obj.get("confidence", 0.0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Verdict.refused(Reason.NOT_JSON, "the model's answer was not valid JSON").why
    verdict = check(text, cited, confidence, shown, config, question)
    return (verdict.answer, list(verdict.cited), verdict.confidence) if verdict.ok else verdict.why


def _off_question(text: str, carrying: list[Hit], shown: list[Hit], config: AskConfig,
                  question: str) -> Verdict | None:
    """Why the messages that carry the answer do not answer this question, or None when they do."""
    said_by = _only_in_sender(text, carrying)
    if said_by and not re.match(r"\s*(who|whose)\b", question.lower()):
        # "What is my bank PIN?" answered with the number a scam message came from
        return Verdict.refused(Reason.SENDER, f"the answer is who sent the message ({said_by}), not what it says")
    if _echoes(text, question, carrying):  # "What did ThE__OnE download from p2p?" answered "p2p"
        return Verdict.refused(Reason.ECHO, "the answer only repeats the question")
    unnamed = [n for n in question_names(question) if not _mentions(n, carrying)]
    if unnamed:  # "What is Hugo's phone number?" answered from a message that is not about Hugo
        return Verdict.refused(Reason.UNNAMED, f"the message that carries the answer does not mention {unnamed[0]!r}")
    if question and not set(_content(question)) & set(_content(_context(carrying))):
        # "What time does the cinema start tonight?" answered "1pm" from Mum's lunch: nothing in common
        return Verdict.refused(Reason.NO_SHARED_WORD, "the message that carries the answer shares no word with the "
                                                      "question")
    asked, said = _weekdays_asked(question), _weekdays_meant(carrying)
    if asked and said and not asked & said:  # asked about Saturday, the message is about Sunday
        return Verdict.refused(Reason.OTHER_DAY, f"the message is about {', '.join(sorted(said)).title()}, not "
                                                 f"{', '.join(sorted(asked)).title()}")
    best = max(h.similarity for h in shown)
    carried_by = max(h.similarity for h in carrying)
    if carried_by < best - config.max_relevance_gap:
        return Verdict.refused(Reason.OFF_TOPIC, f"the message that carries the answer is not about the question "
                                                 f"(similarity {carried_by:.2f}, best {best:.2f})")
    return None


def _carrying(text: str, cited: list[int], confidence: float, shown: list[Hit], config: AskConfig,
              question: str = "") -> Verdict:
    """The model's answer → shown, citing the messages that carry it, or why not.

    Small models often cite the wrong number next to a right answer, so citations are checked, not trusted: the
    cited messages are kept when they carry every name, number, time, date and place of the answer and every other
    word of it that is not a stop word; otherwise the shown message that does carry them is cited instead; if none
    does, no answer."""
    if not text or _says_abstain(text):
        return Verdict.refused(Reason.NO_ANSWER, "the model found no answer in the messages")
    if confidence < config.min_confidence:
        return Verdict.refused(Reason.LOW_CONFIDENCE, f"low confidence ({confidence:.2f})")
    named = [shown[c - 1] for c in dict.fromkeys(cited) if 1 <= c <= len(shown)]
    if _yes_no(text, question):  # nothing to copy: the message it cites is checked for being about the question
        if named:
            return Verdict.shown(text, named, confidence)
        return Verdict.refused(Reason.UNCITED_YES_NO, "the model cited no message for its yes or no")
    carrying = [h for h in named if _overlaps(text, h)]
    if carrying and _carried(text, carrying):
        return Verdict.shown(text, carrying, confidence)
    alone = [h for h in shown if _overlaps(text, h) and _carried(text, [h])]
    if alone:
        return Verdict.shown(text, alone[:1], confidence)
    together = [h for h in shown if _overlaps(text, h)]
    if together and _carried(text, together):
        return Verdict.shown(text, together, confidence)
    missing = unsupported(text, _source(shown))
    if missing:
        return Verdict.refused(Reason.NOT_IN_MESSAGES, f"no shown message contains {missing[0].text!r}")
    return Verdict.refused(Reason.NOT_CARRIED, "no shown message carries the answer")


def _model_citation(engine: Engine, answered: str, n: int) -> list[int]:
    """The message the model cites for the answer it wrote: its most likely number after `"citations": [`, among
    the shown messages' numbers — decoding constrained to them, in one step instead of writing out the rest of
    the JSON token by token."""
    numbers = [engine.tokenize(str(i)) for i in range(1, n + 1)]
    if any(len(t) != 1 for t in numbers):
        return []  # a tokenizer that splits digits oddly: the checks find the message that carries the answer
    lps = engine.next_token_logprobs(engine.tokenize_prompt(answered + prompts.ASK_CITE), [t[0] for t in numbers])
    return [1 + max(range(n), key=lps.__getitem__)]


def _answer_gains(assistant: Assistant, asked: list[int], lines: list[str], today: str, answer: str,
                  others: list[str]) -> list[float]:
    """log p(answer | the question asked) − log p(answer | each other question), over the same messages, in nats.
    Cheap: the context still holds the asked prompt, and each other question's prompt shares all of it up to
    where the questions part."""
    engine = assistant.engine
    said = engine.tokenize(answer) + engine.tokenize('"')
    asked_lp = sum(engine.continuation_logprobs(asked, [said])[0])
    out = []
    for other in others:
        prompt = engine.tokenize_prompt(
            assistant.prepare(Task.ASK, prompts.ask_messages(other, lines, today)) + prompts.ASK_OPEN)
        out.append(asked_lp - sum(engine.continuation_logprobs(prompt, [said])[0]))
    return out


_WORD = re.compile(r"[\w'’.-]*\w")


def without_each_word(question: str, answer: str) -> list[tuple[str, str]]:
    """(word, the question without it) for each word that says what the question is about — not its question
    words ("what", "how much"), stop words or names (a name asked about must be in the message that answers:
    checked apart), not the word that says what kind of amount "how …" asks for ("old", "long"), and not a word
    the answer says itself ("Which room…?" — "Room 3.14")."""
    names = {n.lower() for n in question_names(question)}
    how = re.match(r"\s*how\s+([a-z]+)", question.lower())
    said = set(tokens(answer))
    out = []
    for m in _WORD.finditer(question):
        word = m.group(0).lower()
        if word in INDEX_STOP_WORDS or word in QUESTION_WORDS or re.sub(r"['’]s$", "", word) in names or \
                (how and word == how.group(1)) or set(tokens(word)) & said:
            continue
        rest = re.sub(r"\s{2,}", " ", question[:m.start()] + question[m.end():]).replace(" ?", "?").strip()
        out.append((m.group(0), rest))
    return out


def _says_abstain(text: str) -> bool:
    return text.rstrip(".").lower() == prompts.ABSTAIN.rstrip(".").lower()


def ask(assistant: Assistant, index: MessageIndex, question: str, now: datetime | None = None,
        config: AskConfig | None = None, verifier: Assistant | None = None) -> Answer:
    """Answer from the messages, or abstain. With a `verifier` (a second, larger model), each answer the checks
    let through must also be one the verifier finds stated by its message, and when the model's first answer is
    refused its next likeliest answers (from its next likeliest first tokens) are weighed the same way."""
    config = config or AskConfig()
    t0 = time.perf_counter()
    if not question.strip():
        raise ValueError("ask needs a question")
    hits = index.search(question, config.k)
    t_ret = time.perf_counter() - t0
    if not hits or max(h.similarity for h in hits) < config.min_similarity:
        return _abstain(question, NOTHING_RELEVANT, hits, t0, t_ret)
    # in time order, as the wearer would read them
    shown = sorted(hits[:config.show], key=lambda h: (h.message.ts, h.id))
    today = (now or datetime.now().astimezone()).strftime("%A %d %B")
    lines = prompts.ask_lines([h.message for h in shown])
    messages = prompts.ask_messages(question, lines, today)
    engine = assistant.engine
    t_model = time.perf_counter()
    prompt = assistant.prepare(Task.ASK, messages) + prompts.ASK_OPEN
    cut = prompt.find(prompts.ASK_SYSTEM)  # what the model reads per question starts after its system prompt
    system = engine.tokenize_prompt(prompt[: cut + len(prompts.ASK_SYSTEM)]) if cut >= 0 else []
    opened = engine.tokenize_prompt(prompt)
    # the model's probability of answering "I don't see that…": its own abstention signal, read off the first
    # token instead of asked for (a 0.5B model writes "confidence": "high" next to almost anything)
    p_abstain = math.exp(engine.next_token_logprobs(opened, engine.tokenize(prompts.ABSTAIN)[:1])[0])
    ttft = time.perf_counter() - t_model
    gen = engine.generate(prompt, _ANSWER_PARAMS)
    cost = {"prompt_tokens": len(opened) - len(system), "completion_tokens": gen.completion_tokens,
            "ttft_s": ttft, "p_abstain": round(p_abstain, 4)}
    context = _Context(assistant, verifier, config, question, shown, lines, today, prompt, opened, p_abstain)
    first = gen.text.rstrip("\\").strip()
    verdict = _weigh(context, gen.text)
    retry = config.retry_after_verifier or context.scores.get("support") is None  # refused before the verifier
    if not verdict.ok and verifier is not None and config.candidates > 1 and not _says_abstain(first) and retry:
        refused = context.scores  # an abstention reports why the model's first answer was refused
        for rank, written in enumerate(_next_answers(engine, prompt, opened, gen.text, config.candidates - 1), 1):
            again = _weigh(context, written, rank)
            if again.ok:
                verdict = again
                break
        else:
            context.scores = refused
    if not verdict.ok:
        return replace(_abstain(question, verdict, hits, t0, t_ret), draft=first, **cost, **context.scores)
    text = verdict.answer
    source = verdict.cited[0].message
    spoken = resolve_day_words(text, source.ts)  # "Friday": the Friday after the message said it
    support = context.scores.get("support")
    unsure = support is not None and support < config.sure_support
    evidence = ""
    if unsure:
        spoken, evidence = spoken_as_guess(text, spoken, source)
    return Answer(question, text, False, [h.id for h in verdict.cited], verdict.confidence, verdict.why,
                  [h.id for h in hits], t_ret, time.perf_counter() - t0, spoken=spoken, draft=first, hedged=unsure,
                  evidence=evidence, **cost, **context.scores)


_ANSWER_PARAMS = GenerationParams(max_tokens=ANSWER_TOKENS, temperature=0.0, stop=('"',), repeat_penalty=1.0)


@dataclass
class _Context:
    """What weighing one written answer needs, and the scores of the answer weighed last (kept on the Answer)."""
    assistant: Assistant
    verifier: Assistant | None
    config: AskConfig
    question: str
    shown: list[Hit]
    lines: list[str]
    today: str
    prompt: str
    opened: list[int]
    p_abstain: float
    scores: dict = field(default_factory=dict)


def _next_answers(engine: Engine, prompt: str, opened: list[int], greedy: str, n: int):
    """The model's next likeliest answers: each of its next likeliest first tokens, continued greedily (a token
    that closes the answer, or the first token of the answer already written, is skipped)."""
    written = engine.tokenize(greedy)[:1]
    starts = [piece for token, _ in engine.top_next_tokens(opened, n + 4)
              if [token] != written and '"' not in (piece := engine.detokenize([token])) and piece.strip()]
    for piece in starts[:n]:
        yield piece + engine.generate(prompt + piece, _ANSWER_PARAMS).text


def _weigh(c: _Context, written: str, rank: int = 0) -> Verdict:
    """One written answer → shown (as written in the messages, with the messages it cites), or why not."""
    engine = c.assistant.engine
    draft = written.rstrip("\\").strip()
    c.scores = {"candidate": rank}
    cited = _model_citation(engine, c.prompt + written, len(c.shown)) if not _says_abstain(draft) else []
    verdict = check(draft, cited, 1.0 - c.p_abstain, c.shown, c.config, c.question)
    if not verdict.ok:
        return verdict
    text, cited_hits = verdict.answer, list(verdict.cited)
    t_gain = time.perf_counter()
    # the answer must answer this question: the model must find it likelier after the question than after no
    # question at all, and than after the question without any one of the words that say what it is about
    yes_no = _yes_no(text, c.question)  # "no" is not the kind of answer a word of the question can make likelier
    # the word gains are the check of last resort without a verifier; with one they cost 0.2 s and answer F1 on
    # the project question set (README)
    dropped = [] if yes_no or c.verifier is not None else without_each_word(c.question, draft)
    gain, *word_gains = _answer_gains(c.assistant, c.opened, c.lines, c.today, draft,
                                      [prompts.ASK_UNASKED] + [q for _, q in dropped])
    c.scores |= {"question_gain": round(gain, 2), "question_gain_s": time.perf_counter() - t_gain}
    if word_gains:
        weakest = min(range(len(dropped)), key=word_gains.__getitem__)
        c.scores |= {"weakest_word": dropped[weakest][0], "word_gain": round(word_gains[weakest], 2)}
    if gain < c.config.min_question_gain:
        return Verdict.refused(Reason.UNASKED, f"the model gives this answer as readily with no question asked "
                                               f"(gain {gain:.1f} nats)")
    if word_gains and c.scores["word_gain"] < c.config.min_word_gain:
        return Verdict.refused(Reason.WORD_DROPPED, f"the answer fits the question better without "
                                                    f"{c.scores['weakest_word']!r} ({-c.scores['word_gain']:.1f} "
                                                    f"nats likelier)")
    if c.verifier is not None:
        t_support = time.perf_counter()
        support = support_probability(c.verifier, cited_hits[0].message, c.question, text)
        c.scores |= {"support": round(support, 3), "support_s": time.perf_counter() - t_support}
        if support < c.config.min_support:
            return Verdict.refused(Reason.UNSUPPORTED, f"the checking model does not find the answer in its message "
                                                       f"(P(yes) {support:.2f})")
    return Verdict.shown(as_written(text, cited_hits), cited_hits, verdict.confidence)


def support_probability(verifier: Assistant, message: Message, question: str, answer: str) -> float:
    """The verifier's P(yes) (against no) that `message` states `answer` to `question`, read off its first token."""
    engine = verifier.engine
    tokens = engine.tokenize_prompt(verifier.prepare(Task.VERIFY, prompts.verify_messages(message, question, answer)))
    yes = [engine.tokenize(w)[0] for w in prompts.VERIFY_YES]
    no = [engine.tokenize(w)[0] for w in prompts.VERIFY_NO]
    lps = engine.next_token_logprobs(tokens, yes + no)
    p_yes, p_no = (sum(math.exp(lp) for lp in part) for part in (lps[:len(yes)], lps[len(yes):]))
    return p_yes / (p_yes + p_no)


@dataclass
class Asked:
    answer: Answer
    cited: list[Message]  # the cited messages themselves, for the display


class InboxAsker:
    """`ask` for the glasses session: the index catches up with the store (new arrivals, forgotten threads) before
    each question."""

    def __init__(self, assistant: Assistant, index: MessageIndex, config: AskConfig | None = None,
                 verifier: Assistant | None = None):
        self.assistant, self.index, self.config = assistant, index, config or AskConfig()
        self.verifier = verifier

    def __call__(self, question: str, now: datetime | None = None) -> Asked:
        self.index.sync()
        answer = ask(self.assistant, self.index, question, now, self.config, self.verifier)
        return Asked(answer, [self.index.messages[i] for i in answer.citations])
