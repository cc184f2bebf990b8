"""The CRD, examples, deploy/ and docs/api.md agree with each other and with the renderers."""

import pathlib
import re

import pytest
import yaml
from mlserving.operator import kinds
from mlserving.operator import spec as specmod
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings, project_version
from mlserving.operator.status import PHASES, compute_status
from rbac_kit import grants, missing_grants

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modeldeployments.mlserving.io.yaml"


@pytest.fixture(scope="module")
def crd() -> dict:
    return yaml.safe_load(CRD_PATH.read_text())


@pytest.fixture(scope="module")
def schema(crd) -> dict:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def walk(node: dict, path: str):
    """Yield (path, schema) for every nested schema: properties, items, additionalProperties."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_crd_identity(crd):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("mlserving.io", "Namespaced")
    assert spec["names"]["kind"] == "ModelDeployment"
    assert spec["names"]["plural"] == "modeldeployments" and "md" in spec["names"]["shortNames"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    assert columns == ["READY", "PHASE", "TRAFFIC", "ROLLOUT", "URL", "AGE"]
    assert version["additionalPrinterColumns"][0]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_schema_is_structural_with_a_description_and_type_everywhere(schema):
    missing = []
    for path, node in walk(schema, "modeldeployment"):
        if path == "modeldeployment.metadata":
            continue
        if not node.get("description"):
            missing.append(f"{path}: no description")
        if "type" not in node and not node.get("x-kubernetes-int-or-string"):
            missing.append(f"{path}: no type")
        for branch in node.get("anyOf", []):
            assert set(branch) == {"type"}, f"{path}: anyOf branches may only give a type"
    assert missing == []


def test_cel_cost_is_bounded_by_max_items_and_lengths(schema):
    for path, node in walk(schema["properties"]["spec"], "spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string":
            assert "maxLength" in node or "enum" in node, path


def test_cel_messages_name_the_field(schema):
    rules = [r for _, node in walk(schema, "") for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 6
    for rule in rules:
        assert re.match(r"^(metadata\.name|spec\.[A-Za-z.\[\]]+): ", rule["message"]), rule["message"]


def test_crd_defaults_and_patterns_agree_with_the_parser(schema):
    spec = schema["properties"]["spec"]["properties"]
    assert spec["resources"]["default"] == specmod.DEFAULT_RESOURCES
    variant = spec["variants"]["items"]["properties"]
    assert variant["replicas"]["default"] == specmod.DEFAULT_REPLICAS
    assert variant["mirror"]["default"] is False
    assert spec["autoscaling"]["properties"]["minReplicas"]["default"] == specmod.DEFAULT_MIN_REPLICAS
    assert variant["name"]["pattern"] == specmod.DNS_1035_LABEL.pattern
    assert spec["model"]["pattern"] == specmod.DNS_LABEL.pattern
    assert spec["variants"]["maxItems"] == specmod.MAX_VARIANTS
    assert spec["variants"]["x-kubernetes-list-type"] == "map"
    assert spec["variants"]["x-kubernetes-list-map-keys"] == ["name"]
    spread = spec["placement"]["properties"]["spread"]
    assert tuple(spread["enum"]) == specmod.SPREAD_MODES
    assert spread["default"] == specmod.DEFAULT_SPREAD
    assert spec["placement"]["default"] == {}  # so an object without placement is defaulted too
    status = schema["properties"]["status"]["properties"]
    assert tuple(status["phase"]["enum"]) == PHASES


def test_crd_behavior_schema_agrees_with_the_parser(schema):
    behavior = schema["properties"]["spec"]["properties"]["autoscaling"]["properties"]["behavior"]["properties"]
    assert tuple(behavior) == specmod.SCALING_DIRECTIONS
    for direction in specmod.SCALING_DIRECTIONS:
        rules = behavior[direction]["properties"]
        window = rules["stabilizationWindowSeconds"]
        assert (window["minimum"], window["maximum"]) == (0, specmod.MAX_STABILIZATION_WINDOW_S)
        assert tuple(rules["selectPolicy"]["enum"]) == specmod.SCALING_SELECT_POLICIES
        assert rules["policies"]["maxItems"] == specmod.MAX_SCALING_POLICIES
        policy = rules["policies"]["items"]["properties"]
        assert tuple(policy["type"]["enum"]) == specmod.SCALING_POLICY_TYPES
        assert policy["value"]["minimum"] == 1
        assert (policy["periodSeconds"]["minimum"], policy["periodSeconds"]["maximum"]) == (
            1, specmod.MAX_POLICY_PERIOD_S)


def test_status_fields_written_by_the_operator_exist_in_the_schema(schema):
    status_schema = schema["properties"]["status"]
    md = yaml.safe_load((ROOT / "examples" / "fraud-ab.yaml").read_text())
    md["metadata"].update(namespace="default", generation=1)
    status = compute_status(md, {}, None, "2026-01-01T00:00:00Z")

    def check(value, node, path):
        if isinstance(value, dict):
            for key, sub in value.items():
                assert key in node.get("properties", {}), f"{path}.{key} not in the status schema"
                check(sub, node["properties"][key], f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                check(item, node["items"], f"{path}[]")
    check(status, status_schema, "status")


def load_example(name: str) -> dict:
    md = yaml.safe_load((ROOT / "examples" / name).read_text())
    assert md["apiVersion"] == "mlserving.io/v1alpha1" and md["kind"] == "ModelDeployment"
    md["metadata"].update(namespace="default", uid="u", generation=1)
    return md


def test_examples_render_and_say_what_the_docs_say():
    single = load_example("fraud-single.yaml")
    assert len(single["spec"]["variants"]) == 1
    names = {c["metadata"]["name"] for c in desired_children(single, OperatorSettings.from_env({}))}
    assert "fraud-single-router" not in names
    ab = load_example("fraud-ab.yaml")
    assert [(v["name"], v["version"], v["weight"]) for v in ab["spec"]["variants"]] == [
        ("stable", "1.0.0", 90), ("candidate", "2.0.0", 10)]
    assert ab["spec"]["routing"]["stickyHeader"] == "x-user-id"
    kinds = {c["kind"] for c in desired_children(ab, OperatorSettings.from_env({}))}
    assert {"Deployment", "Service", "ConfigMap", "Role", "HorizontalPodAutoscaler"} <= kinds
    docs = (ROOT / "docs" / "api.md").read_text()
    for name in ("fraud-single.yaml", "fraud-ab.yaml"):
        assert f"examples/{name}" in docs
    assert "stable=1.0.0:90% candidate=2.0.0:10%" in docs


def test_docs_describe_every_spec_field(schema):
    docs = (ROOT / "docs" / "api.md").read_text()
    # Fields below these are Kubernetes' own types, documented as "as in a pod's ...".
    passthrough = ("tolerations[].", "env[].", "parentRefs[].", "imagePullSecrets[].")
    fields = {path.split(".")[-1].rstrip("[]{}") for path, _ in walk(schema["properties"]["spec"], "spec")
              if path != "spec" and not any(p in path for p in passthrough)}
    missing = sorted(f for f in fields if f and f"`{f}`" not in docs and f".{f}`" not in docs)
    assert missing == [], f"docs/api.md does not mention: {missing}"


def deploy_docs() -> list[dict]:
    out = []
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_kustomization_lists_existing_files_and_the_crd():
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    for entry in kustomization["resources"]:
        assert (ROOT / "deploy" / entry).exists(), entry
    assert "../crds" in kustomization["resources"]
    crds = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())
    assert crds["resources"] == [CRD_PATH.name]


def cluster_role_grants() -> dict[tuple[str, str], set[str]]:
    """What the operator's ClusterRoles (deploy/ binds every one of them to its ServiceAccount) grant."""
    return grants([r for d in deploy_docs() if d["kind"] == "ClusterRole" for r in d["rules"]])


