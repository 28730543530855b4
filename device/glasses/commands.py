"""Voice commands as function calls: an utterance becomes an intent with slots.

A fast deterministic parser handles the phrasings people actually use (it runs in well under a millisecond);
what it cannot place goes to the LLM constrained to a JSON schema (`parse_with_llm`). Names in the slots are
resolved against the inbox (`device.glasses.contacts`): an ambiguous name stays ambiguous and carries the question
to ask.

Intents and their slots:
  read(target?)            target: a thread or a sender
  catch_up(thread?)        summary of a thread (default: the one on screen)
  reply(to?, text?)        dictated reply; no text opens dictation / the reply chips
  choose_reply(index)      1-based chip
  edit(text)               the reply waiting for confirmation, changed ("change it to see you at 7")
  send() / cancel() / next()
  mute(thread?, minutes?)  no minutes: until unmuted
  unmute(thread?)          the chat's notifications back ("unmute the climbing crew")
  priority(thread?, minutes?)  always a card, even in quiet hours ("make Mum a priority", "always tell me about Mum")
  quiet_hours(start?, end?)    "HH:MM" local times ("quiet hours from 10 pm to 7 am"); none: say what they are
  quiet_hours_off()        ("turn off quiet hours")
  ask(question)            a question about the messages ("which bus did Tomasz say?"), answered from them
A name said for unmute/priority that matches no chat is kept as `unknown` (the chat on screen is not meant then).
The delivery intents (unmute … quiet_hours_off) are placed by the rules only; the LLM fallback is not offered them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from device.glasses.contacts import ContactBook, Resolution, words
from device.messages.words import CHIP_ORDINALS, DETERMINERS, FILLERS, GROUP_WORDS, NOT_IN_A_NAME, SPOKEN_NUMBERS
from device.tasks import Task

INTENTS = ("read", "catch_up", "reply", "choose_reply", "edit", "send", "cancel", "next", "mute", "unmute", "priority",
           "quiet_hours", "quiet_hours_off", "ask")
# what the LLM fallback may answer: its prompt and worked examples describe these only
LLM_INTENTS = ("read", "catch_up", "reply", "choose_reply", "edit", "send", "cancel", "next", "mute")
# a question about the messages: placed by the rules only when no command fits; the LLM fallback is not offered it
# (a small model routes every unclear command to it)
ASK_PREFIX = re.compile(r"^(?:(?:ask|search|check|look in) my messages(?: for| about)?|in my messages)\s+")
QUESTION = re.compile(r"^(?:what|what's|when|when's|where|where's|which|who|who's|whose|why|how|how's|did|does|"
                      r"do|is|are|was|were|has|have|had|will|can|could|should)\b")
ASK_ABOUT = re.compile(r"^what (?:did|does) .+? (?:say|said|write|wrote|want) (?:about|regarding|on|for) \S")
POLITE_PREFIX = re.compile(
    r"^(?:(?:hey|ok|okay|so|and|hey glasses|glasses|please|can you|could you|would you|will you|i want to|"
    r"i'd like to|i would like to|let's|lets|let me|go ahead and|now)\s+)+")
PRONOUNS = {"her", "him", "them", "this", "that", "it", "back"}
EDIT = re.compile(r"^(?:change|edit|make|correct|fix) (?:it|that|this|the reply|the message)"
                  r"(?: to| so it says| to say| say| read)?\s+(?P<text>.+)$")
TEXT_LEAD = re.compile(r"^(?:,\s*)?(?:saying that|that says|saying|say|with|that)\s+")
DURATION = re.compile(
    r"\bfor (?:like |about |around |maybe |the next |another )?(?P<n>an?|half an|\d+|[a-z]+(?:[ -][a-z]+)?) "
    r"(?P<unit>minutes?|mins?|hours?|days?|weeks?)(?P<half> and a half)?\b")
UNIT_MINUTES = {"min": 1, "minute": 1, "hour": 60, "day": 1440, "week": 10080}


@dataclass
class Command:
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    clarify: str | None = None  # a question to ask before acting (an ambiguous or unknown name)
    source: str = "rules"  # "rules" | "llm" | "none"
    utterance: str = ""

    def to_json(self) -> dict:
        return {"intent": self.intent, "slots": self.slots, "clarify": self.clarify, "source": self.source}


def normalise(utterance: str) -> str:
    """Lower case, no punctuation but apostrophes, no fillers or politeness, ASR slips on command verbs fixed."""
    text = utterance.lower().replace("’", "'")
    text = re.sub(r"[^\w'+\s]", " ", text)
    tokens = [w for w in text.split() if w not in FILLERS]
    text = " ".join(tokens)
    text = POLITE_PREFIX.sub("", text + " ").strip()
    text = re.sub(r"^replied\b", "reply", text)  # ASR: "replied to lena" is the command "reply to lena"
    text = re.sub(r"^sent (it|that)$", r"send \1", text)
    return text


def _number(word: str) -> int | None:
    word = word.strip()
    if word.isdigit():
        return int(word)
    if word in ("a", "an", "one"):
        return 1
    parts = re.split(r"[ -]", word)
    if all(p in SPOKEN_NUMBERS for p in parts):
        return sum(SPOKEN_NUMBERS[p] for p in parts)
    return None


def parse_duration(text: str) -> tuple[int | None, str]:
    """Minutes named in `text` ("for an hour and a half" -> 90) and the text without that phrase."""
    if m := re.search(r"\bfor half an hour\b", text):
        return 30, (text[:m.start()] + text[m.end():]).strip()
    m = DURATION.search(text)
    if not m:
        return None, text
    n = 0.5 if m["n"] == "half an" else _number(m["n"])
    if n is None:
        return None, text
    unit = m["unit"].rstrip("s")
    minutes = n * UNIT_MINUTES[unit] + (UNIT_MINUTES[unit] / 2 if m["half"] else 0)
    return int(minutes), (text[:m.start()] + text[m.end():]).strip()


def _span_ok(tokens: list[str]) -> list[str] | None:
    """The name-bearing tokens of a span, or None if the span holds a word that cannot be in a name."""
    tokens = list(tokens)
    while tokens and tokens[0] in DETERMINERS:
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] in GROUP_WORDS:
        tokens = tokens[:-1]
    if not tokens or any(t in NOT_IN_A_NAME or t in FILLERS for t in tokens):
        return None
    return tokens


def _best(book: ContactBook, spans: list[tuple[int, int, list[str]]], threads_only: bool
          ) -> tuple[Resolution, int, int] | None:
    best: tuple[float, int, Resolution, int, int] | None = None
    for i, j, span in spans:
        alias = " ".join(span)
        res = book.resolve(alias, threads_only)
        if not res.matches:
            continue
        key = (res.score, j - i)
        if best is None or key > (best[0], best[1]):
            best = (res.score, j - i, res, i, j)
    return None if best is None else (best[2], best[3], best[4])


def find_contact(book: ContactBook, text: str, threads_only: bool = False) -> Resolution | None:
    """The best-resolving name anywhere in `text` (aliases such as "that number" first)."""
    toks = words(text)
    for n in (3, 2, 1):  # nicknames may hold stop words ("that number", "the landlord")
        for i in range(len(toks) - n + 1):
            res = book.resolve(" ".join(toks[i:i + n]), threads_only)
            if res.matches and " ".join(toks[i:i + n]).removeprefix("the ") in _alias_keys(book):
                return res
    spans = []
    for i in range(len(toks)):
        for j in range(i + 1, min(len(toks), i + 4) + 1):
            span = _span_ok(toks[i:j])
            if span and toks[i] not in GROUP_WORDS:
                spans.append((i, j, span))
    found = _best(book, spans, threads_only)
    return found[0] if found else None


def _alias_keys(book: ContactBook) -> set[str]:
    return set(book.aliases)


def split_name_prefix(book: ContactBook, rest: str) -> tuple[Resolution | None, str]:
    """A reply's addressee at the front of `rest` and the dictated text after it."""
    toks = rest.split()
    plain = [w for w in words(rest)]
    if len(plain) != len(toks):  # keep positions aligned: fall back to the word list
        toks = plain
    for n in range(min(4, len(toks)), 0, -1):  # nicknames first, longest first
        key = " ".join(toks[:n]).removeprefix("the ").removeprefix("to ")
        if key in _alias_keys(book):
            return book.resolve(key), " ".join(toks[n:])
    spans = []
    for j in range(1, min(len(toks), 5) + 1):
        span = _span_ok([t.removesuffix("'s") for t in toks[:j]])
        if span:
            spans.append((0, j, span))
    found = _best(book, spans, threads_only=False)
    if not found:
        return None, rest
    res, _, j = found
    return res, " ".join(toks[j:])


