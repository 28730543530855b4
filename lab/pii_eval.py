"""Token-level evaluation of the PII detector on Presidio's synthetic dataset format.

Scoring follows presidio-research's evaluator: every word token gets the entity type of the span covering it
(or O); precision, recall and F-beta (beta=2: recall weighs more, since a missed PII token leaks) per type and
micro-averaged overall. Street addresses, cities, countries and postcodes are one type, LOCATION, as in
Presidio's own entity set. Gold types outside the detector's scope (organizations, titles, ages, nationalities,
domain names, driver licences) count as O: tagging them is a false positive.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from device.privacy.pii import ENTITIES, detect

GOLD_MAP = {"PERSON": "PERSON", "STREET_ADDRESS": "LOCATION", "GPE": "LOCATION", "ZIP_CODE": "LOCATION",
            "LOCATION": "LOCATION", "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS",
            "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS",
            "DATE_TIME": "DATE_TIME"}
TOKEN = re.compile(r"\w+")
BETA = 2.0


@dataclass
class Scores:
    precision: float
    recall: float
    f2: float
    tp: int
    fp: int
    fn: int

    @classmethod
    def of(cls, tp: int, fp: int, fn: int) -> Scores:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        b2 = BETA * BETA
        f = (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0
        return cls(round(p, 4), round(r, 4), round(f, 4), tp, fp, fn)


def label_tokens(text: str, spans: list[tuple[int, int, str]]) -> list[str]:
    labels = []
    for tok in TOKEN.finditer(text):
        label = "O"
        for start, end, entity in spans:
            if start <= tok.start() < end:
                label = entity
                break
        labels.append(label)
    return labels


def evaluate(path: Path, limit: int | None = None, offset: int = 0) -> dict:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))[offset:]
    if limit:
        rows = rows[:limit]
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    errors = []
    for row in rows:
        text = row["full_text"]
        gold_spans = [(s["start_position"], s["end_position"], GOLD_MAP.get(s["entity_type"], "O"))
                      for s in row["spans"]]
        pred_spans = [(s.start, s.end, s.entity) for s in detect(text)]
        gold, pred = label_tokens(text, gold_spans), label_tokens(text, pred_spans)
        for g, p in zip(gold, pred, strict=True):
            if g == p and g != "O":
                tp[g] += 1
            else:
                if p != "O":
                    fp[p] += 1
                if g != "O":
                    fn[g] += 1
        if gold != pred and len(errors) < 50:
            errors.append({"text": text, "gold": [(text[a:b], e) for a, b, e in gold_spans if e != "O"],
                           "predicted": [(text[a:b], e) for a, b, e in pred_spans]})
    per_entity = {e: vars(Scores.of(tp[e], fp[e], fn[e])) for e in ENTITIES if tp[e] + fp[e] + fn[e]}
    overall = Scores.of(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {"n": len(rows), "overall": vars(overall), "per_entity": per_entity, "errors": errors}
