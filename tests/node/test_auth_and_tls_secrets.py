"""Bearer tokens and the serving certificate reach a running router through its mounted Secrets,
on the real node: no restart, within the kubelet's Secret sync.

A single-variant ModelDeployment with ``spec.security.auth`` and ``tls`` (so the router runs and
serves HTTPS on the Service's port 443), its children rendered by the operator's own code. A
client pod in another namespace trusts the test CA and calls the router: no token and a wrong
token get 401 with ``WWW-Authenticate: Bearer``, both valid tokens 200. Then, in one step, one
token is removed and another added to the tokens Secret, and the TLS Secret gets a renewed
certificate (new key, new serial, same CA). Within 2 minutes the removed token gets 401, the
added one 200 and new connections see the new serial, while the token kept valid is never
refused and the router pod is neither replaced nor restarted.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets
import subprocess
import time
import uuid

import pytest
from mlserving.operator import naming
from mlserving.operator.settings import OperatorSettings
from netprobe import client_pod, namespace, payload, run_in_client, wait_client_ready
from rendered import Rendered, install_crd_alone, wait_default_serviceaccount

pytestmark = [pytest.mark.node, pytest.mark.slow]

RUN = uuid.uuid4().hex[:5]
APP_NS, CLIENT_NS = f"mls-sec-{RUN}", f"mls-sec-{RUN}-client"
MD_NAME = "fraud"
TOKENS_SECRET, TLS_SECRET = "fraud-tokens", "fraud-tls"
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
ROTATION_WITHIN_S = 120
HOST = f"{MD_NAME}.{APP_NS}.svc.cluster.local"
URL = f"https://{HOST}:{naming.TLS_SERVICE_PORT}/predict"

# Run in the client pod: the status of one prediction per named token ("" = no header), the
# WWW-Authenticate of the first 401, and the serial of the certificate a new connection gets.
CALL = r"""
import json, socket, ssl, sys, urllib.error, urllib.parse, urllib.request
url, ca, body, tokens = sys.argv[1], sys.argv[2], sys.argv[3].encode(), json.loads(sys.argv[4])
ctx = ssl.create_default_context(cadata=ca)
out = {}
for name, token in tokens.items():
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), context=ctx,
                                    timeout=5) as resp:
            out[name] = resp.status
    except urllib.error.HTTPError as exc:
        out[name] = exc.code
        out.setdefault("challenge", exc.headers.get("www-authenticate"))
    except OSError as exc:
        out[name] = "error: " + repr(exc)
parts = urllib.parse.urlsplit(url)
with socket.create_connection((parts.hostname, parts.port), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=parts.hostname) as tls:
        out["serial"] = tls.getpeercert()["serialNumber"]
print(json.dumps(out))
"""


def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: pathlib.Path) -> str:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=mlserving test CA", cwd=d)
    return (d / "ca.crt").read_text()


def issue(d: pathlib.Path, serial: int) -> tuple[str, str]:
    """(certificate, key) for the router's Service names, signed by the test CA, with ``serial``."""
    ext = d / "san.ext"
    ext.write_text(f"subjectAltName=DNS:{HOST},DNS:{MD_NAME}.{APP_NS}.svc\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{serial}.key", "-out", f"{serial}.csr",
            "-subj", f"/CN={HOST}", cwd=d)
    openssl("x509", "-req", "-in", f"{serial}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", str(serial),
            "-days", "1", "-extfile", "san.ext", "-out", f"{serial}.crt", cwd=d)
    return (d / f"{serial}.crt").read_text(), (d / f"{serial}.key").read_text()


def tokens_secret(tokens: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TOKENS_SECRET, "namespace": APP_NS},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in tokens.items()}}


def tls_secret(cert: str, key: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TLS_SECRET, "namespace": APP_NS},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                     "tls.key": base64.b64encode(key.encode()).decode()}}


def model_deployment(security: dict) -> dict:
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": MD_NAME, "namespace": APP_NS},
            "spec": {"model": "fraud", "resources": RESOURCES, "security": security,
                     "variants": [{"name": "stable", "version": "1.0.0", "weight": 100}]}}


