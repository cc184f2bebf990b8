"""Pod templates: the server container, security, probes, storage schemes, podOverrides, rollouts."""

import copy

import pytest
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import SpecError
from render_helpers import SETTINGS, deployments, make_md, render, single


def pod(md, name="fraud-stable", settings=SETTINGS) -> dict:
    return render(md, settings)[("Deployment", name)]["spec"]["template"]


def server(md, name="fraud-stable") -> dict:
    (container,) = pod(md, name)["spec"]["containers"]
    return container


def env(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_server_container_runs_mlserving_serve_on_port_8000_with_probes():
    c = server(single())
    assert c["name"] == "server"
    assert c["image"] == "registry.example/mlserving/server:9.9.9"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == ["serve"]
    assert "command" not in c  # the image's entrypoint is `mlserving`
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert env(c) == {"MODEL_PATH": "/models/fraud/1.0.0", "MODEL_NAME": "fraud", "PORT": "8000", "LOG_LEVEL": "INFO"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["startupProbe"]["httpGet"]["port"] == "http"
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def test_rollout_never_drops_capacity_and_pods_stop_gracefully():
    dep = render(single())[("Deployment", "fraud-stable")]
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < sleep < spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("name", ["fraud-stable", "fraud-candidate", "fraud-router"])
def test_restricted_security_context_everywhere(name):
    md = make_md([{"name": "stable", "version": "1", "weight": 90},
                  {"name": "candidate", "version": "2", "weight": 10, "storageUri": "https://m.example/fraud.tgz"}])
    spec = pod(md, name)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = spec["containers"] + spec.get("initContainers", [])
    assert len(containers) == (2 if name == "fraud-candidate" else 1)
    for c in containers:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "resources" in c
    for c in spec["containers"]:
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]
    for volume in spec["volumes"]:
        assert set(volume) & {"emptyDir", "persistentVolumeClaim"}, volume  # no hostPath


def test_server_pods_get_no_api_token_and_prometheus_annotations():
    template = pod(single())
    assert template["spec"]["automountServiceAccountToken"] is False
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}


def test_pvc_storage_mounts_the_claim_read_only():
    md = single()
    md["spec"]["variants"][0]["storageUri"] = "pvc://models-claim/fraud/1.0.0"
    template = pod(md)["spec"]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "models-claim", "readOnly": True}} in template["volumes"]
    c = template["containers"][0]
    assert {"name": "model", "mountPath": "/mnt/models", "readOnly": True} in c["volumeMounts"]
    assert env(c)["MODEL_PATH"] == "/mnt/models/fraud/1.0.0"
    assert "initContainers" not in template


def test_http_storage_fetches_into_an_emptydir_with_an_init_container():
    md = single()
    md["spec"]["variants"][0]["storageUri"] = "https://models.example/fraud-1.0.0.tar.gz"
    template = pod(md)["spec"]
    (init,) = template["initContainers"]
    assert init["image"] == template["containers"][0]["image"]
    assert init["command"] == ["mlserving", "fetch", "--uri", "https://models.example/fraud-1.0.0.tar.gz",
                               "--dest", "/mnt/models"]
    assert {"name": "model", "mountPath": "/mnt/models"} in init["volumeMounts"]
    assert {"name": "model", "emptyDir": {"sizeLimit": "2Gi"}} in template["volumes"]
    assert env(template["containers"][0])["MODEL_PATH"] == "/mnt/models"


S3_STORE = {"endpoint": "http://10.244.0.1:8333", "region": "eu-west-1", "secretName": "model-store"}


def test_s3_storage_fetches_with_the_store_address_and_the_secrets_key_pair():
    md = single()
    md["spec"]["storage"] = {"s3": S3_STORE}
    md["spec"]["variants"][0]["storageUri"] = "s3://models/fraud/1.0.0"
    template = pod(md)["spec"]
    (init,) = template["initContainers"]
    assert init["command"] == ["mlserving", "fetch", "--uri", "s3://models/fraud/1.0.0", "--dest", "/mnt/models"]
    assert env(init) == {
        "MLSERVING_S3_ENDPOINT": "http://10.244.0.1:8333",
        "MLSERVING_S3_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": {"secretKeyRef": {"name": "model-store", "key": "AWS_ACCESS_KEY_ID"}},
        "AWS_SECRET_ACCESS_KEY": {"secretKeyRef": {"name": "model-store", "key": "AWS_SECRET_ACCESS_KEY"}},
    }
    # The fetch's error line is what the operator reads back into the status.
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The key pair stays in the init container: the server never sees it.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env(template["containers"][0]))


@pytest.mark.parametrize(("store", "field", "fragment"), [
    ({"endpoint": "10.0.0.1:8333", "secretName": "s"}, "spec.storage.s3.endpoint", "http(s)://"),
    ({"endpoint": "http://h:1/path", "secretName": "s"}, "spec.storage.s3.endpoint", "no path"),
    ({"endpoint": "http://h:1", "secretName": "Not_A_Name"}, "spec.storage.s3.secretName", "Secret name"),
    ({"endpoint": "http://h:1"}, "spec.storage.s3.secretName", ""),
    ({"endpoint": "http://h:1", "secretName": "s", "bucket": "b"}, "spec.storage.s3.bucket", "unknown field"),
])
def test_bad_s3_store_is_a_spec_error_naming_the_field(store, field, fragment):
    md = single()
    md["spec"]["storage"] = {"s3": store}
    md["spec"]["variants"][0]["storageUri"] = "s3://models/fraud/1.0.0"
    with pytest.raises(SpecError) as err:
        desired_children(md, SETTINGS)
    assert err.value.field == field
    assert fragment in err.value.message


