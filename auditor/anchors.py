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
"industry", "Consultancy" not "consultant").

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
    where = held.spans.get((anchor.kind, anchor.key), [])
    if anchor.kind == "name":
        where = where + held.spans.get(("word", fold(anchor.text)), [])
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


def _around(sentence: str, anchor: Anchor) -> set[str]:
    """The sentence's content words near the anchor: a passage must say one of them near
    its value to hold it."""
    words = _word_stems(sentence)
    return _near(words, tuple(w[0] for w in words), anchor.start, anchor.end)


def _wanted(sentence: str) -> list[tuple[Anchor, set[str]]]:
    """A sentence's distinct anchors, each with the content words around it."""
    distinct = {(a.kind, a.key): a for a in anchors(sentence)}
    return [(a, _around(sentence, a)) for a in distinct.values()]


def missing_anchors(sentence: str, passage: str) -> list[Anchor]:
    """The sentence's anchors that the passage does not hold (after normalisation), or
    holds only about something else (see :func:`_holds`)."""
    held = _held(passage)
    return [a for a in anchors(sentence) if not _holds(a, held, _around(sentence, a))]


def missing_counts(sentences: Sequence[str], passages: Sequence[str]) -> list[list[int]]:
    """S×P: how many of each sentence's distinct anchors each passage lacks."""
    wanted = [_wanted(s) for s in sentences]
    held = [_held(p) for p in passages]
    return [[sum(not _holds(a, h, around) for a, around in found) for h in held]
            for found in wanted]


# conflicts -------------------------------------------------------------------------------
def _context(text: str, anchor: Anchor) -> set[str]:
    """Content words (stemmed) within ``CONTEXT`` words either side of the anchor."""
    before = content_words(text[: anchor.start])[-CONTEXT:]
    after = content_words(text[anchor.end :])[:CONTEXT]
    return set(before) | set(after)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A sentence's anchor with the words a passage must say near it (``_around``) and the
    words that make a different value comparable (``_context``), computed once per sentence
    rather than once per passage."""

    anchor: Anchor
    around: set[str]
    context: set[str]


def _wanted_all(sentence: str, found: Sequence[Anchor]) -> list[_Wanted]:
    return [_Wanted(a, _around(sentence, a), _context(sentence, a)) for a in found]


def _conflict(wanted: Sequence[_Wanted], held: _Held) -> Conflict | None:
    ours = {(w.anchor.kind, w.anchor.key) for w in wanted}
    best: tuple[int, Conflict] | None = None
    for w in wanted:
        anchor = w.anchor
        if _holds(anchor, held, w.around):
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
