"""Exact anchors of a sentence (numbers, dates, names) and how a passage matches them.

A passage may share nearly every word of a sentence and still state a different figure or
a different person: "the county population was 9,984" is not supported by another town's
"the population was 9,312". Shared-word scores cannot see that, so the sentence's anchors
are compared exactly, after a simple normalisation:

- ``number``: digits with thousands separators, decimals, a scale word and percent
  ("9,984" == "9984", "1.5 million" == "1500000", "12 percent" == "12%", "3rd" == "3");
- ``date``: a full date in any common order ("March 3, 1999" == "3 March 1999" ==
  "1999-03-03"), a month and year, a bare year (1000-2099 without separators) or a
  decade ("1980s"). A passage's full date also holds its month and year and its year;
- ``name``: a token with a capital letter ("Schmeichel", "NFL", "OddParents"), compared
  case-folded, accent-free and stemmed. A sentence's first word is a name only when it
  starts a run of capitalised words ("Cooking Light is ..."; not "Additionally, Vibe") or
  is followed by "is", "was", "has" ... ("Shusett was executive producer."): in
  HotpotQA most sentences open with their subject's name, but a lone first word is as often
  "Founded" or "Over". Stopwords, pronouns, discourse adverbs ("However"), months and
  weekdays are never names;
- times ("2 pm" == "2:00 PM" == "14:00") are dates too.

On the passage side number words ("three") count as present for the number, so a
paraphrase that spells a figure out is not rejected.

A passage *lacks* an anchor when none of its anchors of that kind has the same key; it
*conflicts* with the sentence when it lacks one and states a different anchor of that kind
in a comparable context: two of the content words next to the sentence's anchor (three on
each side; all of them when there are fewer) are also next to the passage's. "population
was 9,984" against "population was 9,312" conflicts; against "founded in 1838" it does not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from auditor.sentences import content_words, split_sentences

CONTEXT = 3  # content words on each side of an anchor that make its context
MIN_SHARED = 2  # context words two anchors must share to be comparable (fewer if fewer)


@dataclass(frozen=True, slots=True)
class Anchor:
    """One exact value of a text: its kind, a normalised key and the text as written."""

    kind: str  # "number" | "date" | "name"
    key: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """A passage that states a different value where the sentence states one."""

    kind: str  # "number" | "date" | "name"
    answer: str  # the value as written in the sentence, e.g. "9,984"
    passage: str  # the value as written in the passage, e.g. "9,312"


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
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "bn": 1e9}
_NUMBER = re.compile(
    r"(?<![\w.])(?P<value>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:st|nd|rd|th)?"
    r"(?:\s*(?P<scale>thousand|million|billion|trillion|bn)\b)?"
    r"(?:\s*(?P<percent>%|percent\b|per\s+cent\b))?",
    re.I,
)
_WORD_NUMBERS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
     "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
     "eighteen", "nineteen", "twenty"])}
_WORD_NUMBERS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                      "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
                      "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
                      "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10})
_FULL_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_MONTH_YEAR = re.compile(r"^\d{4}-\d\d$")
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
_ALIASES = {"tv": ("television",), "uk": ("britain", "british", "kingdom"),
            "us": ("america", "american", "states"), "usa": ("america", "american", "states")}
_RANGE = re.compile(r"\b(?P<century>1\d|20)(?P<from>\d{2})\s*(?:-|\u2013|\u2014|--|to)\s*"
                    r"(?P<to>\d{2})\b(?!\d)")
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*", re.U)
_OPENERS = re.compile(r"^[\s\"'\u201c\u2018(\[*_#>-]*")


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
        value *= _SCALES[scale.lower()]
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


def _fold(token: str) -> str:
    return _fold_text(token)


def _name_key(token: str) -> str:
    folded = _fold(token)
    stems = content_words(folded)
    return stems[0] if stems else folded


def _is_capitalised(token: str) -> bool:
    return any(c.isupper() for c in token) and not token.isdigit()


def _names(text: str, taken: list[tuple[int, int]]) -> list[Anchor]:
    """Capitalised tokens outside dates and numbers (see the module docstring)."""
    stop = _stopwords()
    tokens = [m for m in _TOKEN.finditer(text)
              if not any(a <= m.start() < b for a, b in taken)]
    first = _OPENERS.match(text)
    first_at = first.end() if first else 0
    found: list[Anchor] = []
    for i, match in enumerate(tokens):
        word = match.group()
        folded = _fold(word)
        if (not _is_capitalised(word) or folded in stop or folded in _MONTHS
                or folded in _WEEKDAYS or any(c.isdigit() for c in word)):
            continue
        if match.start() == first_at:
            follower = tokens[i + 1] if i + 1 < len(tokens) else None
            if follower is None or text[match.end():follower.start()].strip():
                continue
            after = follower.group()
            named = _is_capitalised(after) and _fold(after) not in stop
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
    for match in _TIME.finditer(text):
        found.append(Anchor("date", _time_key(match), match.group(), match.start(),
                            match.end()))
        taken.append(match.span())
    for match in _DATE.finditer(text):
        if any(a <= match.start() < b for a, b in taken):
            continue
        found.append(Anchor("date", _date_key(match), match.group(), match.start(),
                            match.end()))
        taken.append(match.span())
    for match in _NUMBER.finditer(text):
        if any(a <= match.start() < b for a, b in taken):
            continue
        found.append(Anchor("number", _number_key(match), match.group().strip(),
                            match.start(), match.end()))
        taken.append(match.span())
    for part in split_sentences(text):
        inside = [(a - part.start, b - part.start) for a, b in taken]
        found.extend(_shifted(a, part.start) for a in _names(part.text, inside))
    return sorted(found, key=lambda a: a.start)


@lru_cache(maxsize=8192)
def _held(passage: str) -> tuple[tuple[Anchor, ...], frozenset[tuple[str, str]]]:
    """A passage's anchors and every (kind, key) it holds (cached: a chunk is compared with
    many sentences): a full date's month and year and year too, spelled-out numbers, and
    every word as a name key (a name counts as present in any case)."""
    found = tuple(anchors(passage))
    keys = {(a.kind, a.key) for a in found}
    for a in found:
        if a.kind == "date" and _FULL_DATE.match(a.key):
            year, month, day = a.key.split("-")
            keys |= {("date", year), ("date", f"{year}-{month}"), ("date", f"--{month}-{day}")}
        elif a.kind == "date" and _MONTH_YEAR.match(a.key):
            keys.add(("date", a.key[:4]))
    folded = _fold_text(passage)
    words = [m.group() for m in _TOKEN.finditer(folded)]
    keys |= {("number", str(_WORD_NUMBERS[w])) for w in words if w in _WORD_NUMBERS}
    keys |= {("name", w) for w in [*words, *content_words(folded)]}
    keys |= {("name", short) for short, longs in _ALIASES.items()
             if any(("name", w) in keys for w in longs)}
    keys |= {("date", m.group("century") + m.group("to")) for m in _RANGE.finditer(passage)}
    keys |= {("number", key) for kind, key in list(keys) if kind == "date" and key.isdigit()}
    return found, frozenset(keys)


def _holds(anchor: Anchor, held: frozenset[tuple[str, str]]) -> bool:
    """The passage holds the anchor; a rounded figure ("1.5 million", "over 60 million")
    is held by any figure within one unit of its last digit ("1,580,575")."""
    if (anchor.kind, anchor.key) in held:
        return True
    scale = _NUMBER.fullmatch(anchor.text)
    if anchor.kind != "number" or scale is None or not scale.group("scale"):
        return False
    digits = scale.group("value").replace(",", "")
    unit = _SCALES[scale.group("scale").lower()] * 10.0 ** -len(digits.partition(".")[2])
    value = float(anchor.key)
    return any(kind == "number" and _is_float(key) and 0 <= float(key) - value < unit
               for kind, key in held)


def _is_float(text: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)?", text))


def missing_anchors(sentence: str, passage: str) -> list[Anchor]:
    """The sentence's anchors that the passage does not hold (after normalisation)."""
    held = _held(passage)[1]
    return [a for a in anchors(sentence) if not _holds(a, held)]