def _dictation(text: str) -> str:
    text = TEXT_LEAD.sub("", text.strip()).strip()
    return "" if text in PRONOUNS else text


REPLY_VERB = re.compile(
    r"^(?:reply|respond|answer|write back|write|text back|text|message|send (?:a |an )?(?:message|text|reply)|"
    r"send)(?: back)?(?: to)?(?:\s+|$)")
READ_START = re.compile(r"^(?:read|open|show|play|repeat|go to|check)\b")
CATCH_START = re.compile(
    r"^(?:catch (?:me )?up|summari[sz]e|sum up|summary|quick summary|recap|tldr|tl dr|give me the gist|"
    r"give me a summary|bring me up to speed|the gist)\b")
MUTE_START = re.compile(
    r"^(?:mute|silence|snooze|hush|quiet|block notifications|turn off notifications|don't notify|do not notify|"
    r"stop notifications|keep (?:.+ )?quiet)\b")
CANCEL = re.compile(
    r"^(?:cancel|no|nope|stop|abort|never ?mind|forget it|forget that|scratch that|go back|back|don't|"
    r"do not|wait)\b")
NEXT = re.compile(r"^(?:next|skip|move on|what's next|later|the next|go to the next|go on|continue|carry on|"
                  r"keep going)\b|\bnext (?:one|message|thread|"
                  r"chat)\b")
