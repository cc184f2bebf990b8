"""Fixtures every router test module uses."""

import pytest


@pytest.fixture(scope="module")
def logs(request, tmp_path_factory):
    """A log directory per test module, for the processes it starts."""
    return tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-logs")
