"""Print the fault suite's summary at the end of a pytest session."""

from __future__ import annotations

from typing import Any

from . import summary

# the 60-second mixed attack (a minute of load, and a timing bound) is make faults's
# alone: make test does not collect it, rather than report it skipped
collect_ignore = [] if summary.FULL else ["test_faults_mixed.py"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if summary.TOTALS or summary.NOTES:
        terminalreporter.write_line("")
        terminalreporter.write_line(summary.render(summary.TOTALS, summary.NOTES))