SEND = re.compile(
    r"^(?:yes|yep|yeah|yup|sure|ok|okay|confirm|confirmed|go ahead|send|looks good|that's right|correct|do it)\b")
CHOOSE_VERB = re.compile(r"^(?:choose|pick|select|go with|use|take|i'll take|i take|that one)\b")
ORDINAL = re.compile(r"\b(?:(?:number|option|reply|suggestion|chip) (?P<n>\w+)|(?P<o>first|second|third|middle|last|"
                     r"1st|2nd|3rd)\b)")
READ_QUESTION = re.compile(
    r"^(?:what did (?!i miss)(?P<a>.+?) (?:say|write|send|text|want)|what's (?P<b>.+?) saying|what does (?P<c>.+?) "
    r"(?:say|want)|what (?P<d>.+?) (?:said|wrote|sent)|who texted me|who wrote|any new messages|do i have "
    r"(?:any )?(?:new )?messages|who (?:has )?(?:messaged|texted|written|wrote)|what's the (?:latest |last |new )?"
    r"(?:message|text)|read)\b")
CHIP = re.compile(r"\b(?:first|second|third|middle|last) (?:one|reply|suggestion|option)\b|"
                  r"\b(?:option|reply|suggestion|chip|number) (?:\d|one|two|three)\b")
CATCH_QUESTION = re.compile(
    r"^(?:what did i miss|what have i missed|what's going on|what is going on|what happened|what's happening|"
    r"what's new with|what's new in|anything new (?:in|from))\b")


# what reaches the glasses: unmute, priority, quiet hours
DND = r"(?:quiet hours|quiet time|do not disturb|don't disturb|dnd)"
QUIET_OFF = re.compile(
    rf"^(?:turn off|switch off|disable|stop|end|cancel|remove|clear|delete|drop|get rid of|no more|no) "
    rf"(?:the |my |all |any )?{DND}\b|^(?:the |my )?{DND} (?:are |is )?off\b|^turn (?:the |my )?{DND} off\b|"
    rf"\b(?:don't|do not|no longer) (?:want|need) (?:any )?{DND}\b")
