"""docs/api.md and docs/rollout.md name what the code owns: phases, Event reasons, commands, metrics."""

import pathlib

from mlserving.operator.rollout import machine
from mlserving.operator.rollout.metrics import RolloutMetrics
from mlserving.server.router.compare import OUTCOMES

ROOT = pathlib.Path(__file__).resolve().parents[2]
API = (ROOT / "docs" / "api.md").read_text()
ROLLOUT = (ROOT / "docs" / "rollout.md").read_text()


def test_phases_reasons_and_commands_are_documented():
    for phase in machine.PHASES:
        assert f"`{phase}`" in API, phase
    reasons = [v for k, v in vars(machine).items() if k.startswith("EVENT_")]
    assert len(reasons) == 8
    for reason in reasons:
        assert f"`{reason}`" in API, reason
    for command in machine.COMMANDS:
        assert f"`{command}`" in API and f"rollout {command} md/fraud" in ROLLOUT, command
    assert f"`{machine.COMMAND_ANNOTATION}`" in API


def test_metric_names_are_documented():
    names = {m.name for m in RolloutMetrics().registry.collect()}
    assert names == {"mlserving_rollout_phase", "mlserving_rollout_weight"}
    for name in names:
        assert name in API and name in ROLLOUT
    assert "mlserving_router_shadow_comparisons_total" in API
    for outcome in OUTCOMES:
        assert outcome in (ROOT / "docs" / "router.md").read_text(), outcome
