"""The `auditor` command's contract with a shell: for every command, a typing mistake is one
sentence on stderr and exit 2, never a traceback, and user text is never read as markup."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from auditor import cli
from auditor.cli import browse
from auditor.errors import AuditorError, InputError
from tests.conftest import FIXTURES


def _leaves(group: typer.core.TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command of the app, as the words a user types (`index build`)."""
    ctx = typer.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, typer.core.TyperGroup):
            found.extend(_leaves(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


ROOT_GROUP = typer.main.get_command(cli.app)
COMMANDS = _leaves(ROOT_GROUP)


def _command(words: tuple[str, ...]) -> typer.core.TyperCommand:
    command = ROOT_GROUP
    for word in words:
        command = command.get_command(typer.Context(command), word)
    return command


def _required_arguments(words: tuple[str, ...]) -> list[str]:
    return [p.name for p in _command(words).params
            if p.required and p.param_type_name == "argument"]


WITH_ARGUMENTS = [words for words in COMMANDS if _required_arguments(words)]
WITHOUT_ARGUMENTS = [words for words in COMMANDS if not _required_arguments(words)]


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`auditor ARGS` in this process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["auditor", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def assert_one_sentence(code: int, stderr: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], stderr


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(words) for words in COMMANDS}
    assert {"run", "runs", "trace", "report", "compare", "gate", "export", "demo",
            "dashboard", "schedule", "index build"} <= names
    assert {words[-1] for words in WITH_ARGUMENTS} >= {"trace", "report", "compare", "gate",
                                                       "export"}


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_unknown_option_is_one_sentence(words: tuple[str, ...], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main([*words, "--bogus"], monkeypatch, capsys)
    assert_one_sentence(code, err, "no such option: --bogus", f"auditor {' '.join(words)}")
    assert out == ""
    assert list(tmp_path.iterdir()) == []  # refused before doing anything


@pytest.mark.parametrize("words", WITH_ARGUMENTS, ids=" ".join)
def test_missing_argument_is_one_sentence(words: tuple[str, ...], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(list(words), monkeypatch, capsys)
    assert_one_sentence(code, err, "missing argument", _required_arguments(words)[0],
                        f"`auditor {' '.join(words)} --help`")


@pytest.mark.parametrize("words", WITHOUT_ARGUMENTS, ids=" ".join)
def test_unexpected_argument_is_one_sentence(words: tuple[str, ...], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main([*words, "stray"], monkeypatch, capsys)
    assert_one_sentence(code, err, "unexpected extra argument", "stray")


def test_bad_option_value_and_unknown_command(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["dashboard", "--port", "eighty"], monkeypatch, capsys)
    assert_one_sentence(code, err, "--port")
    code, _, err = run_main(["nightly"], monkeypatch, capsys)
    assert_one_sentence(code, err, "no such command", "nightly")


def test_no_command_shows_the_help(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([], monkeypatch, capsys)
    assert code == 2
    assert "Usage: auditor" in out and "Traceback" not in err


def test_project_errors_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Any AuditorError raised inside a command: its sentence, exit 2, markup left alone."""
    def broken(*_: object, **__: object) -> None:
        raise InputError("log [query]/[x] line 3: field [query] is missing")

    monkeypatch.setattr(browse, "load_settings", broken)
    code, _, err = run_main(["runs"], monkeypatch, capsys)
    assert_one_sentence(code, err, "log [query]/[x] line 3: field [query] is missing")
    assert issubclass(InputError, AuditorError)


def test_a_bug_exits_2_not_1(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 means "a gate failed": a crash must never read as a regression."""
    def broken(*_: object, **__: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(browse, "load_settings", broken)
    monkeypatch.delenv("AUDITOR_DEBUG", raising=False)
    code, _, err = run_main(["runs"], monkeypatch, capsys)
    assert_one_sentence(code, err, "RecursionError", "AUDITOR_DEBUG=1")


def test_the_installed_entry_point(tmp_path: Path) -> None:
    """The real process, as a shell sees it (no pytest capture in between)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")}
    done = subprocess.run([sys.executable, "-m", "auditor.cli", "runs", "--bogus"], cwd=tmp_path,
                          env=env, text=True, capture_output=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: auditor runs: no such option: --bogus "
                                   "(see `auditor runs --help`)")


# What a run prints -------------------------------------------------------------------------
# A log path with Rich markup characters in it, and a log with bad records (quarantine lines
# name their field in brackets): all must print literally.
MARKUP_DIR = "logs [v2]/[bold]x[/]"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A hash-encoder BM25 run of the SciFact fixtures plus the bad log: (dir, stdout, stderr)."""
    from .test_audit import auditor, write_config

    directory = tmp_path_factory.mktemp("cli")
    logs = directory / MARKUP_DIR
    logs.mkdir(parents=True)
    log = logs / "log.jsonl"
    log.write_text((FIXTURES / "scifact" / "log.jsonl").read_text()
                   + (FIXTURES / "bad_log.jsonl").read_text())
    write_config(directory, log=str(log))
    assert auditor("index", "build", cwd=directory).returncode == 0
    done = auditor("run", cwd=directory)
    assert done.returncode == 0, done.stderr
    return directory, done.stdout, done.stderr


def piped(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`auditor ARGS | cat`: stdout is not a terminal, COLUMNS unset unless given."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("AUDITOR_") and k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args], cwd=cwd,
                          env={**environ, **env}, text=True, capture_output=True, timeout=600)


def test_summary_says_the_verdict_and_the_next_command(audited: tuple[Path, str, str]) -> None:
    _, stdout, _ = audited
    lines = stdout.splitlines()
    run, measures, *rest = lines
    assert re.fullmatch(r"run \S+ complete · bm25 · doc level · 58 of 58 queries replayed · "
                        r"5 log records quarantined", run), run
    assert re.fullmatch(r"recall@10 \d\.\d{3} · nDCG@10 \d\.\d{3} \(n 50 judged of 58\)",
                        measures), measures
    causes = next(line for line in rest if line.startswith("why retrieval failed: "))
    assert "drifted" not in causes and "unsupported_answer" not in causes
    assert re.search(r"^production served different results than the index returns today "
                     r"for \d+ quer(y|ies) \(drift\)$", stdout, re.M)
    assert re.search(r"^\d+ answers? holds? sentences no document supports$", stdout, re.M)
    assert re.search(r"the regression gates on recall@10 and ndcg@10 are not evaluated", stdout)
    last = lines[-1]
    assert re.fullmatch(r"next: auditor dashboard · auditor trace \S+ · report: \S+report\.html",
                        last), last
    assert len(lines) <= 10  # the tables wait for --verbose
    assert "┃" not in stdout


def test_piped_output_is_not_wrapped_at_80_columns(audited: tuple[Path, str, str]) -> None:
    directory, _, _ = audited
    done = piped("run", "--verbose", "--baseline", "none", cwd=directory)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) > 80
    assert "┃ measure" in done.stdout  # the tables, with --verbose


def test_user_text_is_printed_literally(audited: tuple[Path, str, str]) -> None:
    """Rich markup in a path or a quarantine reason is text, never a style."""
    directory, _, _ = audited
    done = piped("run", "--verbose", "--baseline", "none", cwd=directory)
    assert done.returncode == 0, done.stderr
    assert re.search(r"/\[bold\]x\[/\]/log\.jsonl:55 \[query\] Field required", done.stdout)
    listing = piped("runs", cwd=directory)
    assert listing.returncode == 0, listing.stderr
    assert MARKUP_DIR in listing.stdout
    missing = piped("run", "--log", str(directory / "[red]gone[/].jsonl"), cwd=directory)
    assert missing.returncode == 2 and "[red]gone[/].jsonl" in missing.stderr
    run_id = json.loads(piped("runs", "--json", cwd=directory).stdout)[0]["run_id"]
    exported = piped("export", run_id, "--run-file", str(directory / "[b]x[/b].run"),
                     cwd=directory)
    assert exported.returncode == 0 and "[b]x[/b].run" in exported.stdout, exported.stderr


def test_runs_shows_whole_ids_verdict_and_mode(audited: tuple[Path, str, str]) -> None:
    directory, _, _ = audited
    rows = json.loads(piped("runs", "--json", cwd=directory).stdout)
    for columns in ({}, {"COLUMNS": "80"}):
        done = piped("runs", cwd=directory, **columns)
        assert done.returncode == 0, done.stderr
        header = done.stdout.splitlines()[2]
        for column in ("run_id", "verdict", "mode"):
            assert column in header or columns  # names may wrap in 80 columns, ids may not
        for row in rows:
            assert row["run_id"] in done.stdout
    assert {"gate_status", "log", "mode"} <= set(rows[0])


def test_trace_reads_like_sentences(audited: tuple[Path, str, str]) -> None:
    directory, _, _ = audited
    query_id = json.loads(FIXTURES.joinpath("scifact", "log.jsonl").read_text()
                          .splitlines()[0])["query_id"]
    stored = json.loads(piped("trace", query_id, "--json", cwd=directory).stdout)
    assert isinstance(stored["result"]["served"], list)  # decoded once, not a JSON string
    assert all(isinstance(row["evidence"], dict) for row in stored["diagnoses"])
    for query in _traced_queries(directory):
        done = piped("trace", query, cwd=directory)
        assert done.returncode == 0, done.stderr
        assert "=" not in done.stdout.split("\ncauses", 1)[-1]  # no key=value dumps
        assert not re.search(r"\d\.\d{4,}", done.stdout)  # three significant digits


def _traced_queries(directory: Path) -> list[str]:
    """One query per cause found in the run (the ones whose evidence is told)."""
    import duckdb

    with duckdb.connect(str(directory / "audit.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT cause, min(query_id) FROM diagnoses GROUP BY cause").fetchall()
    assert len(rows) >= 3
    return sorted({query for _, query in rows})


def test_every_cause_is_told_in_a_sentence() -> None:
    from auditor.cases import CAUSES
    from auditor.cli.trace import EXPLAIN, explain, num, words_of

    assert set(EXPLAIN) == set(CAUSES)
    assert [num(v) for v in (0.027745885954841176, 3.7e-05, 12, 1.0, 16098.7, None)] == [
        "0.0277", "3.7e-05", "12", "1", "16,099", "—"]
    query = "Assembly of invadopodia is triggered by the activation of kinases"
    assert words_of(["assembl", "trigger", "kinas", "src"], query) == [
        "Assembly", "triggered", "kinases", "src"]
    told = explain("vocabulary_mismatch", "38485364", {
        "by": ["term_overlap"], "term_overlap": 0.16666, "missing_terms": ["assembl", "kinas"],
        "query_terms": ["assembl", "kinas", "src"], "bm25_rank": 18, "dense_rank": None}, query)
    assert told == ("38485364 holds only 16.7% of the query's words; it lacks Assembly, "
                    "kinases (BM25 #18, dense absent)")
    assert explain("new_cause", None, {"share_of_x": 0.123456, "ids": ["a"]}, "") == (
        "share of x 0.123, ids a")


def test_summary_names_the_failed_gates_and_a_regressed_query(
        audited: tuple[Path, str, str]) -> None:
    directory, _, _ = audited
    again = piped("run", "--baseline", "last", cwd=directory)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^2 gates passed, compared with \S+ on 58 shared queries$", again.stdout,
                     re.M), again.stdout
    baseline = json.loads(piped("runs", "--json", cwd=directory).stdout)[0]["run_id"]
    worse = piped("run", "--mode", "dense", "--baseline", baseline, "--json", cwd=directory)
    assert worse.returncode == 1, worse.stderr
    regressed = json.loads(worse.stdout)["verdict"]["regressed"]
    done = piped("gate", json.loads(worse.stdout)["run_id"], "--baseline", baseline,
                 cwd=directory)
    assert done.returncode == 1
    lines = piped("run", "--mode", "dense", "--baseline", baseline, cwd=directory
                  ).stdout.splitlines()
    failed = [re.match(r"gate failed: (\S+) \d", line) for line in lines
              if line.startswith("gate failed")]
    assert [match[1] for match in failed if match] == ["recall@10", "ndcg@10"]
    assert lines[-1].startswith(f"next: auditor dashboard · auditor trace {regressed[0]} · ")


def test_compare_names_the_closest_metric_for_a_misspelt_one(
        audited: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--metrics` is checked against the metric registry before anything is compared."""
    directory, stdout, _ = audited
    monkeypatch.chdir(directory)
    run_id = stdout.split()[1]  # "run RUN_ID complete · ..."
    code, _, stderr = run_main(["compare", run_id, run_id, "--metrics", "recall@10,ndgc@10"],
                               monkeypatch, capsys)
    assert_one_sentence(code, stderr, "'ndgc@10'", "did you mean 'ndcg@10'?")