QUIET_ON = re.compile(rf"\b{DND}\b")
QUIET_SPAN = re.compile(r"(?P<a>.+?) (?:to|till|til|until|and|through|thru) (?P<b>.+)$")
QUIET_FROM = re.compile(r"\b(?:from|between|starting at|starting) ")
CLOCK_WORD = re.compile(r"^(?:\d{1,2}(?:[ap]m)?|midnight|noon|midday|half|quarter)$")
MERIDIEM = {"am": "am", "a m": "am", "in the morning": "am", "pm": "pm", "p m": "pm", "in the evening": "pm",
            "at night": "pm", "tonight": "pm", "in the afternoon": "pm"}
UNMUTE_START = re.compile(
    r"^(?:unmute|un mute|unsilence|unsnooze|un snooze|stop muting|stop silencing|resume notifications|"
    r"turn (?:back )?on notifications|turn notifications (?:back )?on)\b(?: (?:for|from))?")
PRIORITY = re.compile(
    r"^(?:make|mark|set|put) (?P<a>.+?) (?:as |to |on )?(?:an? |my |top )?(?:priority|important|vip)"
    r"(?: chat| contact| list)?$|^prioriti[sz]e (?P<b>.+)$|"
    r"^always (?:tell|notify|alert|show|ping|buzz|interrupt|let) me (?:know )?(?:about |of |for |from |when |"
    r"(?:messages|texts) from )?(?P<c>.+?)(?: writes| messages| texts| says anything| is writing)?$|"
    r"^always (?:let|put) (?P<d>.+?) through$")
ON_SCREEN = frozenset({"this", "that", "it", "them", "here", "one", "this one", "that one"})


def _index(text: str) -> int | None:
    m = ORDINAL.search(text)
    if m:
        word = m["n"] or m["o"]
        return CHIP_ORDINALS.get(word, _number(word) if word else None)
    if CHOOSE_VERB.match(text):
        tail = text.split()[-1]
        return CHIP_ORDINALS.get(tail) or _number(tail)
    if text in CHIP_ORDINALS:
        return CHIP_ORDINALS[text]
    return None


def parse(utterance: str, book: ContactBook) -> Command | None:
    """The deterministic parser; None when the utterance fits no rule (then ask the LLM)."""
    text = normalise(utterance)
    if not text:
        return None
    cmd = _classify(text, book)
    if cmd is not None:
        cmd.utterance = utterance
    return cmd


def _with_name(cmd: Command, slot: str, res: Resolution | None) -> Command:
    if res is not None:
        cmd.slots[slot] = res.slot()
        if res.ambiguous:
            cmd.clarify = res.question()
    return cmd


def _classify(text: str, book: ContactBook) -> Command | None:
    if m := ASK_PREFIX.match(text):
        return Command("ask", {"question": text[m.end():]})
    if ASK_ABOUT.match(text):
        return Command("ask", {"question": text})
    if delivery := _delivery(text, book):
        return delivery
    if m := EDIT.match(text):
        return Command("edit", {"text": _dictation(m["text"])})
    if re.match(r"^(?:say|read) (?:that|it) again\b|^repeat\b", text):
        return Command("read")
    if m := re.match(r"^send (?P<name>.+?) an? (?:message|text|note)(?P<text>(?: .+)?)$", text):
        return _reply(m["name"] + " " + m["text"], book)
    if REPLY_VERB.match(text) and not re.match(r"^send(?: (?:it|that|this|now|please|it now))*$", text):
        return _reply(REPLY_VERB.sub("", text, count=1), book)
    if m := re.match(r"^let (?P<name>.+?) know (?:that )?(?P<text>.+)$", text):
        cmd = Command("reply")
        _with_name(cmd, "to", book.resolve(m["name"]))
        cmd.slots["text"] = m["text"]
        return cmd
    if m := re.match(r"^tell (?P<rest>.+)$", text):
        return _reply(m["rest"], book)
    if m := re.match(r"^say (?P<text>.+)$", text):
        return Command("reply", {"text": m["text"]})
    if MUTE_START.match(text):
        return _mute(text, book)
    if CANCEL.match(text) or re.search(r"\b(?:cancel|don't send)\b", text):
        return Command("cancel")
    if CATCH_START.match(text) or CATCH_QUESTION.match(text):
        return _with_name(Command("catch_up"), "thread", find_contact(book, _after_verb(text), threads_only=True))
    if NEXT.search(text) and not CHOOSE_VERB.match(text):
        return Command("next")
    # "read the last message" is read; "the last one" / "read option two" pick a chip
    picks_chip = CHIP.search(text)
    if (READ_START.match(text) or READ_QUESTION.match(text) or re.match(r"^hear\b", text)) and not picks_chip:
        return _with_name(Command("read"), "target", find_contact(book, _after_verb(text)))
    if QUESTION.match(text) and len(text.split()) >= 3 and not picks_chip and _asks_something(text, book):
        return Command("ask", {"question": text})  # "when's the last train?"
    index = _index(text)
    if index is not None and 1 <= index <= 3:
        return Command("choose_reply", {"index": index})
    if SEND.match(text) or re.search(r"\bsend (?:it|that)\b", text):
        return Command("send")
    return None


