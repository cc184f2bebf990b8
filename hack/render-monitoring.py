#!/usr/bin/env python3
"""Writes monitoring/rules/mlserving.rules.yaml from operator/monitoring_rules.py (defaults).

    .venv/bin/python hack/render-monitoring.py          # rewrite the file
    .venv/bin/python hack/render-monitoring.py --check  # exit 1 when the file is stale
"""

import sys
from pathlib import Path

from mlserving.operator.monitoring_rules import render_file

TARGET = Path(__file__).resolve().parents[1] / "monitoring" / "rules" / "mlserving.rules.yaml"

if __name__ == "__main__":
    text = render_file()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            sys.exit(f"{TARGET} is stale: run hack/render-monitoring.py")
    else:
        TARGET.write_text(text)
