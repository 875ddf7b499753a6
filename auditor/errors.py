"""The project's own errors: each one is a sentence a user can act on, and the CLI turns it
into one line on stderr with exit code 2 (never a traceback).
"""

from __future__ import annotations


class AuditorError(Exception):
    """Something the user can fix (an input, a setting, a service): one sentence, exit 2."""


class InputError(AuditorError):
    """A file that cannot be read as what it claims to be (names file, line, field)."""


class ConfigError(AuditorError):
    """A setting that is missing, malformed or contradicts another one."""


class BackendError(AuditorError):
    """A backend cannot do what was asked (an index, a node, a mode); the message says what
    to do."""