# what a question about a chat says when it asks nothing in particular ("how's the climbing plan looking?"): a
# catch-up or a read, for the LLM fallback to place
VAGUE = {"how", "how's", "has", "have", "is", "are", "what's", "where", "we", "on", "with", "plan", "plans",
         "looking", "going", "doing", "written", "texted", "replied", "messaged", "said", "anything", "news",
         "status", "latest", "there", "any", "up", "to", "at", "the", "been", "from", "in", "chat", "group"}


def _asks_something(text: str, book: ContactBook) -> bool:
    res = find_contact(book, text)
    named = {w for name in (res.matches if res else []) for w in words(name.lower())}
    return bool(set(text.split()) - VAGUE - named - NOT_IN_A_NAME)


def _after_verb(text: str) -> str:
    return re.sub(r"^(?:catch (?:me )?up|what did i miss|what's new|what happened|what's going on)\b", "", text)


def _reply(rest: str, book: ContactBook) -> Command:
    cmd = Command("reply")
    rest = rest.strip()
    if not rest or rest in PRONOUNS:
        return cmd
    res, remainder = split_name_prefix(book, rest)
    if res is None:
        text = _dictation(rest)
    else:
        _with_name(cmd, "to", res)
        text = _dictation(remainder)
    if text:
        cmd.slots["text"] = text
    return cmd


def _mute(text: str, book: ContactBook) -> Command:
    minutes, rest = parse_duration(text)
    cmd = Command("mute")
    rest = re.sub(r"\buntil \w+\b", "", rest)
    rest = re.sub(r"^keep (.+) quiet\b", r"\1", rest)
    _with_name(cmd, "thread", find_contact(book, MUTE_START.sub("", rest, count=1), threads_only=True))
    if minutes:
        cmd.slots["minutes"] = minutes
    return cmd


def _delivery(text: str, book: ContactBook) -> Command | None:
    """Unmute, priority and quiet hours; placed before mute, cancel and tell, which share their first words
    ("stop muting", "no more quiet hours", "always tell me about Mum")."""
    if QUIET_OFF.search(text):
        return Command("quiet_hours_off")
    if QUIET_ON.search(text):
        return _quiet_hours(QUIET_ON.sub(" ", text, count=1))
    if m := UNMUTE_START.match(text):
        return _rule_target(Command("unmute"), text[m.end():], book)
    minutes, rest = parse_duration(text)
    if m := PRIORITY.match(rest):
        cmd = _rule_target(Command("priority"), m["a"] or m["b"] or m["c"] or m["d"], book)
        if minutes:
            cmd.slots["minutes"] = minutes
        return cmd
    return None


def _rule_target(cmd: Command, spoken: str, book: ContactBook) -> Command:
    """The chat a delivery rule is for: resolved, the one on screen ("this"), or a name that matches no chat."""
    spoken = spoken.strip()
    if not spoken or spoken in ON_SCREEN:
        return cmd
    res = find_contact(book, spoken, threads_only=True)
    if res is not None:
        return _with_name(cmd, "thread", res)
    named = [w for w in words(spoken) if w not in NOT_IN_A_NAME and w not in DETERMINERS and w not in GROUP_WORDS
             and w not in ON_SCREEN]
    if named:
        cmd.slots["unknown"] = " ".join(named)
    return cmd