def test_cluster_role_grants_what_the_kinds_table_needs():
    granted = cluster_role_grants()
    assert missing_grants(granted) == [], "deploy/rbac.yaml lacks rules for operator/kinds.py"
    assert "*" not in {v for verbs in granted.values() for v in verbs}
    for kind in kinds.child_kinds():
        assert set(kinds.CHILD_VERBS) <= set(kind.verbs), kind.kind


def test_rbac_check_notices_a_kind_missing_from_the_cluster_role(monkeypatch):
    extra = kinds.Kind("example.com/v1", "Widget", "widgets", wave=0, verbs=kinds.CHILD_VERBS,
                       subresources=(("status", ("get",)),))
    monkeypatch.setattr(kinds, "TABLE", kinds.TABLE + (extra,))
    assert missing_grants(cluster_role_grants()) == [
        "example.com/widgets: ['create', 'delete', 'get', 'list', 'patch', 'watch']",
        "example.com/widgets/status: ['get']"]


def test_operator_deployment_images_and_security():
    (dep,) = [d for d in deploy_docs() if d["kind"] == "Deployment"]
    assert dep["metadata"]["namespace"] == "mlserving-system"
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    version = project_version()
    assert c["image"] == f"docker.io/mlserving/operator:{version}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MLSERVING_SERVER_IMAGE"] == f"docker.io/mlserving/server:{version}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
