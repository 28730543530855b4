"""The English word lists the deterministic rules share: calendar words, number words, day words and stop words.

Every list is defined once, here, and is immutable (tuples, frozensets, read-only mappings). Where two rules need
different lists of the same kind, both are here under their own names, with the reason they differ: merging them
would change what a rule accepts (e.g. the faithfulness check reads "half" and "noon" as numbers; a spoken name
must not turn "half" into "0.5").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

# -- calendar -----------------------------------------------------------------------------------------------------
# in datetime.weekday() order (Monday = 0): day arithmetic indexes into it
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# in calendar order (January = index 0)
MONTHS: tuple[str, ...] = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                           "october", "november", "december")
# the three-letter forms messages write ("Sat", "Nov"), in the same orders
WEEKDAY_ABBREVIATIONS: tuple[str, ...] = tuple(d[:3] for d in WEEKDAYS)
MONTH_ABBREVIATIONS: tuple[str, ...] = tuple(m[:3] for m in MONTHS)
# words that name a day or a month and so are never a person's name in a question ("Sunday", "December")
CALENDAR: frozenset[str] = frozenset(WEEKDAYS + MONTHS)
# days named relative to when a message was sent, as day offsets ("tomorrow" said on Thursday is Friday)
RELATIVE_DAYS: MappingProxyType[str, int] = MappingProxyType({"today": 0, "tonight": 0, "tomorrow": 1,
                                                              "yesterday": -1})

# -- numbers ------------------------------------------------------------------------------------------------------
# the cardinals both number-reading rules accept
_CARDINALS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
              "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
              "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
              "forty": 40, "fifty": 50, "sixty": 60}
# the faithfulness check: amounts and clock words a chat can support a summary's number with ("half", "noon")
AMOUNT_WORDS: MappingProxyType[str, float] = MappingProxyType(
    {**_CARDINALS, "hundred": 100, "thousand": 1000, "half": 0.5, "noon": 12, "midnight": 0})
# speech: numbers said in names and commands ("flat four b", "for twenty minutes"); summed part by part
# ("twenty five"), so no "hundred", and no "half" or "noon" that would turn a name into a number
SPOKEN_NUMBERS: MappingProxyType[str, int] = MappingProxyType({**_CARDINALS, "ninety": 90})
# a reply chip picked by its place ("the second one", "last"): 1-based, three chips
CHIP_ORDINALS: MappingProxyType[str, int] = MappingProxyType(
    {"first": 1, "one": 1, "1": 1, "1st": 1, "second": 2, "two": 2, "2": 2, "2nd": 2, "third": 3, "three": 3,
     "3": 3, "3rd": 3, "middle": 2, "last": 3})

# -- stop words ---------------------------------------------------------------------------------------------------
# search and answer checks: words too common to match a question to a message (BM25 tokens, answer overlap)
INDEX_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are at be but by did do does for from had has have he her him his how i if in is it its me my of on "
    "or our she so that the their them they this to was we were what when where which who why will with you "
    "your".split())
# voice commands: words that cannot be part of a spoken name ("read the latest from Lena")
NOT_IN_A_NAME: frozenset[str] = frozenset({
    "a", "about", "again", "an", "and", "are", "at", "be", "by", "day", "did", "do", "does", "for", "from",
    "going", "happened", "he", "her", "him", "hour", "hours", "i", "i'll", "i'm", "i've", "in", "is", "it",
    "it's", "just", "last", "latest", "like", "loud", "me", "message", "messages", "minute", "minutes", "miss",
    "missed", "my", "new", "notifications", "number", "of", "on", "one", "open", "out", "play", "please",
    "read", "said", "say", "saying", "says", "send", "sent", "she", "show", "text", "texts", "that", "that's",
    "the", "them", "they", "this", "up", "want", "wants", "was", "we", "week", "what", "what's", "who", "with",
    "write", "wrote", "you", "your"})
# the faithfulness check: capitalised words that start sentences or are not names ("Later", "Thanks", "Mum")
NOT_A_NAME: frozenset[str] = frozenset("""
a an the and or but so then also both all any each every some one no not none nobody someone everyone everybody
i me my mine we us our you your he him his she her they them their it its this that these those there here who what
when where why how which if as at by for from in into of on onto to with without about after before during while
until since because although though however meanwhile finally overall later soon now today tonight tomorrow
yesterday first second next last another other others yes ok okay please thanks thank hi hello hey dear sorry
mr mrs ms dr st mum mom dad person summary chat conversation messages message group
""".split())
# speech: hesitations dropped before a command is parsed
FILLERS: frozenset[str] = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "hmm", "hm", "ah", "oh"})
# speech: words before a spoken name that are not part of it ("to the climbing crew", "from my landlord")
DETERMINERS: frozenset[str] = frozenset({"the", "my", "our", "to", "from", "with", "about", "of", "in", "on", "for"})
# speech: words after a thread's name that say it is a thread ("the climbing group", "dinner chat")
GROUP_WORDS: frozenset[str] = frozenset({"group", "chat", "thread", "conversation", "channel", "crew", "gang",
                                         "plans", "people", "guys"})


# -- languages ----------------------------------------------------------------------------------------------------
Language = Literal["en", "de", "es", "fr"]
# the commonest short words of each language the drafts are checked in: which language a text is in (a draft in
# the wrong one is unusable); words shared by two languages ("a", "en", "la") are left out of both
_LANGUAGE_WORDS: dict[Language, frozenset[str]] = {
    "en": frozenset("the and you i to is it that of for on with are be this have at we can will not but so my "
                    "your just what was if me do don't i'm i'll it's see sure thanks yes no okay ok sorry "
                    "there get got would could should how when hey hi great sounds thank".split()),
    "de": frozenset("der die das und ich du ist nicht ein eine zu mit auf für sie wir es dass aber mir dich "
                    "dir bin bist sind hast habe kann kannst noch schon auch ja nein danke gerne heute morgen "
                    "wann wie was bis mal doch gut klar leider komme kommst das dies diesmal hallo toll bitte".split()),
    "es": frozenset("el los las y que de es un una yo tú te lo por con para pero muy sí gracias vale claro "
                    "hoy mañana cuando como qué está estoy puedo puedes voy vas bien nos mi tu su del al "
                    "también todavía nada esta este esto eso aquí hola vale genial perfecto lo siento".split()),
    "fr": frozenset("le les et je tu il est un une que de du des pour avec mais oui non merci pas ce c'est "
                    "j'ai je suis on nous vous ton ta mon ma au aux bien d'accord demain aujourd'hui quand "
                    "comment peux vais suis très aussi salut bonjour parfait génial ça".split()),
}
LANGUAGE_STOP_WORDS: MappingProxyType[Language, frozenset[str]] = MappingProxyType({
    lang: ws - frozenset().union(*(other for o, other in _LANGUAGE_WORDS.items() if o != lang))
    for lang, ws in _LANGUAGE_WORDS.items()})
