"""How well a passage supports each sentence of an answer (the sentences and their
content words come from ``auditor.sentences``).

The support score of sentence *s* by passage *p* blends four signals:

- ``dense``: MiniLM cosine of *s* with the best of (a) every window of one or two
  consecutive sentences of *p* and (b) the whole of *p*. Windows keep one matching sentence
  from being diluted by a long chunk (MiniLM also truncates at 256 word pieces); the whole
  passage catches claims that summarise a paragraph.
- ``containment``: share of the distinct content words of *s* (stemmed, exactly as bm25s
  indexes them, minus words about the text itself such as "passage" or "mentions") that
  occur in *p*;
- ``absent``: how many of those content words *p* lacks, as ``log(1 + n)``. Every unmatched
  name, number or verb is a chance for an unsupported detail, so two missing words out of
  twenty weigh more than the share alone says.
- ``missing``: how many of the sentence's exact anchors (numbers, dates, names; see
  ``auditor.anchors``) *p* lacks after normalisation, as ``log(1 + n)``.

``score = sigmoid(BLEND_BIAS + BLEND_WEIGHTS · (dense, containment, absent, missing))``: a
logistic regression fitted on half A of FaithBench's human labels by ``bench/faithbench.py``,
read as the probability that the sentence is supported.

Anchor gate: a passage that lacks one of the sentence's anchors cannot support it, whatever
its other words: its score is multiplied by ``SUPPORT_THRESHOLD * GATE_MARGIN`` (< 1), so it
stays under the threshold and keeps its order among the other gated passages (the closest
evidence is still reported). "The county population was 9,984" is not supported by another
town's paragraph that shares every other word. Adjacent chunks joined (composite support)
are one passage here, so an anchor may sit on either side of the join.

The bench also scores cosine only, containment only, the absent count only and a weighted
mean of cosine and containment; without anchors the blend ranked best on half A (ROC-AUC
0.660 against 0.531 for the best cosine and 0.649 for containment); with the anchor feature
and gate it reaches 0.688 on half A (anchors held only in their context and a name's
words together, see ``auditor.anchors``). On those labels the lexical signals carry almost all
the evidence: FaithBench pairs every summary with its own source, so cosine is high for
supported and unsupported sentences alike; ``dense`` keeps a small positive weight. All
weights point the same way, so for one sentence a passage holding more of its words (or
anchors) never scores lower (a test checks it).

Known limit: the score leans on shared words. At the threshold a sentence may miss about
one content word of the passage (two when it is long or nearly identical), so an
abstractive paraphrase (synonyms throughout) fails even when MiniLM finds it close.

Everything is deterministic and offline; embeddings are cached by content hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auditor.anchors import missing_counts
from auditor.embed import Encoder, embedding_key
from auditor.sentences import content_words, meta_stems, split_sentences

# Fitted on FaithBench half A by bench/faithbench.py. Order: dense, containment, absent,
# missing anchors (before the anchor gate).
BLEND_WEIGHTS = (0.287, 0.352, -0.635, -1.106)
BLEND_BIAS = 1.688
# The threshold that maximises F1 of flagging "unsupported" (score < threshold, gated passages
# always flagged) on half A (1,434 sentences from 31 articles). Held out, on half B (1,827
# sentences, 350 unsupported, 30 other articles): ROC-AUC 0.716 (0.695 before anchors),
# precision 0.266, recall 0.786, F1 0.398. Summary level (min over sentences) ROC-AUC 0.620
# against HHEM-2.1 English's 0.605 on the same 400 summaries (0.601 before anchors).
# Details: bench/results/faithbench.json and bench/README.md.
SUPPORT_THRESHOLD = 0.8188
GATE_MARGIN = 0.999  # a gated score stays strictly under the threshold
PRUNE_KEEP = 1  # passages per sentence scored in full even when they cannot pass
WINDOWS_PER_CELL = 2  # passage windows embedded per (sentence, passage) scored in full


# support ---------------------------------------------------------------------------------
def support_passage(title: str, text: str) -> str:
    """A chunk as the support score reads it: the title as a first sentence, then the text
    (the index build embeds exactly this text and its windows, see ``auditor.prefetch``)."""
    return f"{title}. {text}" if title else text


def passage_windows(passage: str) -> list[str]:
    """Every sentence of the passage and every pair of consecutive sentences, as written."""
    parts = split_sentences(passage)
    if len(parts) < 2:
        return []
    singles = [part.text for part in parts]
    pairs = [passage[a.start : b.end] for a, b in zip(parts, parts[1:], strict=False)]
    return singles + pairs


@dataclass(frozen=True, slots=True)
class SupportSignals:
    """The S×P signals behind a score, kept apart so the bench can compare blends."""

    window: np.ndarray  # cosine with the best window of 1-2 passage sentences
    passage: np.ndarray  # cosine with the whole passage
    containment: np.ndarray  # share of the sentence's content words in the passage
    absent: np.ndarray  # number of the sentence's content words absent from the passage
    missing: np.ndarray | None = None  # the sentence's anchors the passage lacks (None: 0)

    @property
    def dense(self) -> np.ndarray:
        return np.maximum(self.window, self.passage)


def blend(
    signals: SupportSignals,
    weights: Sequence[float] = BLEND_WEIGHTS,
    bias: float = BLEND_BIAS,
    threshold: float | None = SUPPORT_THRESHOLD,
) -> np.ndarray:
    """The shipped combination of the signals (see the module docstring), in [0, 1], gated
    by the anchors against ``threshold`` (None: not gated, for the calibration bench). A
    sentence without content words scores 0 (no words, no evidence): it would otherwise
    count as fully contained in any passage."""
    missing = np.zeros_like(signals.absent) if signals.missing is None else signals.missing
    logit = (
        bias
        + weights[0] * signals.dense
        + weights[1] * signals.containment
        + weights[2] * np.log1p(signals.absent)
        + (weights[3] if len(weights) > 3 else 0.0) * np.log1p(missing)
    )
    score = 1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64)))
    if threshold is not None:
        score = np.where(missing > 0, score * threshold * GATE_MARGIN, score)
    wordless = (signals.containment == 0) & (signals.absent == 0)
    return np.where(wordless, 0.0, score).astype(np.float32)


class SupportScorer:
    """Scores sentences against passages. ``cache`` maps :func:`embedding_key` to a unit
    vector; hand in a persisted dict to reuse embeddings across runs."""

    def __init__(self, encoder: Encoder, cache: dict[str, np.ndarray] | None = None) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {} if cache is None else cache

    def missing(self, texts: Sequence[str]) -> list[str]:
        """Distinct texts, in first-seen order, whose embedding is not cached yet."""
        model_id = self.encoder.model_id
        todo = dict.fromkeys(t for t in texts if embedding_key(model_id, t) not in self.cache)
        return list(todo)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows for ``texts``; one ``encode`` call for everything not cached."""
        model_id = self.encoder.model_id
        todo = self.missing(texts)
        if todo:
            for text, vector in zip(todo, self.encoder.encode(todo), strict=True):
                self.cache[embedding_key(model_id, text)] = vector
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self.cache[embedding_key(model_id, t)] for t in texts])

    def signals(self, sentences: Sequence[str], passages: Sequence[str]) -> SupportSignals:
        """Every signal as an S×P matrix; cosines are clipped to [0, 1]."""
        windows = [passage_windows(p) for p in passages]
        flat = [w for group in windows for w in group]
        vectors = self.embed([*sentences, *passages, *flat])
        s_vec = vectors[: len(sentences)]
        p_vec = vectors[len(sentences) : len(sentences) + len(passages)]
        passage = np.clip(s_vec @ p_vec.T, 0.0, 1.0)
        window = passage.copy()
        if flat:
            w_cos = np.clip(s_vec @ vectors[len(sentences) + len(passages) :].T, 0.0, 1.0)
            sizes = np.array([len(group) for group in windows])
            has = np.flatnonzero(sizes)
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))[has]
            window[:, has] = np.maximum.reduceat(w_cos, starts, axis=1)
        containment, absent, missing = _lexical(sentences, passages)
        return SupportSignals(window, passage, containment, absent, missing)

    def score_matrix(self, sentences: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """S×P support scores in [0, 1]; compare with :data:`SUPPORT_THRESHOLD`."""
        return blend(self.signals(sentences, passages))

    def score_pruned(self, sentences: Sequence[str], passages: Sequence[str],
                     keep_best: int = PRUNE_KEEP) -> np.ndarray:
        """Like :meth:`score_matrix`, embedding only what can matter (see :func:`plan_pruned`)."""
        return self.score_plan(plan_pruned(sentences, passages, keep_best))

    def score_plan(self, plan: PrunedPlan) -> np.ndarray:
        """The S×P scores of a plan (its texts embedded here unless prefetched)."""
        return plan.scores(self._vectors(plan.texts())) if plan.cells.size else plan.lexical

    def prefetch(self, texts: Sequence[str]) -> None:
        """Read the cached vectors of ``texts`` in one lookup (a batch's plans at once, not
        one store query per answer). Nothing is encoded here: what is missing is encoded
        answer by answer exactly as without it, so every vector stays bit for bit the same."""
        lookup = getattr(self.encoder, "lookup", None)
        if lookup is None:  # a bare model: nothing cached to read
            return
        model_id = self.encoder.model_id
        for text, vector in lookup(self.missing(texts)).items():
            self.cache[embedding_key(model_id, text)] = vector

    def _vectors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        distinct = list(dict.fromkeys(texts))
        return dict(zip(distinct, self.embed(distinct), strict=True))


@dataclass(frozen=True)
class PrunedPlan:
    """What :meth:`SupportScorer.score_pruned` embeds for one sentences × passages matrix.

    Embedding dominates the cost, and the lexical signals bound the score: with the best
    possible cosine (1.0) a passage missing too many of a sentence's words stays under the
    threshold. Such cells get the lexical-only score (cosine 0), a lower bound under the
    threshold, unless the passage is among the sentence's ``keep_best`` by that bound. For
    the cells scored in full, only the ``WINDOWS_PER_CELL`` windows sharing the most content
    words with the sentence are embedded: the best-matching window is, in practice, one of
    those (a test checks decisions against the full computation).
    """

    sentences: Sequence[str]
    passages: Sequence[str]
    cells: np.ndarray  # (row, col) of the cells scored in full
    chosen: list[list[str]]  # windows embedded per cell
    used: list[str]  # passages with a cell scored in full
    containment: np.ndarray
    absent: np.ndarray
    missing: np.ndarray
    lexical: np.ndarray  # every cell's lexical-only score

    def texts(self) -> list[str]:
        return [*self.sentences, *self.used, *(w for ws in self.chosen for w in ws)]

    def scores(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """The S×P scores, given the vectors of :meth:`texts`."""
        dense = np.zeros(len(self.cells), dtype=np.float32)
        for at, ((row, col), group) in enumerate(zip(self.cells.tolist(), self.chosen,
                                                     strict=True)):
            sentence = vectors[self.sentences[row]]
            best = float(sentence @ vectors[self.passages[col]])
            for window in group:
                best = max(best, float(sentence @ vectors[window]))
            dense[at] = min(max(best, 0.0), 1.0)
        rows, cols = self.cells[:, 0], self.cells[:, 1]
        full = blend(SupportSignals(dense, dense, self.containment[rows, cols],
                                    self.absent[rows, cols], self.missing[rows, cols]))
        scores = self.lexical.copy()
        scores[rows, cols] = full
        return scores


def plan_pruned(sentences: Sequence[str], passages: Sequence[str],
                keep_best: int = PRUNE_KEEP) -> PrunedPlan:
    """Which cells are scored in full and which texts that takes (see :class:`PrunedPlan`)."""
    empty = np.zeros((len(sentences), len(passages)), dtype=np.float32)
    if not sentences or not passages:
        return PrunedPlan(sentences, passages, np.zeros((0, 2), dtype=np.int64), [], [],
                          empty, empty, empty, empty)
    containment, absent, missing = _lexical(sentences, passages)
    ones, zeros = np.ones_like(containment), np.zeros_like(containment)
    upper = blend(SupportSignals(ones, ones, containment, absent, missing))
    useful = upper >= SUPPORT_THRESHOLD
    if keep_best:
        order = np.argsort(-upper, axis=1, kind="stable")[:, :keep_best]
        np.put_along_axis(useful, order, True, axis=1)
    useful &= (containment > 0) | (absent > 0)  # wordless sentences stay at 0
    lexical = blend(SupportSignals(zeros, zeros, containment, absent, missing))
    cells = np.argwhere(useful)
    words = [set(content_words(text)) for text in sentences]
    windows: dict[int, list[tuple[str, set[str]]]] = {}
    chosen: list[list[str]] = []
    for row, col in cells.tolist():
        if col not in windows:
            windows[col] = [(w, set(content_words(w))) for w in passage_windows(passages[col])]
        ranked = sorted(windows[col], key=lambda item: -len(item[1] & words[row]))
        chosen.append([text for text, _ in ranked[:WINDOWS_PER_CELL]])
    used = [passages[col] for col in windows]
    return PrunedPlan(sentences, passages, cells, chosen, used, containment, absent, missing,
                      lexical)


def _lexical(sentences: Sequence[str], passages: Sequence[str]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Containment share and absent count of each sentence's distinct content words in
    each passage (share 0 for a sentence without content words: no words, no evidence),
    and the count of its anchors each passage lacks. Matrices span only the sentences'
    vocabulary, so a large passage set stays cheap."""
    words = [set(content_words(s)) - meta_stems() for s in sentences]
    vocab = {w: i for i, w in enumerate(sorted(set().union(*words)))}
    member = np.zeros((len(sentences), len(vocab)), dtype=np.float32)
    for row, ws in enumerate(words):
        member[row, [vocab[w] for w in ws]] = 1.0
    present = np.zeros((len(passages), len(vocab)), dtype=np.float32)
    for row, passage in enumerate(passages):
        present[row, [vocab[w] for w in set(content_words(passage)) if w in vocab]] = 1.0
    matched = member @ present.T
    sizes = member.sum(axis=1, keepdims=True)
    share = np.divide(matched, sizes, out=np.zeros_like(matched), where=sizes > 0)
    missing = np.array(missing_counts(sentences, passages), dtype=np.float32).reshape(
        len(sentences), len(passages))
    return np.clip(share, 0.0, 1.0), np.maximum(sizes - matched, 0.0), missing


def supported(score: float) -> bool:
    """True when a support score passes the calibrated threshold."""
    return score >= SUPPORT_THRESHOLD


@dataclass(frozen=True, slots=True)
class CompositeSupport:
    """Best support of one sentence by one chunk or two adjacent chunks joined."""

    score: float
    chunks: tuple[int, ...]  # positions in the document's chunk list
    composite: bool  # True when only a joined pair passes the threshold


def composite_support(
    scorer: SupportScorer, sentence: str, chunks: Sequence[str]
) -> CompositeSupport:
    """Support from adjacent chunks of one document (in order) when no single chunk has it:
    a claim split across a chunk boundary is a scatter symptom, not an ungrounded claim."""
    if not chunks:
        return CompositeSupport(0.0, (), False)
    pairs = [f"{a} {b}" for a, b in zip(chunks, chunks[1:], strict=False)]
    row = scorer.score_matrix([sentence], [*chunks, *pairs])[0]
    single, pair = row[: len(chunks)], row[len(chunks) :]
    one = int(np.argmax(single))
    if supported(float(single[one])) or not len(pair):
        return CompositeSupport(float(single[one]), (one,), False)
    two = int(np.argmax(pair))
    if supported(float(pair[two])):
        return CompositeSupport(float(pair[two]), (two, two + 1), True)
    if pair[two] > single[one]:  # unsupported either way: report the closer evidence
        return CompositeSupport(float(pair[two]), (two, two + 1), False)
    return CompositeSupport(float(single[one]), (one,), False)
