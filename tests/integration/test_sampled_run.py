"""A sampled run end to end (embedded index, bm25, hash encoder): the same seed picks the same
queries on two nights whose logs share most query ids, another seed picks others, the
manifest holds the sample, and the summary, the reports and the dashboard say "sampled: n of
N" with the stratified estimates' 95% CIs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.audit import run_audit
from auditor.config import load_settings
from auditor.metrics.registry import bounded
from auditor.store import Store
from auditor.store.read.sample import query_strata
from tests.conftest import FIXTURES

from .test_audit import auditor, write_config
from .test_nightly import big_log, run_json

SCIFACT = FIXTURES / "scifact"
LINES = (SCIFACT / "log.jsonl").read_text().splitlines()
FAST = {"trace": False, "ablations": False, "self_probe": False}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index, and two nights' logs: 45 lines each, 40 query ids in common."""
    directory = tmp_path_factory.mktemp("sampled")
    write_config(directory, **FAST)
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    (directory / "monday.jsonl").write_text("\n".join(LINES[:45]) + "\n")
    (directory / "tuesday.jsonl").write_text("\n".join(LINES[5:]) + "\n")
    return directory


def ids(line_block: list[str]) -> set[str]:
    return {json.loads(line)["query_id"] for line in line_block}


def sampled(workdir: Path, log: str, *flags: str) -> tuple[dict, set[str]]:
    code, data, stderr = run_json("run", "--log", log, "--baseline", "none", *flags,
                                  cwd=workdir)
    assert code == 0, stderr
    return data, set(query_strata(Store(workdir / "audit.duckdb"), data["run_id"], None))


def test_the_same_seed_picks_the_same_queries_on_two_nights(workdir: Path) -> None:
    shared = ids(LINES[5:45])
    _, monday = sampled(workdir, "monday.jsonl", "--sample-rate", "0.5", "--seed", "3")
    _, tuesday = sampled(workdir, "tuesday.jsonl", "--sample-rate", "0.5", "--seed", "3")
    assert monday & shared == tuesday & shared
    assert 10 <= len(monday & shared) <= 30
    _, other = sampled(workdir, "monday.jsonl", "--sample-rate", "0.5", "--seed", "4")
    assert other != monday


def test_the_manifest_holds_the_sample(workdir: Path) -> None:
    data, picked = sampled(workdir, "monday.jsonl", "--sample", "12", "--stratify-by", "day")
    manifest = Store(workdir / "audit.duckdb").run(data["run_id"])["manifest"]
    sample = manifest["sample"]
    assert (sample["n"], sample["N"], sample["seed"]) == (12, 45, 0)
    assert sample["stratify_by"] == "day" and sample["rate"] == pytest.approx(12 / 45)
    assert sum(n for n, _ in sample["strata"].values()) == 12 == len(picked)
    assert sum(size for _, size in sample["strata"].values()) == 45
    assert data["counts"]["replayed"] == 12 and data["counts"]["accepted"] == 45


def test_a_sample_whose_lines_all_fail_their_full_check_fails(workdir: Path) -> None:
    """The first pass checks ids and queries only: lines with a bad field elsewhere enter the
    draw, are quarantined when picked, and a run that replayed none of them fails."""
    bad = [json.dumps({**json.loads(line), "latency_ms": -1}) for line in LINES[:6]]
    (workdir / "bad-latency.jsonl").write_text("\n".join(bad) + "\n")
    code, data, stderr = run_json("run", "--log", "bad-latency.jsonl", "--baseline", "none",
                                  "--sample", "3", cwd=workdir)
    assert code != 0 and data["status"] == "failed", stderr
    assert "every line the sample picked was quarantined" in data["status_reason"]
    assert data["counts"]["replayed"] == 0 and data["counts"]["quarantined"] == 3
    assert data["counts"]["accepted"] == 3  # the three lines it did not pick


def test_a_whole_log_run_records_no_sample(workdir: Path) -> None:
    data, picked = sampled(workdir, "monday.jsonl")
    assert "sample" not in Store(workdir / "audit.duckdb").run(data["run_id"])["manifest"]
    assert "sample" not in data
    assert picked == ids(LINES[:45])


def test_both_sample_sizes_at_once_is_an_error(workdir: Path) -> None:
    done = auditor("run", "--sample", "5", "--sample-rate", "0.1", cwd=workdir)
    assert done.returncode == 2 and "exclude each other" in done.stderr
    done = auditor("run", "--sample-rate", "1.5", cwd=workdir)
    assert done.returncode == 2 and "sample_rate" in done.stderr


@pytest.fixture(scope="module")
def stratified(workdir: Path) -> dict:
    data, _ = sampled(workdir, "monday.jsonl", "--sample", "12", "--stratify-by", "day",
                      "--seed", "5")
    return data


def test_run_json_gives_the_estimates_with_their_intervals(stratified: dict) -> None:
    sample = stratified["sample"]
    assert sample["sampled"] == "sampled: 12 of 45" and sample["stratify_by"] == "day"
    recall = sample["estimates"]["recall@10"]
    assert recall["ci_low"] <= recall["mean"] <= recall["ci_high"]
    assert recall["ci_high"] > recall["ci_low"]  # 12 of 45: not a census
    assert (recall["n"], recall["N"]) == (12, 45)