def _quiet_hours(rest: str) -> Command:
    """`quiet_hours(start, end)` from "from 10 pm to 7 am", "22 00 to 07 00", "between eleven and six thirty"."""
    cmd = Command("quiet_hours")
    toks = rest.split()
    if start := QUIET_FROM.search(" ".join(toks)):
        span = " ".join(toks)[start.end():]
    else:  # "quiet hours 10 pm to 7 am": from the first word of a time
        first = next((i for i, w in enumerate(toks) if CLOCK_WORD.match(w) or w in SPOKEN_NUMBERS), len(toks))
        span = " ".join(toks[first:])
    m = QUIET_SPAN.match(span)
    if not m:
        return cmd
    start, end = _spoken_clock(m["a"], starts=True), _spoken_clock(m["b"], starts=False)
    if start is not None and end is not None:
        cmd.slots.update(start=start, end=end)
    return cmd


def _clock_number(toks: list[str], i: int) -> tuple[int | None, int]:
    """A number at toks[i] ("7", "seven", "twenty two") and the index after it."""
    if i >= len(toks):
        return None, i
    if toks[i].isdigit():
        return int(toks[i]), i + 1
    if toks[i] not in SPOKEN_NUMBERS:
        return None, i
    value = SPOKEN_NUMBERS[toks[i]]
    if value >= 20 and i + 1 < len(toks) and SPOKEN_NUMBERS.get(toks[i + 1], 10) < 10:
        return value + SPOKEN_NUMBERS[toks[i + 1]], i + 2
    return value, i + 1


def _spoken_clock(said: str, starts: bool) -> str | None:
    """A spoken time of day as "HH:MM". An hour said without am/pm is read as the night's: a start from 5 on is
    the evening ("from 10" is 22:00, "from 12" midnight), an end is the morning ("to 7" is 07:00)."""
    text = re.sub(r"\b(\d{1,2})([ap])m\b", r"\1 \2m", said.strip())
    text = re.sub(r"^(?:at|about|around) ", "", text)
    if m := re.match(r"^(midnight|noon|midday)\b", text):
        return "00:00" if m[1] == "midnight" else "12:00"
    toks = text.split()
    offset = 0
    if len(toks) > 2 and toks[0] in ("half", "quarter") and toks[1] in ("past", "to"):
        offset = (30 if toks[0] == "half" else 15) * (1 if toks[1] == "past" else -1)
        toks = toks[2:]
    hour, i = _clock_number(toks, 0)
    if hour is None:
        return None
    minute = 0
    if not offset:
        value, j = _clock_number(toks, i)
        if value is not None and value < 60:
            minute, i = value, j
        elif i < len(toks) and toks[i] == "hundred":
            i += 1
    tail = " ".join(toks[i:])
    meridiem = next((v for k, v in MERIDIEM.items() if tail == k or tail.startswith(k + " ")), None)
    if hour > 23 or (meridiem and not 1 <= hour <= 12):
        return None
    if meridiem:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif hour <= 12 and starts:
        hour = 0 if hour == 12 else hour + 12 if hour >= 5 else hour
    total = (hour * 60 + minute + offset) % 1440
    return f"{total // 60:02d}:{total % 60:02d}"


# -- the LLM fallback --------------------------------------------------------------------------------------------
LLM_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": list(LLM_INTENTS)},
        "name": {"type": "string"},
        "text": {"type": "string"},
        "index": {"type": "integer"},
        "minutes": {"type": "integer"},
    },
    "required": ["intent", "name", "text", "index", "minutes"],
}
LLM_SYSTEM = (
    "You turn a smart-glasses wearer's spoken command into a function call, as JSON. Intents: read (hear "
    "messages, optionally from a person or chat), catch_up (a summary of a chat), reply (send a message; 'text' is "
    "the words to send, copied from the command), choose_reply (pick suggested reply 1, 2 or 3: 'index'), send "
    "(confirm sending the reply), cancel (stop, change of mind), next (skip to the next message), mute (silence a "
    "chat; 'minutes', 0 for until unmuted). 'name' is the person or chat as said, or empty. Empty strings and 0 "
    "where a field does not apply.")
