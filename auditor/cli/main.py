"""The ``auditor`` command. The only place that configures logging, reads settings and
decides exit codes: 0 ok, 1 a gate failed, 2 an error (one sentence, no traceback).

Every command is registered below, by name, in the order ``auditor --help`` lists them; the
command modules only define functions.
"""

from __future__ import annotations

import os
from typing import NoReturn

import typer
from rich.text import Text
from typer._click.exceptions import NoArgsIsHelpError  # typer bundles click since 0.26

from auditor.backends import BackendError
from auditor.cli import browse, dashboard, gaps, judgments, nightly, run, storage, trace, weak
from auditor.cli.render import err
from auditor.errors import AuditorError
from auditor.metrics import MetricNameError
from auditor.store import StoreError

USER_ERRORS = (AuditorError, BackendError, StoreError, MetricNameError)

app = typer.Typer(
    help="Replay logged RAG queries against an index and measure what retrieval gives the model.",
    no_args_is_help=True,
    add_completion=False,
)
COMMANDS = (run.run, browse.runs, trace.trace, run.demo, browse.compare, browse.report,
            nightly.gate, browse.export, judgments.rescore, nightly.schedule,
            dashboard.dashboard, browse.migrate, gaps.gaps,
            storage.prune)
for command in COMMANDS:
    app.command()(command)

index_app = typer.Typer(help="Build search indices.", no_args_is_help=True)
index_app.command("build")(run.index_build)
app.add_typer(index_app, name="index")

judgments_app = typer.Typer(help="Judgment lists: versioned labels with their sources.",
                            no_args_is_help=True)
for name, command in (("import", judgments.import_), ("export", judgments.export),
                      ("list", judgments.list_), ("diff", judgments.diff),
                      ("agreement", judgments.agreement), ("cited", judgments.cited),
                      ("reattach", judgments.reattach), ("weak", weak.weak)):
    judgments_app.command(name)(command)
app.add_typer(judgments_app, name="judgments")


def main() -> None:
    """Run the app; every way it can end maps to an exit code and at most one line on stderr."""
    _quiet_libraries()
    try:
        code = app(prog_name="auditor", standalone_mode=False)  # returns typer.Exit's code
    except NoArgsIsHelpError:  # `auditor` or `auditor index` alone: typer printed the help
        raise SystemExit(2) from None
    except typer.TyperException as exc:  # typer's bundled click: usage errors and friends
        _fail(_usage_sentence(exc))
    except USER_ERRORS as exc:
        _fail(str(exc))
    except typer.Abort:
        _fail("aborted")
    except KeyboardInterrupt:
        _fail("interrupted (an audit run in progress is kept as partial: `auditor run "
              "--resume RUN_ID` continues it)")
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # a bug: still exit 2 (1 means "a gate failed"), say where to look
        if os.environ.get("AUDITOR_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in auditor; rerun with "
              "AUDITOR_DEBUG=1 for the traceback)")
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _quiet_libraries() -> None:
    """Model loading and tokenizers print bars of their own; ours are enough."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(sentence: str) -> NoReturn:
    """One line on stderr, exit 2: nothing the user typed is read as markup."""
    err.print(Text.assemble(("error: ", "red"), sentence.strip()), soft_wrap=True)
    raise SystemExit(2) from None


def _usage_sentence(exc: typer.TyperException) -> str:
    """A usage error as one sentence naming the command, e.g. "missing argument QUERY_ID"."""
    message = exc.format_message().strip().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "auditor"
    return f"{command}: {message[:1].lower()}{message[1:]} (see `{command} --help`)"
