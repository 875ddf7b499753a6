"""A sampled run's pieces: the settings that ask for one, which accepted records it replays,
what its manifest records, and strata read back from stored rows the way they were drawn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from auditor.config import ConfigError, load_settings
from auditor.logs import LoadCounts, read_keys, read_log, read_numbered
from auditor.records import LogRecord, QuarantineEntry
from auditor.sampled import design, draw, log_items, log_key, manifest_entry, only_sampled
from auditor.sampling import Design, sample_log, stratum_of


def write_log(path: Path, ids: list[str], bad_lines: int = 0) -> Path:
    lines = ['{"query_id": "broken"'] * bad_lines  # quarantined, never sampled
    lines += [json.dumps({"query_id": q, "query": f"text {q}",
                          "metadata": {"tier": "gold" if int(q[1:]) % 4 == 0 else "free"}})
              for q in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def no_audit_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # load_settings(None) reads ./audit.toml when there is one


def test_settings_ask_for_one_sample_size() -> None:
    assert design(load_settings(None)) is None
    chosen = design(load_settings(None, sample=10, stratify_by="tier", seed=4))
    assert chosen == Design(seed=4, size=10, stratify_by="tier")
    with pytest.raises(ConfigError, match="exclude each other"):
        load_settings(None, sample=10, sample_rate=0.5)
    with pytest.raises(ConfigError, match="sample_rate"):
        load_settings(None, sample_rate=0.0)
    with pytest.raises(ConfigError, match="sample"):
        load_settings(None, sample=0)
    with pytest.raises(ConfigError, match="needs a sample"):
        load_settings(None, stratify_by="day")


def test_the_sample_is_drawn_from_accepted_records_only(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(200)]
    clean = load_settings(None, log=write_log(tmp_path / "a.jsonl", ids), sample=30,
                          stratify_by="tier")
    dirty = load_settings(None, log=write_log(tmp_path / "b.jsonl", ids, bad_lines=7),
                          sample=30, stratify_by="tier")
    first, second = draw(clean), draw(dirty)
    assert first is not None and second is not None
    assert first.n == 30 and first.population == 200
    assert (first.picked == second.picked).all()  # quarantined lines change nothing
    assert first.strata == {"free": (150, 23), "gold": (50, 7)}  # 22.5/7.5: ties to the first
    records = [LogRecord(query_id=q, query="x", metadata={"tier": "gold" if int(q[1:]) % 4 == 0
                                                          else "free"}) for q in ids]
    kept = [r.query_id for r in only_sampled(iter(records), first)]
    direct = sample_log(records, Design(seed=0, size=30, stratify_by="tier"))
    assert kept == [r.query_id for r, p in zip(records, direct.picked, strict=True) if p]
    assert list(only_sampled(iter(records), None)) == records


def test_a_sampled_read_checks_every_id_and_the_picked_lines_in_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first pass quarantines and counts what a whole-log read does for every line
    without a usable id (invalid JSON, a duplicate id); a bad field elsewhere in a line is
    found only when the sample picks the line; the second pass parses the picked lines only."""
    from auditor import decode

    log = write_log(tmp_path / "log.jsonl", [f"q{i}" for i in range(300)], bad_lines=3)
    with log.open("a") as out:
        out.write('{"query_id": "q5", "query": "again"}\n\n')  # a duplicate, a blank line
        out.write('{"query_id": "late", "query": "x", "served_latency_ms": -4, '
                  '"metadata": {"tier": "free"}}\n')
    whole = LoadCounts()
    everything = list(read_log(log, whole))
    bad = [i for i in everything if isinstance(i, QuarantineEntry)]
    assert len(bad) == 5 and bad[-1].field == "served_latency_ms"
    parsed: list[str] = []
    parse, validate = decode.parse_json, LogRecord.model_validate_json
    monkeypatch.setattr(decode, "parse_json", lambda text: parsed.append(text) or parse(text))
    monkeypatch.setattr(LogRecord, "model_validate_json",  # a valid line's one-step parse
                        lambda text: parsed.append(text) or validate(text))

    sampled = LoadCounts()
    settings = load_settings(None, log=log, sample=40, stratify_by="tier", seed=2)
    sample, items = log_items(settings, sampled)
    assert sample is not None and sample.population == sampled.accepted == 301
    first_pass = len(parsed)
    got = list(items)
    # the second pass parsed the picked lines, and the first line (a span file or a log?)
    assert len(parsed) - first_pass == 40 + 1
    records = [i for i in got if isinstance(i, LogRecord)]
    assert "late" not in {r.query_id for r in records} and len(records) == 40
    assert [i for i in got if isinstance(i, QuarantineEntry)] == bad[:4]  # not "late"
    assert sampled.quarantined == 4 and sampled.read == whole.read
    accepted = [i for i in everything if isinstance(i, LogRecord)]
    ids = {r.query_id for r in records}
    assert [r for r in accepted if r.query_id in ids] == records  # in log order

    census, counted = log_items(load_settings(None, log=log, sample_rate=1.0), sampled := (
        LoadCounts()))
    assert census is not None and census.population == 301
    got = list(counted)  # "late" is picked now: quarantined by the second pass
    assert sampled == whole
    assert sorted((q.line, q.field) for q in got if isinstance(q, QuarantineEntry)) == sorted(
        (q.line, q.field) for q in bad)
    assert [i for i in got if isinstance(i, LogRecord)] == accepted
    none, items = log_items(load_settings(None, log=log), LoadCounts())
    assert none is None and list(items) == everything


