"""The exact anchors of a text (numbers, dates, names), normalised (see ``auditor.anchors``
for how a passage holds them or conflicts with them):

- ``number``: digits with thousands separators, decimals, a scale word and percent
  ("9,984" == "9984", "1.5 million" == "1500000", "12 percent" == "12%", "3rd" == "3");
- ``date``: a full date in any common order ("March 3, 1999" == "3 March 1999" ==
  "1999-03-03"), a month and year, a bare year (1000-2099 without separators) or a
  decade ("1980s");
- ``name``: a token with a capital letter ("Schmeichel", "NFL", "OddParents"), compared
  case-folded, accent-free and stemmed. A sentence's first word is a name only when it
  starts a run of capitalised words ("Cooking Light is ..."; not "Additionally, Vibe") or
  is followed by "is", "was", "has" ... ("Shusett was executive producer."): in
  HotpotQA most sentences open with their subject's name, but a lone first word is as often
  "Founded" or "Over". Stopwords, pronouns, discourse adverbs ("However"), months,
  weekdays and a scientific abstract's section labels ("UNLABELLED", "CONCLUSION") are
  never names;
- times ("2 pm" == "2:00 PM" == "14:00") are dates too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from auditor.sentences import content_words, split_sentences


@dataclass(frozen=True, slots=True)
class Anchor:
    """One exact value of a text: its kind, a normalised key and the text as written."""

    kind: str  # "number" | "date" | "name"
    key: str
    text: str
    start: int
    end: int


# patterns --------------------------------------------------------------------------------
_MONTHS = {name: i for i, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
     ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
     ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
     ("december", "dec")], start=1) for name in names}
_WEEKDAYS = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                       "sunday"])
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>1\d{3}|20\d{2})"
_DATE = re.compile(
    r"\b(?:(?P<iso>(?P<iy>1\d{3}|20\d{2})-(?P<im>0?[1-9]|1[0-2])-(?P<id>0?[1-9]|[12]\d|3[01]))"
    rf"|{_MONTH}\s+(?P<day>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?(?:\s*,?\s+{_YEAR})?"
    r"|(?P<day2>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?\s+(?:of\s+)?"
    + _MONTH.replace("month", "month2") + r"(?:\s*,?\s+(?P<year2>1\d{3}|20\d{2}))?"
    + r"|" + _MONTH.replace("month", "month3") + r"\s*,?\s+(?P<year3>1\d{3}|20\d{2})"
    r"|(?P<decade>1\d{2}0|20[0-9]0)'?s"
    r"|(?P<year4>1\d{3}|20\d{2}))\b(?![,.]\d)",
    re.I,
)
_TIME = re.compile(
    r"\b(?P<hour>[01]?\d|2[0-3])(?::(?P<minute>[0-5]\d))?\s*(?P<half>[ap])\.?m\b\.?"
    r"|\b(?P<h24>[01]?\d|2[0-3]):(?P<m24>[0-5]\d)\b",
    re.I,
)
SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "bn": 1e9}
NUMBER = re.compile(
    r"(?<![\w.])(?P<value>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:st|nd|rd|th)?"
    r"(?:\s*(?P<scale>thousand|million|billion|trillion|bn)\b)?"
    r"(?:\s*(?P<percent>%|percent\b|per\s+cent\b))?",
    re.I,
)
WORD_NUMBERS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
     "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
     "eighteen", "nineteen", "twenty"])}
WORD_NUMBERS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                      "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
                      "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
                      "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10})
FULL_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
MONTH_YEAR = re.compile(r"^\d{4}-\d\d$")
# Capitalised at a sentence's or clause's start without naming anything (bm25s' stopword
# list is short): pronouns, determiners, discourse adverbs, am/pm.
_NOT_NAMES_TEXT = (
    "i he she we you they him her his hers its our ours your their theirs me us them who whom"
    " whose which what where when why how another other others both each every all some any"
    " many most several few also additionally moreover furthermore however meanwhile overall"
    " finally first second third later instead nevertheless nonetheless still thus hence"
    " therefore notably specifically similarly likewise besides although though while whereas"
    " since after before during despite according here there yes no one am pm"
    " mr mrs ms dr sr jr st prof"
)
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
# A lone capitalised first word followed by one of these is the sentence's subject, a name
# ("Shusett was executive producer.", "Poison is an American rock band").
_SUBJECT_VERBS = frozenset(["is", "was", "are", "were", "has", "had", "'s"])
# Short forms a passage may spell out: it holds the short form when it holds a long one.
ALIASES = {"tv": ("television",), "uk": ("britain", "british", "kingdom"),
            "us": ("america", "american", "states"), "usa": ("america", "american", "states")}
YEAR_RANGE = re.compile(r"\b(?P<century>1\d|20)(?P<from>\d{2})\s*(?:-|\u2013|\u2014|--|to)\s*"
                    r"(?P<to>\d{2})\b(?!\d)")
WORD = re.compile(r"\w+(?:['\u2019]\w+)*", re.U)
# A sentence's opening punctuation, and a scientific abstract's section label in capitals
# ("UNLABELLED Congruent audiovisual speech ...", "BACKGROUND Obesity is ..."): the label
# is not a name and the word after it is the sentence's first word.
_LABELS = ("UNLABELLED|BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|INTRODUCTION"
           "|PURPOSE|AIMS?|CONTEXT|DESIGN|SETTING|FINDINGS|INTERPRETATION|IMPORTANCE")
_LABEL = re.compile(_LABELS)
_OPENERS = re.compile(r"^[\s\"'\u201c\u2018(\[*_#>-]*(?:(?:" + _LABELS + r")\b[:.]?\s+)?")


# extraction ------------------------------------------------------------------------------
def _date_key(match: re.Match[str]) -> str:
    g = match.groupdict()
    if g["iso"]:
        return f"{int(g['iy']):04d}-{int(g['im']):02d}-{int(g['id']):02d}"
    if g["decade"]:
        return f"{g['decade']}s"
    if g["year4"]:
        return g["year4"]
    month_name = g["month"] or g["month2"] or g["month3"]
    month = _MONTHS[month_name.lower().rstrip(".")]
    year = g["year"] or g["year2"] or g["year3"]
    day = g["day"] or g["day2"]
    if day is None:
        return f"{year}-{month:02d}"
    head = year if year else "-"
    return f"{head}-{month:02d}-{int(day):02d}"


def _time_key(match: re.Match[str]) -> str:
    """"2 pm" == "2:00 PM" == "14:00" (a time is a date anchor: when, not how many)."""
    if match.group("h24"):
        return f"T{int(match.group('h24')):02d}:{match.group('m24')}"
    hour = int(match.group("hour")) % 12 + (12 if match.group("half").lower() == "p" else 0)
    return f"T{hour:02d}:{match.group('minute') or '00'}"


def _number_key(match: re.Match[str]) -> str:
    value = float(match.group("value").replace(",", ""))
    scale = match.group("scale")
    if scale:
        value *= SCALES[scale.lower()]
    key = str(int(value)) if value == int(value) else f"{value:.6g}"
    return key + ("%" if match.group("percent") else "")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | _NOT_NAMES


def _fold_text(text: str) -> str:
    """Case-folded, accent-free, without possessive 's."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return re.sub(r"['\u2019]s\b", "", plain)


