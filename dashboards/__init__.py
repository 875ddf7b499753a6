"""The Streamlit dashboard: seven pages over the results store, read-only.

``app.py`` is the entry point; its pages are in ``views/``, their cached reads in the
``*_data`` modules (over ``auditor.store.read``). Starting and stopping the server lives in
``auditor.dashboard_server`` (re-exported here), so the auditor never imports this package.
"""

from auditor.dashboard_server import command, die_with_parent, serve, serving, start, stop

__all__ = ["command", "die_with_parent", "serve", "serving", "start", "stop"]
