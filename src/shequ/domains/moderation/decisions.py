"""The automatic verdict: pass, review (at queue level 1–3) or block, with its reasons,
the matched spans of the original text and the classifier's score (docs/moderation.md).

Three detectors look at every text, all in memory:

* the lexicon (``shequ.text.lexicon``): terms with a category and a severity 1–3, found
  through evasions, with the original character spans;
* contacts (``shequ.text.contacts``): phone numbers, WeChat / QQ ids, URLs and e-mail
  addresses, also when obfuscated;
* the offensive-language classifier (``shequ.text.offensive``): P(offensive).

The rules, strongest first (each rule that fires adds a reason):

=========================================================  ======  =====
what fired                                                 label   level
=========================================================  ======  =====
a severity-3 term (pornography, violence, gambling, drugs)  block
a contact together with an ``ads`` or ``fraud`` term         block
an ``abuse`` term and P(offensive) ≥ ``SURE_OFFENSIVE``      block
a severity-2 term (politics, fraud, abuse)                  review  2
P(offensive) ≥ ``SURE_OFFENSIVE`` with no term behind it    review  2
a severity-1 term, a contact, or P(offensive) in            review  1
[``REVIEW_OFFENSIVE``, ``SURE_OFFENSIVE``)
nothing                                                     pass
=========================================================  ======  =====

The classifier never blocks on its own: on shop reviews it scores angry but legitimate
complaints (``垃圾垃圾``, ``恶心的酒店``) high, and hiding a customer's complaint is worse
than showing an insult for a few minutes. Level 1 is the first-line queue; level 2 takes
the higher-severity terms and the texts only the classifier objects to; level 3 takes
escalations from level 2 and every appeal. ``scripts/moderation_thresholds.py`` measures
what each threshold sends where on COLD dev and on real shop reviews (docs/moderation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shequ.text.contacts import Contact, find_contacts
from shequ.text.lexicon import Lexicon, Match
from shequ.text.offensive import offensive_probability

__all__ = [
    "REVIEW_OFFENSIVE",
    "SURE_OFFENSIVE",
    "Span",
    "Verdict",
    "decide",
    "verdicts",
]

SURE_OFFENSIVE = 0.97
REVIEW_OFFENSIVE = 0.90
_SALES_CATEGORIES = frozenset({"ads", "fraud"})


@dataclass(frozen=True)
class Span:
    """Where something was found: offsets of the original text, what, and by which detector
    (``lexicon`` or ``contact``)."""

    start: int
    end: int
    text: str
    category: str
    severity: int
    source: str
    term: str = ""


@dataclass(frozen=True)
class Verdict:
    label: str
    level: int | None
    categories: list[str]
    spans: list[Span]
    offensive: float
    reasons: list[str] = field(default_factory=list)


def _term_spans(text: str, matches: Sequence[Match]) -> list[Span]:
    return [Span(m.start, m.end, text[m.start:m.end], m.category, m.severity, "lexicon", m.term)
            for m in matches]


def _contact_spans(text: str, contacts: Sequence[Contact]) -> list[Span]:
    return [Span(c.start, c.end, text[c.start:c.end], "ads", 1, "contact", f"{c.kind}:{c.value}")
            for c in contacts]


def decide(text: str, matches: Sequence[Match], contacts: Sequence[Contact],
           offensive: float) -> Verdict:
    """The verdict from what the three detectors found (the table in the module doc)."""
    spans = sorted(_term_spans(text, matches) + _contact_spans(text, contacts),
                   key=lambda s: (s.start, s.end))
    top = max((m.severity for m in matches), default=0)
    categories = sorted({s.category for s in spans}
                        | ({"abuse"} if offensive >= REVIEW_OFFENSIVE else set()))
    reasons: list[str] = []
    severe = sorted({m.category for m in matches if m.severity >= 3})
    if severe:
        reasons.append(f"severity-3 term ({', '.join(severe)})")
    found = {m.category for m in matches}
    sales = sorted(found & _SALES_CATEGORIES)
    if contacts and sales:
        reasons.append(f"contact details with a {'/'.join(sales)} term")
    if "abuse" in found and offensive >= SURE_OFFENSIVE:
        reasons.append(f"abusive term and offensive language (p={offensive:.2f})")
    if reasons:
        return Verdict("block", None, categories, spans, offensive, reasons)
    if top == 2:
        cats = sorted({m.category for m in matches if m.severity == 2})
        reasons.append(f"severity-2 term ({', '.join(cats)})")
    if offensive >= SURE_OFFENSIVE:
        reasons.append(f"offensive language (p={offensive:.2f} ≥ {SURE_OFFENSIVE})")
    if reasons:
        return Verdict("review", 2, categories, spans, offensive, reasons)
    if top == 1:
        reasons.append(f"severity-1 term ({', '.join(sorted(found))})")
    if contacts:
        reasons.append(f"contact details ({', '.join(sorted({c.kind for c in contacts}))})")
    if offensive >= REVIEW_OFFENSIVE:
        reasons.append(f"possibly offensive (p={offensive:.2f})")
    if reasons:
        return Verdict("review", 1, categories, spans, offensive, reasons)
    return Verdict("pass", None, categories, spans, offensive, reasons)


def verdicts(texts: Sequence[str], lexicon: Lexicon) -> list[Verdict]:
    """One verdict per text, in order (the classifier runs once over the whole batch)."""
    if not texts:
        return []
    scores = offensive_probability(list(texts))
    matches = lexicon.scan_many(texts) if len(texts) > 1 else [lexicon.scan(texts[0])]
    return [decide(text, found, find_contacts(text), score)
            for text, found, score in zip(texts, matches, scores, strict=True)]
