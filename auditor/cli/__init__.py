"""The ``auditor`` command line. ``main`` is the console entry point (``auditor.cli:main`` in
pyproject) and ``app`` the Typer app; both are defined in :mod:`auditor.cli.main`, where every
command is registered. Importing ``main`` here makes ``auditor.cli.main`` the function: reach
the module itself through ``sys.modules`` or ``from auditor.cli.main import ...``.

Modules: ``main`` (app, registration, exit codes), ``options`` (shared options), ``render``
(consoles and Rich output), one module per command group (``run``, ``browse``, ``trace``,
``nightly``, ``dashboard``) and ``summary`` (the first lines after a run).
"""

from auditor.cli.main import app, main

__all__ = ["app", "main"]
