"""The chaos suite runs on the e2e suite's cluster fixture (the real node, our images).

tests/e2e is put on the path (its load generator, providers and A/B helpers) and its conftest is
loaded once under its own name, so ``e2e_cluster`` and the failure-diagnostics hook are the very
same code as the e2e suite's. A node already running (as in .ci/run) is reused; the images are
imported only when they changed.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

E2E_DIR = pathlib.Path(__file__).resolve().parents[1] / "e2e"
if str(E2E_DIR) not in sys.path:
    sys.path.insert(0, str(E2E_DIR))


def _e2e_conftest():
    name = "mlserving_e2e_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, E2E_DIR / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


e2e_cluster = _e2e_conftest().e2e_cluster
pytest_runtest_makereport = _e2e_conftest().pytest_runtest_makereport


def pytest_terminal_summary(terminalreporter):
    """The chaos report in the session's summary (CI's log), when this session wrote one."""
    import chaos_kit

    if chaos_kit.written_this_session:
        terminalreporter.section("chaos report (" + str(chaos_kit.REPORT) + ")")
        terminalreporter.write_line(chaos_kit.REPORT.read_text())