class Client:
    def __init__(self, node, ca: str):
        self.node, self.ca = node, ca

    def call(self, tokens: dict[str, str]) -> dict:
        out = run_in_client(self.node.kubectl, CLIENT_NS, "python3", "-c", CALL, URL, self.ca,
                            json.dumps(payload()), json.dumps(tokens))
        return json.loads(out)


def router_pod_state(app: Rendered) -> dict[str, int]:
    """{uid: restarts} of the router's pods."""
    return {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
            for p in app.pods(naming.ROUTER) if not p["metadata"].get("deletionTimestamp")}


@pytest.fixture(scope="module")
def secured(real_node, tmp_path_factory):
    node = real_node
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    first = issue(d, 0x1001)
    tokens = {name: secrets.token_hex(16) for name in ("alice", "bob", "carol")}
    install_crd_alone(node)
    node.apply(namespace(APP_NS), namespace(CLIENT_NS))
    wait_default_serviceaccount(node, APP_NS, CLIENT_NS)
    node.apply(tokens_secret({"alice": tokens["alice"], "bob": tokens["bob"]}), tls_secret(*first))
    settings = OperatorSettings(server_image=node.server_image, router_min_replicas=1, router_max_replicas=1)
    app = Rendered(node, settings, APP_NS, MD_NAME, model_deployment)
    app.apply({"auth": {"secretName": TOKENS_SECRET}, "tls": {"secretName": TLS_SECRET}})
    node.apply(client_pod(CLIENT_NS, node.server_image))
    for name in (f"{MD_NAME}-stable", f"{MD_NAME}-router"):
        node.kubectl("rollout", "status", f"deployment/{name}", "-n", APP_NS, "--timeout=240s", timeout=260)
    wait_client_ready(node.kubectl, CLIENT_NS)
    client = Client(node, ca)
    # The router's pod is ready before the node's policy engine lets the client's first packets
    # through it (seen: one 5 s timeout right after start); the tests start once it answers.
    deadline = time.monotonic() + 60
    while not isinstance(client.call({"none": ""}).get("none"), int):
        assert time.monotonic() < deadline, "no answer from the router to the client pod within 60 s"
        time.sleep(2)
    yield app, client, tokens, d
    node.kubectl("delete", "namespace", APP_NS, CLIENT_NS, "--wait=false", check=False)


def test_router_asks_for_a_valid_bearer_token_over_https(secured):
    _, client, tokens, _ = secured
    got = client.call({"none": "", "wrong": secrets.token_hex(16), "alice": tokens["alice"], "bob": tokens["bob"]})
    assert got["none"] == 401 and got["wrong"] == 401, got
    assert got["challenge"] and got["challenge"].startswith("Bearer"), got
    assert got["alice"] == 200 and got["bob"] == 200, got
    assert got["serial"] == "1001", got


def test_token_rotation_and_certificate_renewal_take_effect_without_a_restart(real_node, secured):
    app, client, tokens, d = secured
    before = router_pod_state(app)
    assert len(before) == 1 and not any(before.values()), before
    renewed = issue(d, 0x2002)
    real_node.apply(tokens_secret({"bob": tokens["bob"], "carol": tokens["carol"]}), tls_secret(*renewed))
    changed = time.monotonic()
    calls = {name: tokens[name] for name in ("alice", "bob", "carol")}
    seen: dict[str, float] = {}
    timeline = []
    while True:
        got = client.call(calls)
        t = time.monotonic() - changed
        timeline.append((round(t), got))
        # The token kept valid is never refused while the Secret changes under the router.
        assert got["bob"] == 200, timeline
        for what, done in (("alice revoked", got["alice"] == 401), ("carol accepted", got["carol"] == 200),
                           ("certificate renewed", got["serial"] == "2002")):
            if done:
                seen.setdefault(what, t)
        if len(seen) == 3:
            break
        if t > ROTATION_WITHIN_S:
            pytest.fail(f"within {ROTATION_WITHIN_S} s only {sorted(seen)} took effect; timeline: {timeline}")
        time.sleep(3)
    print("took effect after (s): " + ", ".join(f"{what} {t:.0f}" for what, t in sorted(seen.items())))
    assert router_pod_state(app) == before, "the router pod was replaced or restarted"
