"""What RBAC rules grant, against what the operator's kinds table (operator/kinds.py) needs."""

from __future__ import annotations

from mlserving.operator import kinds


def grants(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    """{(apiGroup, resource): verbs} of a list of PolicyRules."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def missing_grants(granted: dict[tuple[str, str], set[str]]) -> list[str]:
    """What the kinds table needs and ``granted`` does not grant."""
    missing = []
    for kind in kinds.TABLE:
        wanted = [(kind.plural, kind.verbs)] + [(f"{kind.plural}/{sub}", verbs) for sub, verbs in kind.subresources]
        for resource, verbs in wanted:
            lacking = set(verbs) - granted.get((kind.group, resource), set())
            if lacking:
                missing.append(f"{kind.group or 'core'}/{resource}: {sorted(lacking)}")
    return missing
