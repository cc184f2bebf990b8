"""The client layer's own parts without a cluster: kubeconfig loading, and KubeApi against a small
real HTTP server (paths, errors, a token refreshed after a 401, watch streams). The same client
runs against a real API server in tests/operator_cluster/ and tests/router/test_router_configmap.py."""

import base64
import json
import os
import pathlib
import ssl
import stat
import subprocess
import sys
import threading

import pytest
import yaml
from api_stand_in import ApiStandIn
from mlserving.operator import kubeconfig
from mlserving.operator.kinds import DEPLOYMENT, kind_of
from mlserving.operator.kubeapi import ApiError, KubeApi

CONFIGMAP = kind_of("v1", "ConfigMap")


def write_kubeconfig(tmp_path, user: dict, cluster: dict | None = None, name="kubeconfig") -> str:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "dev",
              "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                           {"name": "other", "context": {"cluster": "c", "user": "u"}}],
              "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443/",
                                                                "certificate-authority": "pki/ca.crt"}}],
              "users": [{"name": "u", "user": user}]}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_kubeconfig_paths_are_relative_to_the_file_and_inline_data_becomes_private_files(tmp_path):
    creds = kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"client-certificate": "pki/me.crt",
                                                                   "client-key-data": base64.b64encode(b"KEY").decode()}))
    assert creds.server == "https://10.0.0.1:6443"
    assert creds.ca_file == str(tmp_path / "pki" / "ca.crt") and creds.cert_file == str(tmp_path / "pki" / "me.crt")
    assert pathlib.Path(creds.key_file).read_bytes() == b"KEY"
    assert stat.S_IMODE(os.stat(creds.key_file).st_mode) == 0o600
    assert creds.namespace == "team-a" and creds.authorization() is None
    assert kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"token": "t"}), context="other").namespace is None


def test_kubeconfig_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(kubeconfig.ConfigError, match="no context named 'nope'"):
        kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"token": "t"}), context="nope")
    with pytest.raises(kubeconfig.ConfigError, match="has no server"):
        kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"token": "t"}, cluster={"insecure-skip-tls-verify": True}))
    with pytest.raises(kubeconfig.ConfigError, match="missing"):
        kubeconfig.load_kubeconfig(str(tmp_path / "missing"))


def test_token_file_and_exec_plugin_tokens_are_fetched_again(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("one\n")
    creds = kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"tokenFile": "token"}))
    assert creds.authorization() == "Bearer one"
    token_file.write_text("two\n")
    assert creds.authorization() == "Bearer one"  # re-read every minute, not per request
    assert creds.authorization(refresh=True) == "Bearer two"

    plugin = tmp_path / "plugin.py"
    plugin.write_text("import json, os, sys\n"
                      "n = int(open(sys.argv[1]).read()) + 1; open(sys.argv[1], 'w').write(str(n))\n"
                      "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
                      "print(json.dumps({'status': {'token': f'exec-{n}-' + os.environ['EXTRA'],"
                      " 'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n")
    counter = tmp_path / "count"
    counter.write_text("0")
    creds = kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin), str(counter)], "env": [{"name": "EXTRA", "value": "x"}]}}))
    assert creds.authorization() == "Bearer exec-1-x"
    assert creds.authorization() == "Bearer exec-1-x"  # cached until it expires
    assert creds.authorization(refresh=True) == "Bearer exec-2-x"


def test_basic_auth_and_in_cluster_credentials(tmp_path, monkeypatch):
    creds = kubeconfig.load_kubeconfig(write_kubeconfig(tmp_path, {"username": "a", "password": "b"}))
    assert creds.authorization() == "Basic " + base64.b64encode(b"a:b").decode()
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("mlserving-system")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    creds = kubeconfig.load()
    assert (creds.server, creds.namespace, creds.authorization()) == (
        "https://[fd00::1]:443", "mlserving-system", "Bearer sa-token")


class Server:
    """Answers like the API server does for the requests the tests send."""

    def __init__(self):
        self.tokens_accepted = {"Bearer fresh"}
        self.stand_in = ApiStandIn(self.answer)
        self.url, self.seen = self.stand_in.url, self.stand_in.seen

    def answer(self, method, path, headers):
        if headers.get("Authorization") not in self.tokens_accepted:
            return 401, {"kind": "Status", "reason": "Unauthorized", "message": "bad token"}
        if "watch=1" in path:
            return 200, [{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
                         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
                         {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                      "message": "too old resource version"}}]
        if "missing" in path:
            return 404, {"kind": "Status", "reason": "NotFound", "message": "not found"}
        return 200, {"kind": "X", "path": path}


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stand_in.close()


