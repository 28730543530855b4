"""Recognising hostile message text. Messages are data: nothing here acts on them, it only flags them so the
wearer sees a warning beside the (still faithful) summary, and strips characters that hide or reorder text."""

from __future__ import annotations

import re
import unicodedata

INJECTION = re.compile(
    r"ignore\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|your)\s+(?:instructions|prompts?|rules)"
    r"|disregard\s+(?:all\s+|the\s+|your\s+)?(?:previous|prior|above)?\s*(?:instructions|rules|prompt)"
    r"|(?:new|updated)\s+instructions\s*:"
    r"|you\s+are\s+now\s+(?:a|an|in)\b|act\s+as\s+(?:a|an|my)\b|pretend\s+(?:to\s+be|you\s+are)"
    r"|system\s+prompt|developer\s+mode|jailbreak|\bDAN\b"
    r"|(?:forward|send|share|export|leak|dump)\s+(?:me\s+)?(?:all\s+|the\s+|your\s+|my\s+|his\s+|her\s+)?"
    r"(?:last\s+\d+\s+|recent\s+|other\s+)?(?:messages|chats|conversations|contacts|inbox)\b"
    r"|reply\s+with\s+(?:the\s+|your\s+|my\s+|his\s+|her\s+)?(?:wearer'?s\s+)?(?:bank\s+|card\s+)?"
    r"(?:pin|password|passcode|security\s+code|one[- ]time\s+code|otp)\b"
    r"|\bwearer'?s\s+(?:pin|password|bank|home\s+address|location|messages|contacts)"
    r"|<\|im_start\|>|<\|im_end\|>|<\|system\|>|\[/?INST\]|<</?SYS>>|</?messages>",
    re.IGNORECASE)
INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u180e]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
MAX_FLAGGED_CHARS = 4000
EMOJI_FLOOD = 40


def _emoji_count(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF)


def flags(text: str) -> list[str]:
    """Why this message text looks hostile; empty when it does not."""
    found = []
    if INJECTION.search(unicodedata.normalize("NFKC", INVISIBLE.sub("", text))):
        found.append("prompt-injection")
    if INVISIBLE.search(text):
        found.append("invisible-characters")
    if BIDI.search(text):
        found.append("bidi-control")
    if len(text) > MAX_FLAGGED_CHARS:
        found.append("oversized")
    if _emoji_count(text) >= EMOJI_FLOOD:
        found.append("emoji-flood")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in text):
        found.append("control-characters")
    return found


def clean(text: str) -> str:
    """Text as the model should see it: invisible and reordering characters removed, other controls dropped."""
    text = BIDI.sub("", INVISIBLE.sub("", text))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in "\n\t")