def test_a_census_reads_a_messy_log_as_a_whole_read_does(tmp_path: Path) -> None:
    """A sample of every record quarantines and counts what a whole-log read does, whatever
    the first pass's quick check let through or not: a byte order mark, invalid UTF-8, a
    line of spaces, an integer id, an older field name beside its new one, a repeated id."""
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + b"\n".join([
        b'{"query_id": "a", "query": "x"}',
        b'{"query_id": "b", "query": "caf\xff"}',
        b"   ",
        b'{"query_id": 7, "query": "seven"}',
        b'{"query_id": "c", "query": "x", "timestamp": "2026-12-01T00:00:00Z", '
        b'"logged_at": "2026-12-01T00:00:00Z"}',
        b'{"query_id": "a", "query": "again"}',
        b'{"query_id": "d", "query": " "}',
        b'{"query_id": "e", "query": "x", "metadata": {"n": NaN}}',
    ]) + b"\n")
    whole = LoadCounts()
    everything = list(read_log(log, whole))
    census, counted = log_items(load_settings(None, log=log, sample_rate=1.0), sampled := (
        LoadCounts()))
    got = list(counted)
    assert sampled == whole and census is not None
    assert sorted((q.line, q.field, q.reason) for q in got if isinstance(q, QuarantineEntry)) \
        == sorted((q.line, q.field, q.reason) for q in everything
                  if isinstance(q, QuarantineEntry))
    assert [r for r in got if isinstance(r, LogRecord)] == [
        r for r in everything if isinstance(r, LogRecord)]
    assert [r.query_id for r in got if isinstance(r, LogRecord)] == ["a", "7"]


# Lines whose defects, if any, are in what the first pass checks: the line as UTF-8 and
# JSON, its id, its query. msgspec parses them; pydantic decides the whole record.
FIRST_PASS_LINES = [
    b'{"query_id": "a", "query": "x", "served": [{"id": "caf\xff"}]}',  # bad UTF-8, skipped
    b'{"query_id": "b", "query": "x", "served": [{"id": "d", "score": NaN}]}',
    b'{"query_id": "c", "query": "x", "served": [{"id": "d", "score": Infinity}]}',
    b'{"query_id": 1.0, "query": "x"}',
    b'{"query_id": 1e2, "query": "x"}',
    b'{"query_id": true, "query": "x"}',
    b'{"query_id": 123456789012345678901234567890, "query": "big"}',
    b'{"query_id": -0, "query": "zero"}',
    b'{"query_id": "d", "query": "x", "query": " "}',  # a repeated key: the last one counts
    b'{"query_id": "e", "query": "x\\ud800"}',
    b'{"query_id": "f", "query": "x", "m": "\\udc00"}',
    b'{"query_id": "g", "query": "x", "m": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"query_id": "h", "query": "\\u00e9t\\u00e9", "m": 1e300}',
    b'{"query\\u005fid": "i", "query": "escaped key"}',
    b'{"query_id": "", "query": "x"}',
    b'{"query_id": "j", "query": "\\u2003"}',
    b'["k", "x"]',
    b'{"query_id": "l", "query": "x"} trailing',
    b'{"query_id": "m", "query": "caf\xc3\xa9"}',
    b'{"query_id": "m", "query": "again"}',
]


def test_the_first_pass_accepts_only_what_a_whole_read_accepts(tmp_path: Path) -> None:
    """The first pass reads lines with msgspec; a line it would take that pydantic would not
    (invalid UTF-8 where msgspec skips, an id pydantic does not convert, a repeated key
    whose last value is blank) is settled by the whole record's path, line for line."""
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(FIRST_PASS_LINES) + b"\n")
    whole = LoadCounts()
    everything = list(read_numbered(log, whole))
    first = LoadCounts()
    keyed = list(read_keys(log, first, log_key(None)))
    assert first == whole and 0 < whole.accepted < whole.read
    assert [(line, isinstance(item, QuarantineEntry)) for line, item in keyed] == [
        (line, isinstance(item, QuarantineEntry)) for line, item in everything]
    assert [item.query_id for _, item in keyed if not isinstance(item, QuarantineEntry)] == [
        item.query_id for _, item in everything if isinstance(item, LogRecord)]
    for by in ("day", "tier"):  # a stratum's fields are read by pydantic as well
        first = LoadCounts()
        assert len(list(read_keys(log, first, log_key(by)))) == len(keyed) and first == whole


