"""How a passage matches the exact anchors of a sentence (numbers, dates, names; extracted
and normalised by ``auditor.anchor_extraction``).

A passage may share nearly every word of a sentence and still state a different figure or
a different person: "the county population was 9,984" is not supported by another town's
"the population was 9,312". Shared-word scores cannot see that, so the sentence's anchors
are compared exactly, after normalisation.

A passage *holds* an anchor when it states the same key where one of the content words
near the sentence's anchor (``HELD_CONTEXT`` words each side) is also near it: "The answer
is from 1989 to 2013" is not held by a passage that says "released in 1989" and, much
later, "October 2013", nor "Bill Brookings" by one that names Bill Clinton and the
Brookings Institution apart. A passage's full date also holds its month and year and its
year; number words ("three") hold the number, so a paraphrase that spells a figure out is
not rejected; a name is held by the same word in any case, or by a capitalised word of the
same stem ("Americans"), but not by a common word of the same stem ("Industries" is not
"industry", "Consultancy" not "consultant"). The words of one name written together in the
sentence ("New York Industries") must be written together in the passage too (within
``NAME_GAP`` characters, either order): "New York City" and "Super Cassettes Industries" do
not hold it.

A passage *lacks* an anchor when it does not hold it; it *conflicts* with the sentence when
it lacks one and states a different anchor of that kind in a comparable context: two of the
content words next to the sentence's anchor (three on each side; all of them when there are
fewer) are also next to the passage's. "population was 9,984" against "population was
9,312" conflicts; against "founded in 1838" it does not.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from auditor.anchor_extraction import (
    ALIASES,
    FULL_DATE,
    MONTH_YEAR,
    NUMBER,
    SCALES,
    WORD,
    WORD_NUMBERS,
    YEAR_RANGE,
    Anchor,
    anchors,
    fold,
    is_capitalised,
)
from auditor.sentences import TOKEN, content_words

__all__ = ["Anchor", "Conflict", "anchors", "conflict_matrix", "find_conflict",
           "missing_anchors", "missing_counts"]

CONTEXT = 3  # content words on each side of an anchor that make its context
MIN_SHARED = 2  # context words two anchors must share to be comparable (fewer if fewer)
HELD_CONTEXT = 8  # content words either side of a value, in sentence and passage, that must meet
NAME_GAP = 24  # characters between two words of one name in a passage ("Barack Hussein Obama")


@dataclass(frozen=True, slots=True)
class Conflict:
    """A passage that states a different value where the sentence states one."""

    kind: str  # "number" | "date" | "name"
    answer: str  # the value as written in the sentence, e.g. "9,984"
    passage: str  # the value as written in the passage, e.g. "9,312"


@dataclass(frozen=True, slots=True)
class _Held:
    """What a passage states: its anchors, every (kind, key) it holds and where (cached: a
    chunk is compared with many sentences), and its content words with their offsets."""

    found: tuple[Anchor, ...]
    keys: frozenset[tuple[str, str]]
    spans: dict[tuple[str, str], list[tuple[int, int]]]
    words: tuple[tuple[int, int, str], ...]  # (start, end, stem) of each content word
    starts: tuple[int, ...]
    text: str
    # the conflict context of found[i], filled when first asked: most passages are never
    # compared for conflicts, and those that are, are compared with many sentences
    contexts: dict[int, set[str]] = field(default_factory=dict)

    def context(self, start: int, end: int) -> set[str]:
        """Content words within ``HELD_CONTEXT`` words either side of ``text[start:end]``."""
        return _near(self.words, self.starts, start, end)

    def anchor_context(self, i: int) -> set[str]:
        """``_context`` of the passage's ``i``-th anchor, computed once."""
        if i not in self.contexts:
            self.contexts[i] = _context(self.text, self.found[i])
        return self.contexts[i]


def _near(words: tuple[tuple[int, int, str], ...], starts: tuple[int, ...], start: int,
          end: int) -> set[str]:
    """Content words within ``HELD_CONTEXT`` words either side of ``[start, end)``."""
    first = bisect_left(starts, start)
    last = bisect_left(starts, end)
    return {stem for _, _, stem in (*words[max(first - HELD_CONTEXT, 0):first],
                                    *words[last:last + HELD_CONTEXT])}