def test_kubeapi_paths_bodies_errors_and_a_token_refreshed_after_401(server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("stale")
    api = KubeApi(kubeconfig.Credentials(server=server.url, token_file=str(token_file)))
    assert api.credentials.bearer_token() == "stale"  # read and cached for a minute
    token_file.write_text("fresh")  # the kubelet rotated it
    assert api.get(CONFIGMAP, "team-a", "routing")["path"] == "/api/v1/namespaces/team-a/configmaps/routing"
    assert [s[2] for s in server.seen] == ["Bearer stale", "Bearer fresh"]
    assert api.get(CONFIGMAP, "team-a", "missing") is None
    assert api.delete(CONFIGMAP, "team-a", "missing") is False
    applied = api.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}},
                        "mlserving-operator")
    assert applied["path"] == "/apis/apps/v1/namespaces/n/deployments/d?fieldManager=mlserving-operator&force=true"
    method, _, _, body = server.seen[-1]
    assert method == "PATCH" and json.loads(body)["metadata"]["name"] == "d"
    assert api.group_versions("missing.example.com") == []
    server.tokens_accepted = set()
    with pytest.raises(ApiError) as err:
        api.list(DEPLOYMENT, "n")
    assert err.value.status == 401 and err.value.message == "bad token"


def test_kubeapi_watch_yields_events_and_raises_410(server):
    api = KubeApi(kubeconfig.Credentials(server=server.url, token="fresh"))
    events = []
    with pytest.raises(ApiError) as err:
        for kind, obj in api.watch(CONFIGMAP, "n", resource_version="4", field_selector="metadata.name=a"):
            events.append((kind, obj["metadata"]["resourceVersion"]))
    assert events == [("ADDED", "5"), ("BOOKMARK", "6")]
    assert err.value.status == 410
    assert "fieldSelector=metadata.name%3Da" in server.seen[-1][1] and "resourceVersion=4" in server.seen[-1][1]


def test_an_unreachable_server_is_status_0():
    api = KubeApi(kubeconfig.Credentials(server="http://127.0.0.1:9"), timeout=2)
    with pytest.raises(ApiError) as err:
        api.get(CONFIGMAP, "n", "x")
    assert err.value.status == 0 and err.value.transient


def test_an_insecure_cluster_still_sends_the_client_certificate(tmp_path):
    key = tmp_path / "client.key"
    cert = tmp_path / "client.crt"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=admin",
                           "-days", "1", "-keyout", str(key), "-out", str(cert)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr[-300:]!r}")
    creds = kubeconfig.load_kubeconfig(write_kubeconfig(
        tmp_path, {"client-certificate": "client.crt", "client-key": "client.key"},
        cluster={"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}))
    ctx = creds.ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert creds.cert_file == str(cert)  # loaded into ctx above (load_cert_chain raises otherwise)


def test_the_routers_configmap_source_lists_watches_and_lists_again_after_410(tmp_path):
    from mlserving.server.router.sources import ConfigMapSource

    def cm(version, rv):
        return {"metadata": {"name": "fraud-routing", "resourceVersion": rv}, "data": {"routing.json": version}}

    watches = []

    def answer(method, path, headers):
        if "watch=1" not in path:
            listed = len([s for s in stand_in.seen if "watch=1" not in s[1]])
            return 200, {"kind": "ConfigMapList", "metadata": {"resourceVersion": str(10 * listed)},
                         "items": [cm("v1" if listed == 1 else "v3", str(10 * listed))]}
        watches.append(path)
        if len(watches) == 1:
            return 200, [{"type": "MODIFIED", "object": cm("v2", "11")}]
        if len(watches) == 2:
            return 200, [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}]
        return 200, []  # the server ended the watch without news

    stand_in = ApiStandIn(answer)
    source = ConfigMapSource("team-a", "fraud-routing", kubeconfig=write_kubeconfig(
        tmp_path, {"token": "t"}, cluster={"server": stand_in.url}), watch_timeout_s=1)
    delivered = []

    def hand_over(raw, origin):
        delivered.append(raw)
        if len(delivered) == 3:
            source._stop.set()

    thread = threading.Thread(target=source._watch_forever, args=(hand_over,), daemon=True)
    thread.start()
    thread.join(60)
    stand_in.close()
    assert delivered == [b"v1", b"v2", b"v3"]
    assert all("fieldSelector=metadata.name%3Dfraud-routing" in p for _, p, _, _ in stand_in.seen)
    assert "resourceVersion=10" in watches[0] and "resourceVersion=11" in watches[1]
