"""The provider-picking rules of the e2e fixture, with stand-in providers (no cluster involved).

The stand-ins live in this module and are found through the same import machinery the real
providers use (a module name and a class name).
"""

from __future__ import annotations

import pytest
from providers.base import ClusterProvider
from providers.selection import PROVIDER_MODULES, choose_provider


class StandIn(ClusterProvider):
    """A provider whose availability is set by the test; it never starts anything."""

    answer: tuple[bool, str] = (True, "")

    def available(self):
        return self.answer

    def up(self):
        raise AssertionError("selection must not start a cluster")

    def load_images(self, images):
        raise AssertionError("selection must not build images")

    def dump_diagnostics(self, out_dir):
        pass

    def down(self):
        pass


class KindStandIn(StandIn):
    name = "kind"


class LocalStandIn(StandIn):
    name = "local"


MODULES = {"kind": (__name__, "KindStandIn"), "local": (__name__, "LocalStandIn")}


@pytest.fixture(autouse=True)
def reset_answers():
    yield
    KindStandIn.answer = LocalStandIn.answer = (True, "")


def test_kind_first_when_both_are_available():
    provider, reason, forced = choose_provider({}, MODULES)
    assert (provider.name, reason, forced) == ("kind", "", False)


def test_local_when_kind_is_not_available():
    KindStandIn.answer = (False, "`docker info` found no Docker engine")
    provider, _, forced = choose_provider({}, MODULES)
    assert (provider.name, forced) == ("local", False)


def test_neither_available_gives_both_reasons():
    KindStandIn.answer = (False, "kind not on PATH")
    LocalStandIn.answer = (False, "kubelet not built")
    provider, reason, forced = choose_provider({}, MODULES)
    assert provider is None and not forced
    assert "kind: kind not on PATH" in reason and "local: kubelet not built" in reason


def test_the_environment_forces_a_provider_even_when_another_comes_first():
    provider, _, forced = choose_provider({"MLSERVING_E2E_PROVIDER": "local"}, MODULES)
    assert (provider.name, forced) == ("local", True)


def test_a_forced_provider_that_is_unavailable_is_reported_as_forced():
    LocalStandIn.answer = (False, "not root")
    provider, reason, forced = choose_provider({"MLSERVING_E2E_PROVIDER": "local"}, MODULES)
    assert provider is None and forced
    assert reason == "MLSERVING_E2E_PROVIDER=local: provider not available: not root"


def test_an_unknown_forced_provider_names_the_choices():
    provider, reason, forced = choose_provider({"MLSERVING_E2E_PROVIDER": "minikube"}, MODULES)
    assert provider is None and forced
    assert "must be one of kind, local" in reason


def test_a_provider_module_that_does_not_exist_is_a_reason_not_a_crash():
    modules = {**MODULES, "kind": ("providers.no_such_provider", "Nope")}
    KindStandIn.answer = (False, "unused")
    LocalStandIn.answer = (False, "not root")
    provider, reason, _ = choose_provider({}, modules)
    assert provider is None
    assert "tests/e2e/providers/no_such_provider.py does not exist" in reason


def test_the_real_providers_are_registered_under_their_names():
    assert set(PROVIDER_MODULES) == {"kind", "local"}
    for name, (module, cls) in PROVIDER_MODULES.items():
        imported = __import__(module, fromlist=[cls])
        assert getattr(imported, cls).name == name