def _word_stems(text: str) -> tuple[tuple[int, int, str], ...]:
    """Each content word of ``text`` with its offsets (``content_words`` token by token)."""
    found = []
    for match in TOKEN.finditer(text):
        stems = content_words(match.group())
        if stems:
            found.append((match.start(), match.end(), stems[0]))
    return tuple(found)


@lru_cache(maxsize=8192)
def _held(passage: str) -> _Held:
    """A passage's anchors and every (kind, key) it holds, with where: a full date's month
    and year and year too, spelled-out numbers, each capitalised word (and its stem) as a
    name key, and each other word as itself."""
    found = tuple(anchors(passage))
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def add(kind: str, key: str, span: tuple[int, int]) -> None:
        spans.setdefault((kind, key), []).append(span)

    for a in found:
        at = (a.start, a.end)
        add(a.kind, a.key, at)
        if a.kind == "date" and FULL_DATE.match(a.key):
            year, month, day = a.key.split("-")
            for key in (year, f"{year}-{month}", f"--{month}-{day}"):
                add("date", key, at)
        elif a.kind == "date" and MONTH_YEAR.match(a.key):
            add("date", a.key[:4], at)
    for match in WORD.finditer(passage):
        word = fold(match.group())
        at = match.span()
        if word in WORD_NUMBERS:
            add("number", str(WORD_NUMBERS[word]), at)
        if is_capitalised(match.group()):
            add("name", word, at)
            for stem in content_words(word):
                add("name", stem, at)
        else:  # a common word holds a name written the same, not one of its stem
            add("word", word, at)
        for short, longs in ALIASES.items():
            if word in longs:
                add("name", short, at)
    for m in YEAR_RANGE.finditer(passage):
        add("date", m.group("century") + m.group("to"), m.span())
    for (kind, key), where in list(spans.items()):
        if kind == "date" and key.isdigit():
            spans.setdefault(("number", key), []).extend(where)
    words = _word_stems(passage)
    return _Held(found, frozenset(spans), spans, words, tuple(w[0] for w in words), passage)


def _holds(anchor: Anchor, held: _Held, around: set[str] | None = None) -> bool:
    """The passage holds the anchor: it states the same key where one of the content words
    around the sentence's anchor (``around``; None or empty: anywhere) is also near it. A
    rounded figure ("1.5 million", "over 60 million") is held by any figure within one
    unit of its last digit ("1,580,575")."""
    where = (_name_spans(anchor, held) if anchor.kind == "name"
             else held.spans.get((anchor.kind, anchor.key), []))
    if where:
        return not around or any(around & held.context(a, b) for a, b in where)
    scale = NUMBER.fullmatch(anchor.text)
    if anchor.kind != "number" or scale is None or not scale.group("scale"):
        return False
    digits = scale.group("value").replace(",", "")
    unit = SCALES[scale.group("scale").lower()] * 10.0 ** -len(digits.partition(".")[2])
    value = float(anchor.key)
    return any(kind == "number" and _is_float(key) and 0 <= float(key) - value < unit
               for kind, key in held.keys)


def _is_float(text: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)?", text))


def _partners(sentence: str, found: Sequence[Anchor], anchor: Anchor) -> tuple[Anchor, ...]:
    """The names written next to a name, only spaces between: the other words of one
    multi-word name ("New York Industries"), which a passage must state together."""
    if anchor.kind != "name":
        return ()
    return tuple(other for other in found if other.kind == "name" and other is not anchor and (
        (other.start >= anchor.end and not sentence[anchor.end:other.start].strip())
        or (other.end <= anchor.start and not sentence[other.end:anchor.start].strip())))


def _name_spans(anchor: Anchor, held: _Held) -> list[tuple[int, int]]:
    """Where the passage states a name: as a name, or as the same word in lower case."""
    return held.spans.get((anchor.kind, anchor.key), []) + held.spans.get(
        ("word", fold(anchor.text)), [])