def test_bounded_intervals_stay_inside_their_bounds(workdir: Path, stratified: dict) -> None:
    """12 of 45 queries: some [0, 1] metric's normal interval reaches past a bound; shown
    and gated, it ends at the bound."""
    estimates = stratified["sample"]["estimates"]
    clipped = []
    for metric, e in estimates.items():
        if bounded(metric) and e["ci_high"] > e["ci_low"]:
            assert 0.0 <= e["ci_low"] <= e["mean"] <= e["ci_high"] <= 1.0, metric
            if (e["ci_high"] == 1.0 and e["mean"] < 1.0) or (e["ci_low"] == 0.0 < e["mean"]):
                clipped.append(metric)
    assert clipped, "no interval reached a bound: the check would prove nothing"
    metric = next(m for m in clipped if estimates[m]["ci_high"] == 1.0)
    gate = gated(workdir, stratified["run_id"], 1.0, metric)
    assert gate["status"] == "not_evaluated" and ", 1.000]" in gate["reason"]


def test_the_summary_and_reports_say_sampled(workdir: Path, stratified: dict) -> None:
    run_id = stratified["run_id"]
    directory = workdir / ".auditor" / "reports" / run_id
    markdown = (directory / "report.md").read_text()
    html = (directory / "report.html").read_text()
    for text in (markdown, html):
        assert "sampled: 12 of 45" in text and "95% CI" in text
    shown = auditor("report", run_id, "-f", "json", cwd=workdir)
    report = json.loads(shown.stdout)
    row = next(r for r in report["headline"] if r["metric"] == "recall@10")
    assert row["sampled"] == "sampled: 12 of 45"
    assert row["mean"] == pytest.approx(stratified["sample"]["estimates"]["recall@10"]["mean"])
    printed = auditor("run", "--log", "monday.jsonl", "--sample", "12", "--stratify-by", "day",
                      "--baseline", "none", cwd=workdir).stdout
    assert "12 of 45 queries replayed · sampled: 12 of 45" in printed
    assert "recall@10" in printed and "95% CI" in printed


def test_the_dashboard_shows_a_sampled_banner(workdir: Path, stratified: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from .test_dashboard import APP, TIMEOUT, unescape

    monkeypatch.setenv("AUDITOR_STORE", str(workdir / "audit.duckdb"))
    for page in (None, "queries"):
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.query_params.update({"run": stratified["run_id"]})
        at.run()
        if page:
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        banners = " ".join(unescape(w.value) for w in at.warning)
        assert "sampled: 12 of 45" in banners and "95% CI" in banners


def gated(workdir: Path, run_id: str, floor: float, metric: str = "recall@10") -> dict:
    config = workdir / "floor.toml"
    config.write_text((workdir / "audit.toml").read_text()
                      + f'\n[[gates]]\nmetric = "{metric}"\nmin = {floor!r}\n')
    code, data, stderr = run_json("gate", run_id, "--config", str(config), "--baseline",
                                  "none", cwd=workdir)
    assert code in (0, 1), stderr
    return next(g for g in data["gates"] if g["metric"] == metric)


def test_a_sampled_gate_is_decided_by_the_interval(workdir: Path, stratified: dict) -> None:
    recall = stratified["sample"]["estimates"]["recall@10"]
    mean, low, high = recall["mean"], recall["ci_low"], recall["ci_high"]
    # below the point estimate's floor, but inside the interval: not significant, not a fail
    undecided = gated(workdir, stratified["run_id"], round((mean + high) / 2, 6))
    assert mean < (mean + high) / 2  # the point estimate alone would fail this floor
    assert undecided["status"] == "not_evaluated"
    assert "sampled: 12 of 45" in undecided["reason"] and "too small" in undecided["reason"]
    assert gated(workdir, stratified["run_id"], round(high + 0.01, 6))["status"] == "failed"
    assert gated(workdir, stratified["run_id"], round(low - 0.01, 6))["status"] == "passed"


def test_an_interrupted_sampled_run_resumes_the_same_sample(tmp_path: Path) -> None:
    """Stopped after two of its six batches, a sampled run resumes to the sample an
    uninterrupted run with the same seed audits, completes, and says "sampled"."""
    log, qrels = big_log(tmp_path, copies=4)  # 200 records and two bad lines
    config = write_config(tmp_path, log=str(log), qrels=str(qrels), batch_size=10,
                          baseline="none", **FAST)
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    flags = ("--sample", "60", "--stratify-by", "day", "--seed", "7")
    code, whole, stderr = run_json("run", "--store", "whole.duckdb", *flags, cwd=tmp_path)
    assert code == 0, stderr

    replayed = 0

    def stop_after_two_batches(n: int) -> None:
        nonlocal replayed
        replayed += n
        if replayed >= 20:
            raise KeyboardInterrupt

    settings = load_settings(config, sample=60, stratify_by="day", seed=7)
    with pytest.raises(KeyboardInterrupt):
        run_audit(settings, progress=stop_after_two_batches)
    store = Store(tmp_path / "audit.duckdb")
    [run] = store.runs()
    assert run["status"] == "partial" and store.run(run["run_id"])["counts"]["replayed"] == 20

    code, resumed, stderr = run_json("run", "--resume", run["run_id"], cwd=tmp_path)
    assert code == 0, stderr
    assert resumed["run_id"] == run["run_id"] and resumed["status"] == "complete"
    assert resumed["counts"]["replayed"] == 60 and resumed["counts"]["quarantined"] == 2
    assert resumed["sample"]["sampled"] == whole["sample"]["sampled"] == "sampled: 60 of 200"
    picked = query_strata(store, run["run_id"], "day")
    assert picked == query_strata(Store(tmp_path / "whole.duckdb"), whole["run_id"], "day")
    assert len(picked) == 60
    assert store.run(run["run_id"])["manifest"]["sample"]["strata"] == Store(
        tmp_path / "whole.duckdb").run(whole["run_id"])["manifest"]["sample"]["strata"]
