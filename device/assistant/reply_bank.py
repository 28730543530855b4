"""Short replies people actually send, per language and intent: what the glasses show when the model's own draft
for an intent fails the draft checks, and the only drafts shown on a message that looks like a scam (the model is
not asked: a draft that plays along, or repeats a code, must never be one tap away).

Every entry names no person, number, time or day, so it cannot invent a detail; `tests/test_reply_bank.py` checks
each one with the same checks as the model's drafts.
"""

from __future__ import annotations

from types import MappingProxyType

from device.messages.words import Language

Intent = str  # "agree" | "decline" | "ask" (prompts.REPLY_KEYS); "thanks" | "react" | "ask" (prompts.NEWS_KEYS);
# "later": putting the answer off, the third chip beside the model's yes and no (Assistant(third="later"))

BANK: MappingProxyType[Language, MappingProxyType[Intent, tuple[str, ...]]] = MappingProxyType({
    "en": MappingProxyType({
        "agree": ("Sounds good!", "Yes, works for me.", "Sure, will do!", "Great, thanks!"),
        "decline": ("Sorry, I can't make it.", "Not this time, sorry.", "I'll have to pass, sorry!"),
        "ask": ("Can I get back to you later?", "What works best for you?", "Can you tell me a bit more?"),
        "thanks": ("Thanks for letting me know!", "Got it, thanks!", "OK, thanks!"),
        "react": ("Good to hear!", "Nice one!", "No worries!"),
        "later": ("Let me check and get back to you.", "I'll let you know soon!",
                  "Give me a bit, I'll get back to you."),
    }),
    "de": MappingProxyType({
        "agree": ("Klingt gut!", "Ja, passt mir.", "Klar, mach ich!", "Super, danke!"),
        "decline": ("Sorry, ich kann leider nicht.", "Diesmal leider nicht.", "Da muss ich passen, sorry!"),
        "ask": ("Kann ich mich später melden?", "Was passt dir am besten?", "Erzähl mal genauer?"),
        "thanks": ("Danke für die Info!", "Alles klar, danke!", "Okay, danke dir!"),
        "react": ("Schön zu hören!", "Wie toll!", "Kein Problem!"),
        "later": ("Ich schau mal und melde mich.", "Ich sag dir gleich Bescheid!", "Moment, ich melde mich gleich."),
    }),
    "es": MappingProxyType({
        "agree": ("¡Me parece bien!", "Sí, me va bien.", "¡Claro, hecho!", "¡Genial, gracias!"),
        "decline": ("Lo siento, no puedo.", "Esta vez no, lo siento.", "Paso, ¡lo siento!"),
        "ask": ("¿Te digo algo luego?", "¿Qué te viene mejor?", "¿Me cuentas un poco más?"),
        "thanks": ("¡Gracias por avisar!", "Vale, ¡gracias!", "¡Entendido, gracias!"),
        "react": ("¡Qué bien!", "¡Me alegro mucho!", "¡No pasa nada!"),
        "later": ("Lo miro y te digo.", "¡Ahora te digo algo!", "Dame un momento y te contesto."),
    }),
    "fr": MappingProxyType({
        "agree": ("Ça marche !", "Oui, ça me va.", "Bien sûr, je m'en occupe !", "Super, merci !"),
        "decline": ("Désolé, je ne peux pas.", "Pas cette fois, désolé.", "Je vais passer mon tour, désolé !"),
        "ask": ("Je te redis plus tard ?", "Qu'est-ce qui t'arrange ?", "Tu peux m'en dire plus ?"),
        "thanks": ("Merci de me prévenir !", "D'accord, merci !", "Ok, merci !"),
        "react": ("Trop bien !", "Ça me fait plaisir !", "Pas de souci !"),
        "later": ("Je regarde et je te redis.", "Je te dis ça vite !", "Laisse-moi voir, je te redis."),
    }),
})

# On a suspected scam: refuse, verify through another channel, or ask who it is — never comply, never a code.
SCAM_SAFE: MappingProxyType[Language, tuple[str, str, str]] = MappingProxyType({
    "en": ("I don't share codes or bank details by message.", "I'll call you on your usual number first.",
           "Who is this, really?"),
    "de": ("Codes und Bankdaten gebe ich nicht per Nachricht weiter.", "Ich rufe dich erst auf der alten Nummer an.",
           "Wer ist da wirklich?"),
    "es": ("No comparto códigos ni datos bancarios por mensaje.", "Primero te llamo a tu número de siempre.",
           "¿Quién eres de verdad?"),
    "fr": ("Je ne donne ni code ni coordonnées bancaires par message.", "Je t'appelle d'abord sur ton numéro habituel.",
           "Qui est-ce, vraiment ?"),
})


def fallback(language: Language, intent: Intent, taken: list[str]) -> str:
    """The first reply of the bank for this intent that is not among `taken` (compared case-insensitively)."""
    used = {t.strip().lower() for t in taken}
    options = BANK[language][intent]
    return next((r for r in options if r.lower() not in used), options[-1])