# worked examples (none of them in the evaluation sets): small models follow examples better than definitions
LLM_EXAMPLES = [
    ("could you check whether sam has said anything", {"intent": "read", "name": "sam"}),
    ("give me the short version of the book club chat", {"intent": "catch_up", "name": "book club"}),
    ("let ravi know we're running late", {"intent": "reply", "name": "ravi", "text": "we're running late"}),
    ("shoot a message to the team that the build is green", {"intent": "reply", "name": "the team",
                                                             "text": "the build is green"}),
    ("that last suggestion works", {"intent": "choose_reply", "index": 3}),
    ("yes that's what I want to say", {"intent": "send"}),
    ("wait no leave it", {"intent": "cancel"}),
    ("what's after this one", {"intent": "next"}),
    ("I need some peace from the family group till this evening, say three hours",
     {"intent": "mute", "name": "family group", "minutes": 180}),
]


def _example_json(slots: dict) -> str:
    import json

    full = {"intent": slots["intent"], "name": slots.get("name", ""), "text": slots.get("text", ""),
            "index": slots.get("index", 0), "minutes": slots.get("minutes", 0)}
    return json.dumps(full)


def parse_with_llm(utterance: str, book: ContactBook, complete) -> Command:
    """The fallback: `complete(system, examples, utterance, schema) -> str` runs the on-device LLM under the JSON
    schema, with worked examples as earlier turns."""
    import json

    raw = complete(LLM_SYSTEM, [(u, _example_json(e)) for u, e in LLM_EXAMPLES], utterance, LLM_SCHEMA)
    try:
        data = json.loads(raw)
    except ValueError:
        return Command("none", source="none", utterance=utterance)
    intent = data.get("intent")
    if intent not in LLM_INTENTS:
        return Command("none", source="none", utterance=utterance)
    cmd = Command(intent, source="llm", utterance=utterance)
    said = normalise(utterance)
    slot = {"read": "target", "catch_up": "thread", "reply": "to", "mute": "thread"}.get(intent)
    if slot:
        # the model decides what is asked; the names, numbers and words themselves come from what was said
        threads_only = intent in ("catch_up", "mute")
        name = str(data.get("name") or "").strip()
        res = book.resolve(name, threads_only) if name else None
        if res is None or not res.matches:
            res = find_contact(book, parse_duration(said)[1], threads_only)
        _with_name(cmd, slot, res)
    if intent == "reply":
        text = " ".join(words(str(data.get("text") or "")))
        if text and text in " ".join(words(said)):  # only words the wearer said: never the model's own
            if cmd.slots.get("to"):
                text = _dictation(_strip_name(text, book))
            if text:
                cmd.slots["text"] = text
    if intent == "choose_reply":
        index = _index(said) or int(data.get("index") or 0)
        if 1 <= index <= 3:
            cmd.slots["index"] = index
    if intent == "mute":
        minutes = parse_duration(said)[0] or int(data.get("minutes") or 0)
        if minutes > 0:
            cmd.slots["minutes"] = minutes
    return cmd


def _strip_name(text: str, book: ContactBook) -> str:
    """A reply text the model copied with the addressee still in front ("ping tomasz that ...")."""
    toks = text.split()
    for i in range(min(3, len(toks))):
        res, rest = split_name_prefix(book, " ".join(toks[i:]))
        if res is not None and res.matches:
            return rest
    return text


def llm_completer(assistant):
    """`complete(system, examples, utterance, schema)` on the glasses' assistant; no task adapter (a command is
    not a summary)."""
    from device.engines.base import ChatMessage, GenerationParams

    def complete(system: str, examples: list[tuple[str, str]], utterance: str, schema: dict) -> str:
        messages = [ChatMessage("system", system)]
        for said, call in examples:
            messages += [ChatMessage("user", said), ChatMessage("assistant", call)]
        messages.append(ChatMessage("user", utterance))
        gen = assistant.complete(Task.COMMANDS, messages, GenerationParams(max_tokens=96, temperature=0.0,
                                                                        json_schema=schema))
        return gen.text
    return complete


def understand(utterance: str, book: ContactBook, complete=None) -> Command:
    """Rules first; the LLM (if given) for what they cannot place; else intent 'none'."""
    cmd = parse(utterance, book)
    if cmd is not None:
        return cmd
    if complete is not None:
        return parse_with_llm(utterance, book, complete)
    return Command("none", source="none", utterance=utterance)
