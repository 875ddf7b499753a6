"""Answer text as sentences and content words: the units the evidence step scores.

Splitting is a deterministic regex splitter that keeps character offsets, so a dashboard
can highlight the exact span of the answer. Non-factual fragments (questions, courtesy,
"Here is a summary:" lead-ins, fewer than three content words) are marked, not dropped.
Content words are the terms the embedded bm25s index holds, so evidence and retrieval speak
of the same words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

MIN_CONTENT_WORDS = 3


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of an answer; ``text == answer[start:end]``."""

    index: int
    text: str
    start: int
    end: int


# splitting -----------------------------------------------------------------------------
# Words that end with a period without ending the sentence (compared lower-cased); the
# second set only before a number ("No. 5", "Jan. 3", "pp. 12"), since "no." also ends sentences.
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "al", "approx", "dept", "inc"]
    + ["ltd", "co", "corp", "gen", "gov", "sen", "rep", "lt", "col", "sgt", "capt", "mt"]
    + ["ave", "blvd", "cf", "resp", "univ", "assn", "bros", "messrs"]
)
_BEFORE_NUMBER = frozenset(
    ["no", "nos", "vol", "vols", "p", "pp", "fig", "figs", "ch", "sec", "art", "ca", "est"]
    + ["jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
)
_TERMINAL = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*")
# "- ", "2. ", "b) ", "## " at a line start; not "J. " (an initial, as in "J. R. R. Tolkien").
_LIST_MARKER = re.compile(
    r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)]|[a-z][.)]|[A-Z]\)|#{1,6})[ \t]+", re.M
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int, following: str) -> bool:
    """A period after an abbreviation, an initial (J. K.) or a dotted acronym (U.S., e.g.)."""
    match = _WORD_BEFORE.search(text, max(0, dot - 24), dot)
    if match is None:
        return False
    word = match.group(1)
    lower = word.lower()
    if lower in _BEFORE_NUMBER:
        return following.isdigit()
    return lower in _ABBREVIATIONS or (len(word) == 1 and word.isupper()) or "." in word


def split_sentences(text: str) -> list[Sentence]:
    """Sentences with offsets. A cut follows ., ! or ? (plus closing quotes) when whitespace and
    a non-lowercase character follow and the period does not end an abbreviation; a line break
    cuts unless the next line continues in lowercase (hard wrap) without a list marker.
    Leading list markers are not part of a sentence."""
    in_marker = {i for m in _LIST_MARKER.finditer(text) for i in range(m.start(), m.end())}
    cuts: set[int] = set()
    for match in _TERMINAL.finditer(text):
        end = match.end()
        if match.start() in in_marker or (end < len(text) and not text[end].isspace()):
            continue
        rest = text[end:].lstrip()
        if rest and (rest[0].islower() or rest[0] in ",;:%"):
            continue
        if match.group() == "." and _is_abbreviation(text, match.start(), rest[:1]):
            continue
        cuts.add(end)
    for match in re.finditer(r"\n", text):
        rest = text[match.end() :].lstrip()
        if not rest or not rest[0].islower() or _LIST_MARKER.match(text, match.end()):
            cuts.add(match.start())
    sentences: list[Sentence] = []
    bounds = [0, *sorted(cuts), len(text)]
    for left, right in zip(bounds, bounds[1:], strict=False):
        start, end = left, right
        while True:  # skip whitespace and list markers ("- ", "2. ", "## ")
            while start < end and text[start].isspace():
                start += 1
            marker = _LIST_MARKER.match(text, start)
            if marker is None or marker.end() > end or marker.end() == start:
                break
            start = marker.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            sentences.append(Sentence(len(sentences), text[start:end], start, end))
    return sentences


# content words ---------------------------------------------------------------------------
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s (and scikit-learn) token pattern


@lru_cache(maxsize=1)
def _analyzer() -> tuple[frozenset[str], Callable[[list[str]], list[str]]]:
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN), Stemmer.Stemmer("english").stemWords


@lru_cache(maxsize=1)
def meta_stems() -> frozenset[str]:
    """Stems of the words about the text itself: never unsupported content."""
    return frozenset(_analyzer()[1](list(_META_WORDS)))


# Words about the text rather than the world ("the passage mentions ..."): an answer may use
# them freely, so they never count as unsupported content (stemmed like content words).
_META_WORDS = ("passage", "article", "text", "document", "context", "summary", "mention")
_META_WORDS += ("describe", "discuss", "provide")


def content_words(text: str) -> list[str]:
    """Lower-cased tokens minus English stopwords, Snowball-stemmed: exactly the terms the
    embedded bm25s index holds, so evidence and retrieval speak of the same words."""
    stopwords, stem = _analyzer()
    return stem([token for token in TOKEN.findall(text.lower()) if token not in stopwords])


_BOILERPLATE = re.compile(
    r"^(?:i\s+hope\s+(?:this|that|it)\b|let\s+me\s+know\b|feel\s+free\b|please\s+let\b"
    r"|(?:here\s+is|here's|here\s+are|below\s+is)\s+(?:\w+\s+){0,4}"
    r"(?:summary|answer|overview|breakdown|list|response)\b|i'm\s+sorry\b|sorry,\s"
    r"|i\s+(?:cannot|can't|could\s+not|am\s+unable|don't\s+have)\b|(?:good|great)\s+question\b"
    r"|thank\s+you\b|thanks\b)",
    re.I,
)
_LEAD_IN = re.compile(
    r"^(?:based\s+on|according\s+to|from)\s+(?:the\s+)?(?:provided\s+|given\s+|above\s+)?"
    r"(?:context|documents?|information|passages?|text|sources?|search\s+results)\s*[,:]?\s*"
    r"|^(?:in\s+summary|in\s+conclusion|to\s+summari[sz]e|overall|in\s+short)\s*[,:]?\s*",
    re.I,
)


def _is_question(text: str) -> bool:
    """Ends with '?' outside quotation marks: 'Who wrote it?' is a question; 'taken from
    the rhyme "What Are Little Boys Made Of?' (closing quote stripped or cut off) is not."""
    if not text.endswith("?"):
        return False
    return text.count('"') % 2 == 0 and text.count("\u201c") <= text.count("\u201d")


def is_factual(sentence: Sentence | str) -> bool:
    """False for questions, courtesy and lead-in boilerplate, headings ending in ':' and
    fragments with fewer than three content words once a lead-in such as "Based on the
    provided context," is removed: these carry no claim to check against a source."""
    text = sentence.text if isinstance(sentence, Sentence) else sentence
    text = text.strip().strip("*_#>\"'\u201c\u201d ").strip()
    if not text or text.endswith(":") or _is_question(text) or _BOILERPLATE.match(text):
        return False
    return len(content_words(_LEAD_IN.sub("", text, count=1))) >= MIN_CONTENT_WORDS
