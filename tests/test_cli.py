"""The `auditor` command's contract with a shell: for every command, a typing mistake is one
sentence on stderr and exit 2, never a traceback, and user text is never read as markup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from auditor import cli
from auditor.errors import AuditorError, InputError


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

    monkeypatch.setattr(cli, "load_settings", broken)
    code, _, err = run_main(["runs"], monkeypatch, capsys)
    assert_one_sentence(code, err, "log [query]/[x] line 3: field [query] is missing")
    assert issubclass(InputError, AuditorError)


def test_a_bug_exits_2_not_1(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 means "a gate failed": a crash must never read as a regression."""
    def broken(*_: object, **__: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(cli, "load_settings", broken)
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
