"""docs/reliability.md says what the chaos suite checks: its tables name exactly the suite's
cases and bounds, with the values the code uses (no cluster needed)."""

from __future__ import annotations

import ast
import pathlib
import re

import test_chaos
from mlserving.operator.children.common import PRESTOP_SLEEP_SECONDS
from mlserving.operator.leader import LeaseConfig

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def case_names() -> list[str]:
    """The second argument of every ``Case(...)`` in test_chaos.py: the report's case names."""
    tree = ast.parse(pathlib.Path(test_chaos.__file__).read_text())
    return [node.args[1].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Case"]


def table_column(header_start: str, column: int = 0) -> list[str]:
    """One column (backticks stripped) of the markdown table whose header begins with ``header_start``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    cells = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1 + column].strip().strip("`"))
    return cells


def test_the_fault_table_lists_exactly_the_suites_cases():
    names = case_names()
    assert len(names) == len(set(names)) >= 6
    assert table_column("| case |") == names


def test_the_measured_run_quotes_every_case():
    assert sorted(table_column("| case (measured) |")) == sorted(case_names())


def test_the_bounds_are_the_codes():
    lease = LeaseConfig(namespace="x", name="y", identity="z")
    values = {"RECOVERY_S": test_chaos.RECOVERY_S, "RESTORE_S": test_chaos.RESTORE_S,
              "RESUME_S": test_chaos.RESUME_S, "lease_duration": lease.lease_duration,
              "renew_deadline": lease.renew_deadline, "PRESTOP_SLEEP_SECONDS": PRESTOP_SLEEP_SECONDS}
    names = table_column("| bound |")
    seconds = table_column("| bound |", 1)
    assert sorted(names) == sorted(values)
    for name, quoted in zip(names, seconds, strict=True):
        assert float(re.match(r"[\d.]+", quoted).group()) == values[name], name