def _together(anchor: Anchor, partner: Anchor, held: _Held) -> bool:
    """The passage states the two words of a name within ``NAME_GAP`` characters of each
    other, in either order ("Barack Hussein Obama" holds "Barack Obama"): "New York City"
    and, a sentence apart, "Super Cassettes Industries" do not hold "New York Industries"."""
    theirs = _name_spans(partner, held)
    return any(0 <= b0 - a1 <= NAME_GAP or 0 <= a0 - b1 <= NAME_GAP
               for a0, a1 in _name_spans(anchor, held) for b0, b1 in theirs)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A sentence's anchor with the words a passage must say near it (``around``), the
    other words of its name (``_partners``) and the words that make a different value
    comparable (``_context``), computed once per sentence rather than once per passage."""

    anchor: Anchor
    around: set[str]
    partners: tuple[Anchor, ...]
    context: set[str]

    def held_by(self, held: _Held) -> bool:
        return _holds(self.anchor, held, self.around) and all(
            _together(self.anchor, partner, held) for partner in self.partners)


def _wanted_all(sentence: str, found: Sequence[Anchor]) -> list[_Wanted]:
    """Each anchor with ``around``: the sentence's content words near it, one of which a
    passage must say near its value to hold it (the sentence is tokenised once)."""
    words = _word_stems(sentence)
    starts = tuple(w[0] for w in words)
    return [_Wanted(a, _near(words, starts, a.start, a.end), _partners(sentence, found, a),
                    _context(sentence, a)) for a in found]


def _wanted(sentence: str) -> list[_Wanted]:
    """A sentence's distinct anchors (the last of each key), as :func:`_wanted_all`."""
    found = anchors(sentence)
    distinct = {(w.anchor.kind, w.anchor.key): w for w in _wanted_all(sentence, found)}
    return list(distinct.values())


def missing_anchors(sentence: str, passage: str) -> list[Anchor]:
    """The sentence's anchors that the passage does not hold (after normalisation), holds
    only about something else (see :func:`_holds`), or holds apart from the rest of its
    name (see :func:`_together`)."""
    held = _held(passage)
    return [w.anchor for w in _wanted_all(sentence, anchors(sentence)) if not w.held_by(held)]


def missing_counts(sentences: Sequence[str], passages: Sequence[str]) -> list[list[int]]:
    """S×P: how many of each sentence's distinct anchors each passage lacks."""
    wanted = [_wanted(s) for s in sentences]
    held = [_held(p) for p in passages]
    return [[sum(not w.held_by(h) for w in found) for h in held] for found in wanted]


# conflicts -------------------------------------------------------------------------------
def _context(text: str, anchor: Anchor) -> set[str]:
    """Content words (stemmed) within ``CONTEXT`` words either side of the anchor."""
    before = content_words(text[: anchor.start])[-CONTEXT:]
    after = content_words(text[anchor.end :])[:CONTEXT]
    return set(before) | set(after)


def _conflict(wanted: Sequence[_Wanted], held: _Held) -> Conflict | None:
    ours = {(w.anchor.kind, w.anchor.key) for w in wanted}
    best: tuple[int, Conflict] | None = None
    for w in wanted:
        anchor = w.anchor
        if w.held_by(held):
            continue
        need = min(MIN_SHARED, len(w.context))
        for i, other in enumerate(held.found):
            if other.kind != anchor.kind or (other.kind, other.key) in ours:
                continue
            shared = len(w.context & held.anchor_context(i))
            if shared and shared >= need and (best is None or shared > best[0]):
                best = (shared, Conflict(anchor.kind, anchor.text, other.text))
    return None if best is None else best[1]


def find_conflict(sentence: str, passage: str) -> Conflict | None:
    """The passage's different value for one of the sentence's anchors it lacks, in a
    comparable context (the most shared context words wins); None when there is none."""
    found = anchors(sentence)
    if not found:
        return None
    return _conflict(_wanted_all(sentence, found), _held(passage))


def conflict_matrix(sentences: Sequence[str], passages: Sequence[str]
                    ) -> list[list[Conflict | None]]:
    """S×P conflicts; each text's anchors and their contexts are read once."""
    wanted = [_wanted_all(s, anchors(s)) for s in sentences]
    held = [_held(p) for p in passages]
    return [[_conflict(w, h) if w else None for h in held] for w in wanted]