def missing_counts(sentences: Sequence[str], passages: Sequence[str]) -> list[list[int]]:
    """S×P: how many of each sentence's distinct anchors each passage lacks."""
    wanted = [list({(a.kind, a.key): a for a in anchors(s)}.values()) for s in sentences]
    held = [_held(p)[1] for p in passages]
    return [[sum(not _holds(a, h) for a in found) for h in held] for found in wanted]


# conflicts -------------------------------------------------------------------------------
def _context(text: str, anchor: Anchor) -> set[str]:
    """Content words (stemmed) within ``CONTEXT`` words either side of the anchor."""
    before = content_words(text[: anchor.start])[-CONTEXT:]
    after = content_words(text[anchor.end :])[:CONTEXT]
    return set(before) | set(after)


def _conflict(sentence: str, found: Sequence[Anchor], passage: str,
              theirs: Sequence[Anchor], held: set[tuple[str, str]]) -> Conflict | None:
    ours = {(a.kind, a.key) for a in found}
    best: tuple[int, Conflict] | None = None
    for anchor in found:
        if _holds(anchor, held):
            continue
        around = _context(sentence, anchor)
        need = min(MIN_SHARED, len(around))
        for other in theirs:
            if other.kind != anchor.kind or (other.kind, other.key) in ours:
                continue
            shared = len(around & _context(passage, other))
            if shared and shared >= need and (best is None or shared > best[0]):
                best = (shared, Conflict(anchor.kind, anchor.text, other.text))
    return None if best is None else best[1]


def find_conflict(sentence: str, passage: str) -> Conflict | None:
    """The passage's different value for one of the sentence's anchors it lacks, in a
    comparable context (the most shared context words wins); None when there is none."""
    found = anchors(sentence)
    if not found:
        return None
    theirs, held = _held(passage)
    return _conflict(sentence, found, passage, theirs, held)


def conflict_matrix(sentences: Sequence[str], passages: Sequence[str]
                    ) -> list[list[Conflict | None]]:
    """S×P conflicts; each text's anchors are extracted once."""
    found = [anchors(s) for s in sentences]
    held = [_held(p) for p in passages]
    return [[_conflict(s, f, p, t, h) if f else None
             for p, (t, h) in zip(passages, held, strict=True)]
            for s, f in zip(sentences, found, strict=True)]