def fold(token: str) -> str:
    return _fold_text(token)


def _name_key(token: str) -> str:
    folded = fold(token)
    stems = content_words(folded)
    return stems[0] if stems else folded


def is_capitalised(token: str) -> bool:
    return any(c.isupper() for c in token) and not token.isdigit()


def _names(text: str, taken: list[tuple[int, int]]) -> list[Anchor]:
    """Capitalised tokens outside dates and numbers (see the module docstring)."""
    stop = _stopwords()
    first = _OPENERS.match(text)
    first_at = first.end() if first else 0
    tokens = [m for m in WORD.finditer(text)
              if m.start() >= first_at and not any(a <= m.start() < b for a, b in taken)]
    found: list[Anchor] = []
    for i, match in enumerate(tokens):
        word = match.group()
        folded = fold(word)
        if (not is_capitalised(word) or _LABEL.fullmatch(word) or folded in stop
                or folded in _MONTHS
                or folded in _WEEKDAYS or any(c.isdigit() for c in word)):
            continue
        if match.start() == first_at:
            follower = tokens[i + 1] if i + 1 < len(tokens) else None
            if follower is None or text[match.end():follower.start()].strip():
                continue
            after = follower.group()
            named = is_capitalised(after) and fold(after) not in stop
            if not named and after.casefold() not in _SUBJECT_VERBS:
                continue
        found.append(Anchor("name", _name_key(word), word, match.start(), match.end()))
    return found


def _shifted(anchor: Anchor, by: int) -> Anchor:
    return Anchor(anchor.kind, anchor.key, anchor.text, anchor.start + by, anchor.end + by)


def anchors(text: str) -> list[Anchor]:
    """The numbers, dates and names of ``text`` in order of appearance."""
    found: list[Anchor] = []
    taken: list[tuple[int, int]] = []
    # times first, then dates, then numbers: a span one kind took is not read again
    for kind, pattern, key in (("date", _TIME, _time_key), ("date", _DATE, _date_key),
                               ("number", NUMBER, _number_key)):
        for match in pattern.finditer(text):
            if any(a <= match.start() < b for a, b in taken):
                continue
            found.append(Anchor(kind, key(match), match.group().strip(), match.start(),
                                match.end()))
            taken.append(match.span())
    for part in split_sentences(text):
        inside = [(a - part.start, b - part.start) for a, b in taken]
        found.extend(_shifted(a, part.start) for a in _names(part.text, inside))
    return sorted(found, key=lambda a: a.start)