def test_file_storage_is_a_path_inside_the_image():
    md = single()
    md["spec"]["variants"][0]["storageUri"] = "file:///opt/models/fraud/7"
    assert env(server(md))["MODEL_PATH"] == "/opt/models/fraud/7"


@pytest.mark.parametrize(("uri", "fragment"), [
    ("s3://bucket/fraud", "needs spec.storage.s3"),
    ("s3://B/fraud", "s3://<bucket>/<prefix>"),
    ("s3://bucket/fraud/../x", "'..'"),
    ("gs://bucket/fraud", "unsupported scheme"),
    ("file://relative/path", "absolute path"),
    ("pvc:///no-claim", "pvc://<claim name>"),
    ("pvc://claim/../etc", "'..'"),
    ("https:///no-host", "no host"),
])
def test_unsupported_storage_uri_is_a_spec_error_naming_the_field(uri, fragment):
    md = single()
    md["spec"]["variants"][0]["storageUri"] = uri
    with pytest.raises(SpecError) as err:
        desired_children(md, SETTINGS)
    assert err.value.field == "spec.variants[stable].storageUri"
    assert fragment in err.value.message


def test_pod_overrides_are_merged_into_every_pod():
    overrides = {
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccountName": "model-reader",
        "priorityClassName": "high",
        "env": [{"name": "WORKERS", "value": "2"}, {"name": "LOG_LEVEL", "value": "DEBUG"}],
        "labels": {"team": "risk", "mlserving.io/variant": "hijack"},
        "annotations": {"owner": "risk@example.com", "prometheus.io/port": "9999"},
    }
    md = make_md(podOverrides=overrides)
    for name in ("fraud-stable", "fraud-candidate", "fraud-router"):
        template = pod(md, name)
        spec = template["spec"]
        assert spec["nodeSelector"] == {"pool": "inference"}
        assert spec["tolerations"] == overrides["tolerations"]
        assert spec["affinity"] == overrides["affinity"]
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        assert spec["priorityClassName"] == "high"
        labels = template["metadata"]["labels"]
        assert labels["team"] == "risk"
        assert labels["mlserving.io/variant"] == name.removeprefix("fraud-")  # ours win
        assert template["metadata"]["annotations"]["owner"] == "risk@example.com"
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "9090"
        variables = env(spec["containers"][0])
        assert variables["WORKERS"] == "2" and variables["LOG_LEVEL"] == "DEBUG"
    server_spec = pod(md)["spec"]
    assert server_spec["serviceAccountName"] == "model-reader"
    assert "automountServiceAccountToken" not in server_spec
    assert pod(md, "fraud-router")["spec"]["serviceAccountName"] == "fraud-router"
    names = [e["name"] for e in pod(md)["spec"]["containers"][0]["env"]]
    assert names == ["MODEL_PATH", "MODEL_NAME", "PORT", "LOG_LEVEL", "WORKERS"]


def test_variant_resources_replace_the_sections_they_give():
    md = make_md([{"name": "stable", "version": "1", "weight": 90, "resources": {"limits": {"cpu": "2"}}},
                  {"name": "candidate", "version": "2", "weight": 10}],
                 resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    assert server(md)["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2"}}
    assert server(md, "fraud-candidate")["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


def test_spec_image_and_settings_override_the_image():
    md = single(image="registry.example/custom/server:2.0")
    assert server(md)["image"] == "registry.example/custom/server:2.0"
    settings = OperatorSettings.from_env({"MLSERVING_SERVER_IMAGE": "r.example/s:1.2.3",
                                          "MLSERVING_IMAGE_PULL_POLICY": "Always", "MLSERVING_LOG_LEVEL": "debug"})
    c = render(single(), settings)[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]["containers"][0]
    assert (c["image"], c["imagePullPolicy"], env(c)["LOG_LEVEL"]) == ("r.example/s:1.2.3", "Always", "DEBUG")


def test_weight_only_change_leaves_every_deployment_identical():
    before = make_md(autoscaling={"minReplicas": 2, "maxReplicas": 10})
    after = copy.deepcopy(before)
    after["spec"]["variants"][0]["weight"] = 50
    after["spec"]["variants"][1]["weight"] = 50
    after["metadata"]["generation"] += 1
    old, new = render(before), render(after)
    old_deps, new_deps = deployments(old), deployments(new)
    assert old_deps.keys() == new_deps.keys() == {"fraud-stable", "fraud-candidate", "fraud-router"}
    for name in old_deps:
        assert old_deps[name] == new_deps[name], name
    assert old[("ConfigMap", "fraud-routing")] != new[("ConfigMap", "fraud-routing")]
    assert old[("HorizontalPodAutoscaler", "fraud-stable")] != new[("HorizontalPodAutoscaler", "fraud-stable")]


def test_version_change_changes_only_that_variants_pod_template():
    before = make_md()
    after = copy.deepcopy(before)
    after["spec"]["variants"][1]["version"] = "2.1.0"
    old, new = deployments(render(before)), deployments(render(after))
    changed = {name for name in old if old[name]["spec"]["template"] != new[name]["spec"]["template"]}
    assert changed == {"fraud-candidate"}
    template = new["fraud-candidate"]["spec"]["template"]
    assert template["metadata"]["labels"]["mlserving.io/model-version"] == "2.1.0"
    assert env(template["spec"]["containers"][0])["MODEL_PATH"] == "/models/fraud/2.1.0"
    assert new["fraud-candidate"]["spec"]["selector"] == old["fraud-candidate"]["spec"]["selector"]
