"""`aira dashboard`: a local web page that follows running and finished runs from their journals.

`server.py` serves `page.html` (plain HTML and a script that polls a JSON endpoint every two seconds)
and the JSON itself, which `state.py` computes from the run folders with the report's own analysis
(`aira.report.analysis`). Read-only throughout: journals are opened with SQLite's `mode=ro`, and
nothing is written into a run folder. The standard library only: no web framework to install.
"""

from aira.dashboard.server import DashboardServer, serve
from aira.dashboard.state import Watcher, run_state

__all__ = ["DashboardServer", "Watcher", "run_state", "serve"]
