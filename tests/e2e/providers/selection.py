"""Which provider the e2e session uses (the rules are in tests/e2e/conftest.py's docstring)."""

from __future__ import annotations

import importlib
import os

from providers.base import ClusterProvider

PROVIDER_MODULES = {"kind": ("providers.kind", "KindProvider"), "local": ("providers.local", "LocalProvider")}
AUTO_ORDER = ("kind", "local")


def load_provider(name: str, modules: dict = PROVIDER_MODULES) -> tuple[ClusterProvider | None, str]:
    module_name, class_name = modules[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None, f"tests/e2e/{module_name.replace('.', '/')}.py does not exist"
        raise
    return getattr(module, class_name)(), ""


def choose_provider(env: dict | None = None, modules: dict = PROVIDER_MODULES,
                    order: tuple[str, ...] = AUTO_ORDER) -> tuple[ClusterProvider | None, str, bool]:
    """(provider or None, the reason when None, whether the environment forced the choice)."""
    env = os.environ if env is None else env
    forced = env.get("MLSERVING_E2E_PROVIDER", "").strip()
    if forced:
        if forced not in modules:
            return None, f"MLSERVING_E2E_PROVIDER={forced!r}: must be one of {', '.join(modules)}", True
        provider, why = load_provider(forced, modules)
        if provider is not None:
            ok, why = provider.available()
            if ok:
                return provider, "", True
        return None, f"MLSERVING_E2E_PROVIDER={forced}: provider not available: {why}", True
    reasons = []
    for name in order:
        provider, why = load_provider(name, modules)
        if provider is not None:
            ok, why = provider.available()
            if ok:
                return provider, "", False
        reasons.append(f"{name}: {why}")
    return None, "no cluster provider available (" + "; ".join(reasons) + ")", False
