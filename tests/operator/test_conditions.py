"""Condition types and reasons have one owner (operator/conditions.py): the code, the CRD's
descriptions and the docs agree with it, and a name that is not in it fails here."""

import ast
import pathlib
import re

import pytest
import yaml
from mlserving.operator import conditions
from mlserving.operator.status import PHASES

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modeldeployments.mlserving.io.yaml"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
CAMEL = re.compile(r"\b[A-Z][A-Za-z]*[A-Z][A-Za-z]*\b|\bReady\b")  # AllReplicasReady, HTTPRouteReady

# Where prose names a condition type or a reason.
TYPE_MENTIONS = [re.compile(r"\b([A-Z][A-Za-z]+)=(?:True|False|Unknown)\b"),
                 re.compile(r"condition=([A-Za-z]+)"),
                 re.compile(r"\bthe `?([A-Z][A-Za-z]+)`? condition\b"),
                 re.compile(r"\btype=\"?([A-Z][A-Za-z]+)")]
REASON_MENTIONS = [re.compile(r"\breason\s+`([A-Za-z]+)`"),
                   re.compile(r"\breason=\"?([A-Z][A-Za-z]+)")]


def condition_schema() -> dict:
    crd = yaml.safe_load(CRD_PATH.read_text())
    (version,) = crd["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return status["properties"]["conditions"]["items"]["properties"]


def names_in(text: str) -> set[str]:
    return set(CAMEL.findall(text))


def test_every_reason_names_known_condition_types():
    assert conditions.REASONS
    for reason, types in conditions.REASONS.items():
        assert types and set(types) <= set(conditions.TYPES), reason
        assert re.fullmatch(r"[A-Z][A-Za-z]+", reason)


def test_crd_descriptions_list_exactly_the_types_and_reasons():
    props = condition_schema()
    assert names_in(props["type"]["description"]) == set(conditions.TYPES)
    assert names_in(props["reason"]["description"]) == set(conditions.REASONS)
    crd = yaml.safe_load(CRD_PATH.read_text())
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        for condition_type in re.findall(r'@\.type=="(\w+)"', column["jsonPath"]):
            assert condition_type in conditions.TYPES, column


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line is ``header``."""
    lines = text.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_api_docs_tables_are_the_module_tables():
    text = (ROOT / "docs" / "api.md").read_text()
    types = {ticked(row[0])[0] for row in table_rows(text, "| type | meaning |")}
    assert types == set(conditions.TYPES)
    reasons = {ticked(row[0])[0]: tuple(ticked(row[1])) for row in table_rows(text, "| reason | on | meaning |")}
    assert reasons == conditions.REASONS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_known_types_and_reasons(doc):
    text = doc.read_text()
    for pattern in TYPE_MENTIONS:
        for name in pattern.findall(text):
            assert name in conditions.TYPES, f"{doc.name}: condition type {name!r} is not in operator/conditions.py"
    for pattern in REASON_MENTIONS:
        for name in pattern.findall(text):
            assert name in conditions.REASONS, f"{doc.name}: reason {name!r} is not in operator/conditions.py"


def test_doc_check_catches_an_unknown_name():
    stale = "a Warning event and a `GatewayRoute=False` condition, reason `GatewayAPINotInstalled`"
    assert TYPE_MENTIONS[0].findall(stale) == ["GatewayRoute"]
    assert REASON_MENTIONS[0].findall(stale) == ["GatewayAPINotInstalled"]


def string_literals(path: pathlib.Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_code_and_tests_take_the_names_from_the_module():
    names = (set(conditions.TYPES) | set(conditions.REASONS)) - set(PHASES)  # "Ready" is a phase too
    sources = [p for p in (ROOT / "operator").rglob("*.py") if p.name != "conditions.py"]
    sources += [p for d in ("operator", "operator_layer", "operator_cluster") for p in (ROOT / "tests" / d).rglob("*.py")
                if p.name != "test_conditions.py"]
    spelled_out = {f"{p.relative_to(ROOT)}: {name}" for p in sources for name in string_literals(p) & names}
    assert spelled_out == set(), "use the constants of operator/conditions.py"
