"""Print the fault suite's summary at the end of a pytest session."""

from __future__ import annotations

from typing import Any

from . import summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if summary.TOTALS or summary.NOTES:
        terminalreporter.write_line("")
        terminalreporter.write_line(summary.render(summary.TOTALS, summary.NOTES))
