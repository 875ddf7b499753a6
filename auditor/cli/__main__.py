"""``python -m auditor.cli``: the same command as the installed ``auditor``."""

from auditor.cli import main

main()
