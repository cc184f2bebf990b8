"""Prints how many seconds each suite took, so CI's log carries the figures that
docs/delivery.md keeps against each suite's budget.

A suite is a folder under tests/ (``tests/e2e/test_rollout.py`` counts for ``e2e/rollout``:
the real-node suites share one folder and one fixture, but each has its own budget).
"""

from __future__ import annotations

import collections
import pathlib

_seconds: collections.Counter[str] = collections.Counter()
_tests: collections.Counter[str] = collections.Counter()


def suite_of(nodeid: str) -> str:
    parts = pathlib.PurePosixPath(nodeid.split("::", 1)[0]).parts
    if len(parts) < 2 or parts[0] != "tests":
        return "other"
    if len(parts) == 2:
        return "top-level"
    if parts[1] == "e2e":
        return "e2e/" + parts[-1].removeprefix("test_").removesuffix(".py")
    return parts[1]


def pytest_runtest_logreport(report) -> None:
    suite = suite_of(report.nodeid)
    _seconds[suite] += report.duration
    if report.when == "call":
        _tests[suite] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if not _seconds:
        return
    terminalreporter.section("seconds per suite")
    for suite, seconds in sorted(_seconds.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"suite {suite}: {seconds:.0f} s ({_tests[suite]} tests)")