def test_a_stratum_may_be_a_top_level_field_or_the_time(tmp_path: Path) -> None:
    """The first pass reads a stratum from a field beyond the known ones (metadata to a
    whole read, which gives ``metadata`` precedence) and from ``timestamp``."""
    log = tmp_path / "log.jsonl"
    rows = [{"query_id": f"q{i}", "query": "x", "region": "eu" if i % 3 else "us",
             "timestamp": f"2026-12-0{1 + i % 2}T10:00:00Z"} for i in range(60)]
    rows[0]["metadata"] = {"region": "apac"}
    log.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = [i for i in read_log(log) if isinstance(i, LogRecord)]
    for by in ("region", "day"):
        sample = draw(load_settings(None, log=log, sample=30, stratify_by=by))
        direct = sample_log(records, Design(seed=0, size=30, stratify_by=by))
        assert sample is not None and sample.strata == direct.strata
        assert (sample.picked == direct.picked).all()
    assert set(draw(load_settings(None, log=log, sample=30, stratify_by="region")).strata) \
        == {"eu", "us", "apac"}


def test_the_manifest_records_n_N_and_the_strata() -> None:
    records = [LogRecord(query_id=f"q{i}", query="x", metadata={"t": i % 2}) for i in range(40)]
    entry = manifest_entry(sample_log(records, Design(seed=9, rate=0.25, stratify_by="t")))
    assert entry["N"] == 40 and entry["seed"] == 9 and entry["stratify_by"] == "t"
    assert entry["n"] == sum(n for n, _ in entry["strata"].values())
    assert entry["rate"] == entry["n"] / 40
    assert {name: size for name, (_, size) in entry["strata"].items()} == {"0": 20, "1": 20}
    assert entry["requested"] == {"sample": None, "sample_rate": 0.25}
    json.dumps(entry)  # stored as JSON


def test_time_strata_are_utc_whatever_the_offset() -> None:
    late = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    east = late.astimezone(timezone(timedelta(hours=2)))  # 01:30 on the 5th, local
    assert stratum_of(late, None, "day") == stratum_of(east, None, "day") == "2026-12-04"
    assert stratum_of(east, None, "hour") == "2026-12-04T23"
    assert stratum_of(None, {"tier": 3}, "tier") == "3"
    assert stratum_of(None, {}, "tier") == stratum_of(late, None, None) == "(none)"


def test_a_sampled_drop_fails_only_when_its_whole_interval_is_beyond_the_limit() -> None:
    from auditor.compare import Comparison, MetricDelta
    from auditor.config import Gate
    from auditor.gates import SampledInterval, evaluate

    gate = Gate(metric="recall@10", max_drop=0.02)
    delta = MetricDelta("recall@10", 40, 0.9, 0.85, -0.05, -0.08, -0.02, 0.001, 0.001)
    comparison = Comparison("base", "cur", 40, 0, 0, 0.05, [delta], [], [], 0, 0, [], [], [],
                            {})
    assert evaluate([gate], {}, comparison)[0].status == "failed"  # unsampled: significant
    wide = SampledInterval(-0.05, -0.12, 0.02, "sampled: 40 of 4000")  # change, current - base
    narrow = SampledInterval(-0.05, -0.07, -0.03, "sampled: 40 of 4000")
    small = SampledInterval(-0.005, -0.015, 0.004, "sampled: 40 of 4000")
    undecided = evaluate([gate], {}, comparison, sampled_changes={"recall@10": wide})[0]
    assert undecided.status == "not_evaluated" and "sampled: 40 of 4000" in undecided.reason
    assert evaluate([gate], {}, comparison, sampled_changes={"recall@10": narrow})[0].status \
        == "failed"
    assert evaluate([gate], {}, comparison, sampled_changes={"recall@10": small})[0].status \
        == "passed"
    floor = Gate(metric="ndcg@10", min=0.8)
    nan = SampledInterval(0.7, float("nan"), float("nan"), "sampled: 1 of 9")
    assert evaluate([floor], {"ndcg@10": 0.7}, None,
                    sampled_means={"ndcg@10": nan})[0].status == "not_evaluated"
