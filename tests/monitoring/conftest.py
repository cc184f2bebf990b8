"""Fixtures for the monitoring tests: promtool, and a real Prometheus on 127.0.0.1.

Without Debian's prometheus package (hack/install-prometheus.sh) the tests that need it skip,
unless MLSERVING_REQUIRE_PROMETHEUS=1 (set by .ci/run) makes that a failure (prom_kit.missing).
"""

import pytest
from prom_kit import require_binary


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_binary("prometheus")
